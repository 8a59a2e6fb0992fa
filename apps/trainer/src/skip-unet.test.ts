/**
 * `model.which_model_G: "skip_unet"` end to end: training on tfjs and ONNX Runtime (the
 * BatchNorm running statistics updated after every step and checkpointed), resume,
 * sampling, and the one-line refusals (head, export, bad values).
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { relErr } from '../../../test/shared';
import { loadCheckpoint } from './checkpoint';
import { runExport } from './commands/export';
import { runSample } from './commands/sample';
import { type DdpmConfig, validateDdpmConfig } from './config';
import { trainDdpm } from './ddpm';
import { trainHead } from './head-train';
import { writeSyntheticPairs } from './synthetic';
import { tinyDdpm, tinyHead } from './test-utils';

const base = tinyDdpm({ dropout: 0.1, iters: 4 });
const SKIP: Partial<DdpmConfig> = {
  ...base,
  model: {
    ...base.model!,
    which_model_G: 'skip_unet',
    unet: { ...base.model!.unet, inner_channel: 4, res_blocks: 2 },
  },
  train: { ...base.train!, save_checkpoint_freq: 1 },
};

let root: string;
let data: string;
beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'dif-train-skip-'));
  data = await writeSyntheticPairs(join(root, 'data'), { count: 4, width: 24, height: 20 });
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

const quiet = { quiet: true, handleSigint: false, keep: 10 } as const;
const buffersOf = (ck: ReturnType<typeof loadCheckpoint>) =>
  new Map([...ck.weights].filter(([k]) => /running_|num_batches/.test(k)));
const ckptAt = (out: string, step: number) =>
  loadCheckpoint(
    join(out, 'checkpoints', `ddpm-${String(step).padStart(8, '0')}.safetensors`),
    'ddpm',
  );

describe('dif-train ddpm with which_model_G skip_unet', () => {
  it('tfjs and onnxruntime train the same model: losses and running statistics agree', async () => {
    const wasm = await trainDdpm({
      ...quiet,
      config: SKIP,
      data,
      out: join(root, 'wasm'),
      backend: 'wasm',
      workers: 2,
    });
    const ort = await trainDdpm({
      ...quiet,
      config: SKIP,
      data,
      out: join(root, 'ort'),
      backend: 'onnxruntime',
    });
    expect(wasm.workers).toBe(1); // BatchNorm normalises over the whole batch
    expect(wasm.losses).toHaveLength(4);
    for (const [i, l] of ort.losses.entries())
      expect(Math.abs(l - wasm.losses[i]) / l).toBeLessThan(1e-3);
    const a = buffersOf(loadCheckpoint(join(root, 'wasm'), 'ddpm'));
    const b = buffersOf(loadCheckpoint(join(root, 'ort'), 'ddpm'));
    // official keys, one set per BatchNorm: 2 per up block + final_conv.0
    expect(a.get('ups.0.model1.0.running_mean')?.shape).toEqual([8]);
    expect(a.get('final_conv.0.num_batches_tracked')).toEqual({
      shape: [],
      data: Float32Array.of(4),
    });
    expect([...b.keys()]).toEqual([...a.keys()]);
    // Step 1 starts from the same weights: the batch statistics agree to float rounding.
    // Later steps drift apart by up to lr: Adam scales the (zero up to rounding) gradients
    // of the biases just before a BatchNorm to full-size steps on either backend.
    const [a1, b1] = [ckptAt(join(root, 'wasm'), 1), ckptAt(join(root, 'ort'), 1)].map(buffersOf);
    let worst = 0;
    for (const [k, v] of a1) worst = Math.max(worst, relErr(b1.get(k)!.data, v.data));
    if (process.env.DBG) console.log('step-1 buffers, ort vs wasm:', worst);
    expect(worst).toBeLessThan(1e-4);
    for (const [k, v] of a) expect(relErr(b.get(k)!.data, v.data), k).toBeLessThan(0.05);
  }, 180_000);

  it('running statistics follow the momentum-0.1 update: num_batches_tracked counts steps, var stays >= 0.9 x its last value', async () => {
    const out = join(root, 'wasm');
    for (let step = 1; step <= 4; step++) {
      const prev = step === 1 ? null : buffersOf(ckptAt(out, step - 1));
      const cur = buffersOf(ckptAt(out, step));
      expect(cur.get('ups.1.model2.0.num_batches_tracked')!.data[0]).toBe(step);
      for (const [k, v] of cur) {
        if (!k.endsWith('running_var')) continue;
        // running_var = 0.9 running_var + 0.1 unbiased batch var >= 0.9 running_var
        const last = prev?.get(k)?.data ?? new Float32Array(v.data.length).fill(1);
        for (const [i, x] of v.data.entries())
          expect(x).toBeGreaterThanOrEqual(0.9 * last[i] * (1 - 1e-6));
        expect(Array.from(v.data).some((x, i) => x !== last[i])).toBe(true);
      }
    }
  });

  it('--resume continues exactly (losses and running statistics), on both backends', async () => {
    for (const backend of ['wasm', 'onnxruntime'] as const) {
      const out = join(root, `part-${backend}`);
      const a = await trainDdpm({ ...quiet, config: SKIP, data, out, iters: 2, backend });
      const b = await trainDdpm({ ...quiet, data, out, iters: 4, backend, resume: true });
      const want = backend === 'wasm' ? join(root, 'wasm') : join(root, 'ort');
      const ref = JSON.parse(
        `[${readFileSync(join(want, 'log.jsonl'), 'utf8').trim().split('\n').join(',')}]`,
      )
        .filter((l: { event?: string }) => l.event === undefined)
        .map((l: { loss: number }) => l.loss);
      expect([...a.losses, ...b.losses]).toEqual(ref);
      const got = buffersOf(loadCheckpoint(out, 'ddpm'));
      for (const [k, v] of buffersOf(loadCheckpoint(want, 'ddpm')))
        expect(got.get(k)!.data, k).toEqual(v.data);
    }
  }, 180_000);

  it('dif-train sample draws from the checkpoint in eval mode', async () => {
    const png = join(root, 'samples.png');
    await runSample({
      ddpm: join(root, 'ort'),
      out: png,
      n: 2,
      steps: 3,
      backend: 'cpu',
      log: () => {},
    });
    expect(readFileSync(png).subarray(1, 4).toString()).toBe('PNG');
  }, 60_000);

  it('dif-train export refuses a skip_unet DDPM (checkpoint or --random-init config) in one line', async () => {
    const out = join(root, 'export');
    await expect(
      runExport({ ddpm: join(root, 'ort'), head: join(root, 'none'), out, log: () => {} }),
    ).rejects.toThrow(
      /ddpm-00000004\.safetensors: which_model_G skip_unet gives no fusion features/,
    );
    const file = join(root, 'fusion.json');
    writeFileSync(file, JSON.stringify({ model: SKIP.model }));
    await expect(runExport({ config: file, randomInit: true, out, log: () => {} })).rejects.toThrow(
      /fusion\.json: which_model_G skip_unet gives no fusion features/,
    );
  });

  it('dif-train head refuses a skip_unet DDPM in one line', async () => {
    await expect(
      trainHead({
        ...quiet,
        config: tinyHead({ n_epoch: 1 }),
        ddpm: join(root, 'ort'),
        data,
        out: join(root, 'head'),
      }),
    ).rejects.toThrow(/which_model_G skip_unet gives no fusion features/);
  });
});

describe('which_model_G config', () => {
  const cfg = (model: Record<string, unknown>) => ({
    ...SKIP,
    model: { ...SKIP.model!, ...model },
  });
  it('refuses other networks and sr3-only keys in one line', () => {
    expect(() => validateDdpmConfig(cfg({ which_model_G: 'wavegrad' }), 'c.json')).toThrow(
      'c.json: model.which_model_G must be one of sr3, skip_unet',
    );
    expect(() =>
      validateDdpmConfig(cfg({ unet: { ...SKIP.model!.unet, res_blocks: 1 } }), 'c.json'),
    ).toThrow('c.json: model.unet.res_blocks must be at least 2 with which_model_G skip_unet');
    expect(() =>
      validateDdpmConfig(
        cfg({ which_model_G: 'sr3', unet: { ...SKIP.model!.unet, skip_range: 0.5 } }),
        'c.json',
      ),
    ).toThrow('c.json: model.unet.skip_range applies to which_model_G skip_unet only');
  });
});
