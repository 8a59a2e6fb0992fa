/**
 * `--backend onnxruntime` (training graphs on ONNX Runtime) against the tfjs wasm path:
 * the same seeded run gives the same losses, checkpoints move between the backends, resume
 * is exact, signals and NaN stop a run as on tfjs.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readSafetensors, writeSafetensorsSync } from '@dif-fusion/io';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadCheckpoint } from './checkpoint';
import { trainDdpm } from './ddpm';
import { trainHead } from './head-train';
import { writeSyntheticPairs } from './synthetic';
import { tinyDdpm, tinyHead } from './test-utils';

/** Dropout on: the masks must match across backends. */
const TINY_DDPM = tinyDdpm({ dropout: 0.1, iters: 20 });

// lr policy none (constant): a run cut short (--epochs 4) then resumed keeps the full run's rate
const TINY_HEAD = tinyHead({
  n_epoch: 10,
  optimizer: { type: 'adam', lr: 1e-3 },
  sheduler: { lr_policy: 'none' },
});

let root: string;
let data: string;
let ddpm: string;
beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'dif-train-ort-'));
  data = await writeSyntheticPairs(join(root, 'data'), {
    count: 4,
    width: 24,
    height: 20,
    seed: 3,
  });
  const r = await trainDdpm({
    config: { ...TINY_DDPM, train: { ...TINY_DDPM.train!, n_iter: 4 } },
    data,
    out: join(root, 'ddpm'),
    quiet: true,
    handleSigint: false,
    backend: 'onnxruntime',
  });
  ddpm = r.checkpoint as string;
}, 120_000);
afterAll(() => rmSync(root, { recursive: true, force: true }));

const quiet = { quiet: true, handleSigint: false } as const;
const maxRel = (a: number[], b: number[]) =>
  Math.max(...a.map((x, i) => Math.abs(x - b[i]) / Math.abs(b[i])));

describe('dif-train ddpm --backend onnxruntime', () => {
  it('20 steps give the losses of the same 20 steps on wasm (1e-3 relative)', async () => {
    const o = { ...quiet, config: TINY_DDPM, data };
    const ort = await trainDdpm({ ...o, out: join(root, 'd-ort'), backend: 'onnxruntime' });
    const wasm = await trainDdpm({ ...o, out: join(root, 'd-wasm'), backend: 'wasm', workers: 1 });
    expect(ort.losses).toHaveLength(20);
    expect(ort.backend).toBe('onnxruntime');
    expect(maxRel(ort.losses, wasm.losses)).toBeLessThan(1e-3);
    // both wrote the same checkpoint layout: weights and Adam slots under the same names
    const a = loadCheckpoint(ort.checkpoint!, 'ddpm');
    const b = loadCheckpoint(wasm.checkpoint!, 'ddpm');
    expect([...a.weights.keys()]).toEqual([...b.weights.keys()]);
    expect(a.optimizer?.step).toBe(20);
    expect([...a.optimizer!.slots.exp_avg.keys()]).toEqual([...b.optimizer!.slots.exp_avg.keys()]);
  });

  for (const options of [
    { use_affine_level: true },
    { use_scale_shift_norm: true, num_heads: 2 },
  ]) {
    it(`UNet options ${JSON.stringify(options)} train the same on both backends (1e-3 relative)`, async () => {
      const config = structuredClone(tinyDdpm({ dropout: 0.1, iters: 3 }));
      Object.assign(config.model!.unet!, options);
      const o = { ...quiet, config, data };
      const tag = Object.keys(options).length;
      const ort = await trainDdpm({ ...o, out: join(root, `v${tag}-ort`), backend: 'onnxruntime' });
      const wasm = await trainDdpm({
        ...o,
        out: join(root, `v${tag}-wasm`),
        backend: 'wasm',
        workers: 1,
      });
      expect(maxRel(ort.losses, wasm.losses)).toBeLessThan(1e-3);
      const ck = loadCheckpoint(ort.checkpoint!, 'ddpm');
      // gamma and beta (scale and shift): 2 x 8 values from the 8-wide noise embedding
      expect(ck.weights.get('downs.0.res_block.noise_func.noise_func.0.weight')!.shape).toEqual([
        16, 8,
      ]);
    });
  }

  it('--resume is exact, also when the run switches backend (wasm -> onnxruntime)', async () => {
    const o = { ...quiet, config: TINY_DDPM, data };
    const full = await trainDdpm({ ...o, out: join(root, 'r-full'), backend: 'onnxruntime' });
    const part = join(root, 'r-part');
    await trainDdpm({ ...o, out: part, backend: 'onnxruntime', iters: 8 });
    const rest = await trainDdpm({
      ...quiet,
      out: part,
      resume: true,
      backend: 'onnxruntime',
      iters: 20,
    });
    expect(rest.losses).toEqual(full.losses.slice(8));
    const mixed = join(root, 'r-mixed');
    await trainDdpm({ ...o, out: mixed, backend: 'wasm', workers: 1, iters: 8 });
    const after = await trainDdpm({
      ...quiet,
      out: mixed,
      resume: true,
      backend: 'onnxruntime',
      iters: 20,
    });
    expect(maxRel(after.losses, full.losses.slice(8))).toBeLessThan(1e-3);
  });

  it('gradient checkpointing (config key, or switched on at --resume) gives the same losses', async () => {
    const o = { ...quiet, data, backend: 'onnxruntime' as const };
    const plain = await trainDdpm({
      ...o,
      config: TINY_DDPM,
      out: join(root, 'c-plain'),
      iters: 6,
    });
    const config = structuredClone(TINY_DDPM);
    config.model!.unet!.use_checkpoint = true;
    const ck = await trainDdpm({ ...o, config, out: join(root, 'c-key'), iters: 6 });
    expect(maxRel(ck.losses, plain.losses)).toBeLessThan(1e-5);
    // a run started without it switches it on when resumed; the checkpoint's config says so
    const part = join(root, 'c-resumed');
    await trainDdpm({ ...o, config: TINY_DDPM, out: part, iters: 3 });
    const rest = await trainDdpm({
      ...o,
      out: part,
      resume: true,
      iters: 6,
      gradientCheckpointing: true,
    });
    expect(maxRel(rest.losses, plain.losses.slice(3))).toBeLessThan(1e-5);
    const saved = loadCheckpoint(rest.checkpoint!, 'ddpm').config as {
      model: { unet: { use_checkpoint?: boolean } };
    };
    expect(saved.model.unet.use_checkpoint).toBe(true);
  });

  it('--resume from a stripped checkpoint (no optimizer state) continues with a fresh Adam', async () => {
    const o = { ...quiet, config: TINY_DDPM, data, backend: 'onnxruntime' as const };
    const part = join(root, 's-part');
    const a = await trainDdpm({ ...o, out: part, iters: 8 });
    const file = readSafetensors(a.checkpoint!);
    const stripped = join(root, 's-stripped.safetensors');
    writeSafetensorsSync(
      stripped,
      new Map([...file.tensors].filter(([k]) => !k.startsWith('optim.'))),
      file.metadata,
    );
    const ck = loadCheckpoint(stripped, 'ddpm');
    expect(ck.optimizer).toBeNull();
    const r = await trainDdpm({ ...quiet, out: join(root, 's-next'), resume: stripped, iters: 12 });
    expect(r.losses).toHaveLength(4);
    expect(r.step).toBe(12);
    expect(loadCheckpoint(r.checkpoint!, 'ddpm').optimizer?.step).toBe(4);
  });

  it('a real SIGTERM stops the run within a step with a checkpoint (ORT, and wasm on one thread); NaN stops it', async () => {
    const others = process.listeners('SIGTERM');
    process.removeAllListeners('SIGTERM');
    try {
      for (const backend of ['onnxruntime', 'wasm'] as const) {
        const out = join(root, `sig-${backend}`);
        const r = await trainDdpm({
          ...quiet,
          config: TINY_DDPM,
          data,
          out,
          backend,
          workers: 1,
          handleSigint: true,
          onStep: (step) => {
            if (step === 2) process.kill(process.pid, 'SIGTERM');
          },
        });
        expect(r.stopped, backend).toBe('interrupted');
        expect(r.step, backend).toBeLessThanOrEqual(3);
        expect(loadCheckpoint(out, 'ddpm').step).toBe(r.step);
      }
    } finally {
      for (const l of others) process.on('SIGTERM', l);
    }
    const nan = await trainDdpm({
      ...quiet,
      config: TINY_DDPM,
      data,
      out: join(root, 'nan'),
      backend: 'onnxruntime',
      lossHook: (step, loss) => (step === 3 ? Number.NaN : loss),
    });
    expect(nan.stopped).toBe('nan');
    expect(nan.step).toBe(2);
    // a loss spike before the NaN: the checkpoint before it is named and kept, resume works
    const out = join(root, 'nan-spike');
    const cfg = { ...TINY_DDPM, train: { ...TINY_DDPM.train!, save_checkpoint_freq: 2 } };
    const spiked = await trainDdpm({
      ...quiet,
      config: cfg,
      data,
      out,
      backend: 'onnxruntime',
      iters: 16,
      keep: 1,
      lossHook: (step, loss) => (step === 12 ? Number.NaN : step > 8 ? loss * 1000 : loss),
    });
    expect(spiked.stopped).toBe('nan');
    expect(spiked.checkpoint).toBe(join(out, 'checkpoints', 'ddpm-00000008.safetensors'));
    expect(readdirSync(join(out, 'checkpoints')).sort()).toEqual([
      'ddpm-00000008.safetensors',
      'ddpm-00000010.diverged.safetensors',
    ]);
    const again = await trainDdpm({
      ...quiet,
      data,
      out,
      backend: 'onnxruntime',
      iters: 16,
      resume: true,
    });
    expect(again.stopped).toBe('done');
    expect(again.losses).toHaveLength(8);
  });
});

describe('dif-train head --backend onnxruntime', () => {
  const losses = (out: string) =>
    readFileSync(join(out, 'log.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l))
      .filter((l) => l.event === undefined);

  it('20 steps give the losses (and their terms) of the same 20 steps on wasm (1e-3 relative)', async () => {
    const o = { ...quiet, config: TINY_HEAD, ddpm, data, val: data, colorWeight: 0.5 };
    const ort = await trainHead({ ...o, out: join(root, 'h-ort'), backend: 'onnxruntime' });
    const wasm = await trainHead({ ...o, out: join(root, 'h-wasm'), backend: 'wasm' });
    expect(ort.losses).toHaveLength(20);
    expect(maxRel(ort.losses, wasm.losses)).toBeLessThan(1e-3);
    const a = losses(join(root, 'h-ort'));
    const b = losses(join(root, 'h-wasm'));
    for (const k of ['loss_in', 'loss_grad', 'loss_color'])
      expect(
        maxRel(
          a.map((r) => r[k]),
          b.map((r) => r[k]),
        ),
        k,
      ).toBeLessThan(1e-3);
  });

  it('--resume is exact', async () => {
    const o = { ...quiet, config: TINY_HEAD, ddpm, data, backend: 'onnxruntime' as const };
    const full = await trainHead({ ...o, out: join(root, 'hr-full') });
    const part = join(root, 'hr-part');
    await trainHead({ ...o, out: part, epochs: 4 });
    const rest = await trainHead({
      ...quiet,
      out: part,
      resume: true,
      backend: 'onnxruntime',
      epochs: 10,
    });
    expect(rest.losses).toEqual(full.losses.slice(8));
  });

  it('--feature-cache: the cached crops and losses of wasm (1e-3), one shuffled pass per epoch, --resume exact', async () => {
    const cfg = { ...TINY_HEAD, train: { ...TINY_HEAD.train!, n_epoch: 2 } };
    const o = { ...quiet, config: cfg, ddpm, data, val: data, featureCache: 2 };
    const ort = await trainHead({ ...o, out: join(root, 'hc-ort'), backend: 'onnxruntime' });
    const wasm = await trainHead({ ...o, out: join(root, 'hc-wasm'), backend: 'wasm' });
    // 2 sampler epochs of 4 pairs in batches of 2 = 4 cached batches per epoch, 2 epochs.
    expect(ort.step).toBe(8);
    expect(ort.losses).toHaveLength(8);
    expect(maxRel(ort.losses, wasm.losses)).toBeLessThan(1e-3);
    // validation on features computed once per batch: the val losses of wasm too
    const val = (out: string) =>
      readFileSync(join(out, 'log.jsonl'), 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l))
        .filter((l) => l.event === 'val')
        .map((l) => l.val_loss as number);
    expect(val(join(root, 'hc-ort'))).toHaveLength(2);
    expect(maxRel(val(join(root, 'hc-ort')), val(join(root, 'hc-wasm')))).toBeLessThan(1e-3);
    const part = join(root, 'hc-part');
    const a = await trainHead({ ...o, out: part, backend: 'onnxruntime', epochs: 1 });
    expect(a.losses).toEqual(ort.losses.slice(0, 4));
    const b = await trainHead({
      ...quiet,
      data,
      val: data,
      out: part,
      resume: true,
      backend: 'onnxruntime',
      epochs: 2,
    });
    expect(b.losses).toEqual(ort.losses.slice(4));
  });
});

describe('log.jsonl', () => {
  it('a rerun into a folder whose run died before its first checkpoint does not repeat steps', async () => {
    const out = join(root, 'relog');
    const o = { ...quiet, config: TINY_DDPM, data, out, backend: 'onnxruntime' as const };
    await trainDdpm({ ...o, iters: 3 });
    // the run "died" before any checkpoint: records stay, checkpoints go
    rmSync(join(out, 'checkpoints'), { recursive: true, force: true });
    await trainDdpm({ ...o, iters: 3 });
    const steps = readFileSync(join(out, 'log.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l))
      .filter((r) => r.event === undefined)
      .map((r) => r.step);
    expect(steps).toEqual([1, 2, 3]);
  });
});
