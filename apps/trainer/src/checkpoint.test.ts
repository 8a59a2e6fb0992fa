import { mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  type Checkpoint,
  listCheckpoints,
  loadCheckpoint,
  networkWeights,
  saveCheckpoint,
} from './checkpoint';

function ckpt(step: number): Checkpoint {
  return {
    kind: 'ddpm',
    step,
    epoch: 1,
    config: { train: { n_iter: 10 } },
    model: { inner_channel: 8 },
    weights: new Map([
      ['init_conv.weight', { shape: [2, 1, 1, 1], data: Float32Array.from([1, 2]) }],
      ['init_conv.bias', { shape: [2], data: Float32Array.from([step, 0.5]) }],
    ]),
    optimizer: {
      type: 'adamw',
      lr: 1e-4,
      betas: [0.9, 0.999],
      eps: 1e-8,
      weightDecay: 0.01,
      step,
      slots: {
        exp_avg: new Map([['init_conv.bias', { shape: [2], data: Float32Array.from([3, 4]) }]]),
        exp_avg_sq: new Map([['init_conv.bias', { shape: [2], data: Float32Array.from([5, 6]) }]]),
      },
    },
    rng: { s: [1, 2, 3, 4], spare: null },
    sampler: { rng: { s: [5, 6, 7, 8], spare: 0.5 }, epoch: 2, position: 3, order: [1, 0] },
    extra: { note: 'x' },
  };
}

describe('checkpoints', () => {
  it('round-trips weights, optimizer state and metadata; keeps the last N', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ckpt-'));
    const ck = join(dir, 'checkpoints');
    for (const s of [1, 2, 3]) saveCheckpoint(ck, ckpt(s), { keep: 2 });
    expect(listCheckpoints(ck).map((c) => c.step)).toEqual([2, 3]);
    expect(readdirSync(ck).filter((f) => f.includes('tmp'))).toEqual([]);
    const back = loadCheckpoint(dir); // run folder -> latest in checkpoints/
    expect(back.step).toBe(3);
    expect(back.kind).toBe('ddpm');
    expect([...back.weights.keys()]).toEqual(['init_conv.weight', 'init_conv.bias']);
    expect(Array.from(back.weights.get('init_conv.bias')!.data)).toEqual([3, 0.5]);
    expect(back.optimizer?.type).toBe('adamw');
    expect(back.optimizer?.step).toBe(3);
    expect(Array.from(back.optimizer!.slots.exp_avg_sq.get('init_conv.bias')!.data)).toEqual([
      5, 6,
    ]);
    expect(back.rng).toEqual({ s: [1, 2, 3, 4], spare: null });
    expect(back.sampler).toEqual({
      rng: { s: [5, 6, 7, 8], spare: 0.5 },
      epoch: 2,
      position: 3,
      order: [1, 0],
    });
    expect(back.config).toEqual({ train: { n_iter: 10 } });
    expect(loadCheckpoint(back.path).step).toBe(3);
  });

  it('gives one-line errors for missing or foreign files', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ckpt-'));
    expect(() => loadCheckpoint(join(dir, 'nope'))).toThrow(/checkpoint not found/);
    expect(() => loadCheckpoint(dir)).toThrow(/no ddpm or head checkpoint/);
    const bad = join(dir, 'x.safetensors');
    writeFileSync(bad, 'garbage');
    expect(() => loadCheckpoint(bad)).toThrow(/not a readable safetensors file/);
    saveCheckpoint(dir, ckpt(5));
    expect(() => loadCheckpoint(dir, 'head')).toThrow(/no head checkpoint/);
  });
});

describe('checkpoint metadata is validated', () => {
  it("a step that is not a whole number (e.g. 'abc') is refused in one line naming the file", async () => {
    const { readSafetensors, writeSafetensorsSync } = await import('@dif-fusion/io');
    const dir = mkdtempSync(join(tmpdir(), 'ckpt-md-'));
    const path = saveCheckpoint(join(dir, 'checkpoints'), ckpt(4));
    const file = readSafetensors(path);
    for (const bad of ['abc', '-1', '2.5']) {
      const broken = join(dir, `bad-${bad}.safetensors`);
      writeSafetensorsSync(broken, file.tensors, { ...file.metadata, step: bad });
      expect(() => loadCheckpoint(broken)).toThrow(
        `${broken}: metadata 'step' must be a whole number >= 0, got '${bad}'`,
      );
    }
    expect(loadCheckpoint(path).step).toBe(4);
  });
});

describe('checkpoint weights are checked at load (resume, export)', () => {
  it('non-finite weights and non-float tensors are refused naming the file and tensor', async () => {
    const { readSafetensors, writeSafetensorsSync } = await import('@dif-fusion/io');
    const dir = mkdtempSync(join(tmpdir(), 'ckpt-w-'));
    const path = saveCheckpoint(join(dir, 'checkpoints'), ckpt(4));
    const file = readSafetensors(path);
    const nan = join(dir, 'nan.safetensors');
    const t = new Map(file.tensors);
    t.set('denoise_fn.init_conv.weight', {
      dtype: 'F32',
      shape: [2, 1, 1, 1],
      data: Float32Array.from([1, Number.POSITIVE_INFINITY]),
    });
    writeSafetensorsSync(nan, t, file.metadata);
    expect(() => loadCheckpoint(nan)).toThrow(
      `${nan}: tensor 'denoise_fn.init_conv.weight' holds 1 non-finite value of 2 (first: Infinity at index 1)`,
    );
    const ints = join(dir, 'int.safetensors');
    const u = new Map(file.tensors);
    u.set('denoise_fn.init_conv.bias', { dtype: 'I32', shape: [2], data: Int32Array.from([4, 1]) });
    writeSafetensorsSync(ints, u, file.metadata);
    expect(() => loadCheckpoint(ints)).toThrow(
      `${ints}: tensor 'denoise_fn.init_conv.bias' has dtype I32`,
    );
  });

  it('a missing tensor or another shape names the file and tensor (networkWeights)', () => {
    const w = ckpt(1).weights;
    const specs = [
      { name: 'init_conv.weight', shape: [2, 1, 1, 1] },
      { name: 'init_conv.bias', shape: [3] },
    ] as any;
    expect(() => networkWeights(specs, w, '/x/ddpm.safetensors')).toThrow(
      '/x/ddpm.safetensors: weight init_conv.bias has shape [2], expected [3]',
    );
    expect(() => networkWeights([{ name: 'nope', shape: [1] }] as any, w, '/x/a')).toThrow(
      '/x/a: weight nope is missing (expected shape [1])',
    );
    expect(networkWeights(specs.slice(0, 1), w, '/x/a').get('init_conv.weight')?.data).toEqual(
      Float32Array.from([1, 2]),
    );
  });
});
