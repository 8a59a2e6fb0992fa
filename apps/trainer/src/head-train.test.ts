import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadCheckpoint } from './checkpoint';
import type { HeadTrainConfig } from './config';
import { trainDdpm } from './ddpm';
import { trainHead } from './head-train';
import { writeSyntheticPairs } from './synthetic';
import { tinyDdpm, tinyHead } from './test-utils';

const TINY_DDPM = tinyDdpm({ dropout: 0, iters: 4 });

const TINY_HEAD = tinyHead({
  n_epoch: 8,
  optimizer: { type: 'adam', lr: 3e-3 },
  sheduler: { lr_policy: 'linear' },
});

let root: string;
let data: string;
let ddpm: string;
beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'dif-train-head-'));
  data = await writeSyntheticPairs(join(root, 'data'), {
    count: 4,
    width: 24,
    height: 20,
    seed: 3,
  });
  const r = await trainDdpm({
    config: TINY_DDPM,
    data,
    out: join(root, 'ddpm'),
    quiet: true,
    handleSigint: false,
    workers: 1,
  });
  ddpm = r.checkpoint as string;
}, 120_000);
afterAll(() => rmSync(root, { recursive: true, force: true }));

const base = { config: TINY_HEAD, quiet: true, handleSigint: false, backend: 'wasm' as const };
/** The records of a run's log.jsonl. */
const logRecords = (out: string) =>
  readFileSync(join(out, 'log.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
const valLosses = (out: string) =>
  logRecords(out)
    .filter((l) => l.event === 'val')
    .map((l) => l.val_loss as number);
/** The training-step records (those with a loss). */
const stepRecords = (out: string) => logRecords(out).filter((l) => l.loss !== undefined);

describe('dif-train head (tiny DDPM + head, end to end)', () => {
  it('lowers the fusion loss; validation loss and fused | visible | infrared PNG each epoch', async () => {
    const out = join(root, 'head');
    const r = await trainHead({ ...base, ddpm, data, val: data, out });
    expect(r.stopped).toBe('done');
    expect(r.step).toBe(16); // 8 epochs x (4 pairs / batch 2)
    const val = valLosses(out);
    expect(val).toHaveLength(8);
    expect(val[7]).toBeLessThan(0.8 * val[0]);
    expect(r.losses.slice(-4).reduce((a, b) => a + b) / 4).toBeLessThan(
      r.losses.slice(0, 4).reduce((a, b) => a + b) / 4,
    );
    for (const e of [1, 8])
      expect(
        readFileSync(join(out, 'val', `epoch-000${e}.png`))
          .subarray(1, 4)
          .toString(),
      ).toBe('PNG');
    const ck = loadCheckpoint(out, 'head');
    expect(ck.step).toBe(16);
    expect(ck.epoch).toBe(8);
    expect((ck.extra as { ddpm: string }).ddpm).toBe(ddpm);
    expect(existsSync(join(out, 'loss.png'))).toBe(true);
  }, 180_000);

  it('--resume continues with exactly the loss sequence of an uninterrupted run', async () => {
    const cfg = { ...TINY_HEAD, train: { ...TINY_HEAD.train!, n_epoch: 2 } };
    const full = await trainHead({ ...base, config: cfg, ddpm, data, out: join(root, 'hfull') });
    const part = join(root, 'hpart');
    const a = await trainHead({ ...base, config: cfg, ddpm, data, out: part, epochs: 1 });
    expect(a.losses).toEqual(full.losses.slice(0, 2));
    const b = await trainHead({
      quiet: true,
      backend: 'wasm', // the default is onnxruntime: resume on the backend that started
      handleSigint: false,
      data,
      out: part,
      epochs: 2,
      resume: true,
    });
    expect(b.losses).toEqual(full.losses.slice(2));
  }, 120_000);

  it('--feature-cache: an epoch is one shuffled pass over the cached crops; --resume stays exact', async () => {
    const cfg = { ...TINY_HEAD, train: { ...TINY_HEAD.train!, n_epoch: 2 } };
    const opts = { ...base, config: cfg, ddpm, data, featureCache: 2 };
    const full = await trainHead({ ...opts, out: join(root, 'cfull') });
    // 2 sampler epochs of 4 pairs in batches of 2 = 4 cached batches per epoch, 2 epochs.
    expect(full.step).toBe(8);
    expect(full.losses.every(Number.isFinite)).toBe(true);
    const part = join(root, 'cpart');
    const a = await trainHead({ ...opts, out: part, epochs: 1 });
    expect(a.losses).toEqual(full.losses.slice(0, 4));
    const b = await trainHead({
      quiet: true,
      backend: 'wasm', // the default is onnxruntime: resume on the backend that started
      handleSigint: false,
      data,
      out: part,
      resume: true,
      epochs: 2,
    });
    expect(b.losses).toEqual(full.losses.slice(4));
    expect((loadCheckpoint(part, 'head').config as HeadTrainConfig).train.feature_cache).toBe(2);
    await expect(
      trainHead({ ...opts, noise: 'random', out: join(root, 'crandom') }),
    ).rejects.toThrow(/feature_cache needs fixed feature noise/);
  }, 120_000);

  it('a real SIGTERM stops a --feature-cache run (whose steps await nothing) with a checkpoint', async () => {
    const others = process.listeners('SIGTERM');
    process.removeAllListeners('SIGTERM');
    try {
      const out = join(root, 'csigterm');
      const r = await trainHead({
        ...base,
        handleSigint: true,
        ddpm,
        data,
        out,
        featureCache: 2,
        // Delivered by the OS, i.e. only seen when the training loop lets the event loop run;
        // the end of an epoch (4 steps here) awaits file writes anyway, so stopping before it
        // shows the loop itself yields.
        onStep: (step) => {
          if (step === 1) process.kill(process.pid, 'SIGTERM');
        },
      });
      expect(r.stopped).toBe('interrupted');
      expect(r.step).toBeGreaterThanOrEqual(1);
      expect(r.step).toBeLessThan(4);
      expect(loadCheckpoint(out, 'head').step).toBe(r.step);
    } finally {
      for (const l of others) process.on('SIGTERM', l);
    }
  }, 60_000);

  it('--init starts from the weights of a head checkpoint (its validation loss, to 1e-6)', async () => {
    const src = join(root, 'head'); // trained by the first test
    const srcVal = valLosses(src).at(-1) as number;
    const out = join(root, 'hinit');
    const cfg = {
      ...TINY_HEAD,
      train: { ...TINY_HEAD.train!, n_epoch: 1, optimizer: { type: 'adam' as const, lr: 1e-12 } },
    };
    await trainHead({ ...base, config: cfg, ddpm, data, val: data, out, init: src });
    expect(valLosses(out)[0]).toBeCloseTo(srcVal, 6);
    // A head of another shape (one time step: no merge convolutions) is refused in one line.
    const other = { ...cfg, model_df: { ...TINY_HEAD.model_df!, t: [5] } };
    await expect(
      trainHead({ ...base, config: other, ddpm, data, out: join(root, 'hinit2'), init: src }),
    ).rejects.toThrow(/its weights do not fit this head/);
  }, 120_000);

  it('--color-weight adds the chroma term: loss = in + grad + w * color in every log line', async () => {
    const out = join(root, 'hcolor');
    const cfg = { ...TINY_HEAD, train: { ...TINY_HEAD.train!, n_epoch: 1 } };
    await trainHead({ ...base, config: cfg, ddpm, data, out, colorWeight: 0.5 });
    const steps = stepRecords(out);
    expect(steps).toHaveLength(2);
    for (const l of steps) {
      expect(l.loss_color).toBeGreaterThan(0);
      expect(l.loss).toBeCloseTo(l.loss_in + l.loss_grad + 0.5 * l.loss_color, 5);
    }
    expect((loadCheckpoint(out, 'head').config as HeadTrainConfig).train.loss).toEqual({
      color_weight: 0.5,
    });
  }, 120_000);

  it('--alpha and --loss-space luma: loss = in + alpha * grad, kept in the checkpoint config', async () => {
    const out = join(root, 'halpha');
    const cfg = { ...TINY_HEAD, train: { ...TINY_HEAD.train!, n_epoch: 1 } };
    await trainHead({ ...base, config: cfg, ddpm, data, out, alpha: 0.25, lossSpace: 'luma' });
    const steps = stepRecords(out);
    expect(steps).toHaveLength(2);
    for (const l of steps) expect(l.loss).toBeCloseTo(l.loss_in + 0.25 * l.loss_grad, 5);
    expect((loadCheckpoint(out, 'head').config as HeadTrainConfig).train.loss).toEqual({
      alpha: 0.25,
      space: 'luma',
    });
  }, 120_000);

  it('needs a DDPM checkpoint, reported in one line', async () => {
    await expect(trainHead({ ...base, data, out: join(root, 'h3') })).rejects.toThrow(/--ddpm/);
    await expect(
      trainHead({ ...base, ddpm: join(root, 'data'), data, out: join(root, 'h4') }),
    ).rejects.toThrow(/no ddpm checkpoint/);
  });
});
