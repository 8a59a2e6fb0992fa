import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadCheckpoint } from './checkpoint';
import { trainDdpm } from './ddpm';
import { writeSyntheticPairs } from './synthetic';
import { tinyDdpm } from './test-utils';

/** A tiny DDPM with dropout on (its masks must resume exactly too). */
const TINY_DDPM = tinyDdpm({ dropout: 0.1, iters: 40 });

let root: string;
let data: string;
beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'dif-train-ddpm-'));
  data = await writeSyntheticPairs(join(root, 'data'), { count: 4, width: 24, height: 20 });
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

const base = {
  config: TINY_DDPM,
  quiet: true,
  handleSigint: false,
  workers: 1,
  backend: 'wasm' as const,
};
const mean = (a: number[]) => a.reduce((s, v) => s + v, 0) / a.length;

describe('dif-train ddpm', () => {
  it('lowers the loss of a tiny config on generated data, writes log, checkpoints, loss curve and sample grid', async () => {
    const out = join(root, 'fall');
    const r = await trainDdpm({
      ...base,
      config: {
        ...TINY_DDPM,
        train: { ...TINY_DDPM.train!, val_freq: 40, save_checkpoint_freq: 10 },
      },
      data,
      out,
      keep: 2,
      sampleSteps: 4,
      sampleCount: 2,
    });
    expect(r.stopped).toBe('done');
    expect(r.losses).toHaveLength(40);
    // eps-prediction loss starts near 1 (unit-variance noise) and must fall clearly
    expect(mean(r.losses.slice(0, 5))).toBeGreaterThan(0.5);
    expect(mean(r.losses.slice(-10))).toBeLessThan(0.7 * mean(r.losses.slice(0, 5)));
    // keep 2: steps 30 and 40 remain
    expect(readdirSync(join(out, 'checkpoints')).sort()).toEqual([
      'ddpm-00000030.safetensors',
      'ddpm-00000040.safetensors',
    ]);
    const ck = loadCheckpoint(out, 'ddpm');
    expect(ck.step).toBe(40);
    expect(ck.weights.get('init_conv.weight')?.shape).toEqual([8, 4, 3, 3]);
    expect(ck.optimizer?.step).toBe(40);
    const log = readFileSync(join(out, 'log.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    const steps = log.filter((l) => l.event === undefined);
    expect(steps.map((l) => l.step)).toEqual(Array.from({ length: 40 }, (_, i) => i + 1));
    expect(steps.map((l) => l.loss)).toEqual(r.losses);
    const png = readFileSync(join(out, 'samples', 'step-00000040.png'));
    expect(png.subarray(1, 4).toString()).toBe('PNG');
    expect(readFileSync(join(out, 'loss.png')).subarray(1, 4).toString()).toBe('PNG');
  }, 120_000);

  it('--resume continues with exactly the loss sequence of an uninterrupted run', async () => {
    const full = await trainDdpm({ ...base, data, out: join(root, 'full'), iters: 6 });
    const part = join(root, 'part');
    const a = await trainDdpm({ ...base, data, out: part, iters: 3 });
    expect(a.losses).toEqual(full.losses.slice(0, 3));
    const b = await trainDdpm({
      quiet: true,
      backend: 'wasm', // the default is onnxruntime: resume on the backend that started
      handleSigint: false,
      workers: 1,
      data,
      out: part,
      iters: 6,
      resume: true,
    });
    expect(b.losses).toEqual(full.losses.slice(3));
    expect(b.step).toBe(6);
  }, 120_000);

  it('Ctrl-C (SIGINT) saves a checkpoint after the current step and stops', async () => {
    const others = process.listeners('SIGINT');
    process.removeAllListeners('SIGINT');
    try {
      const out = join(root, 'sigint');
      const r = await trainDdpm({
        ...base,
        handleSigint: true,
        data,
        out,
        iters: 10,
        onStep: (step) => {
          if (step === 2) process.emit('SIGINT');
        },
      });
      expect(r.stopped).toBe('interrupted');
      expect(r.step).toBe(2);
      expect(r.checkpoint).toMatch(/ddpm-00000002\.safetensors$/);
      expect(loadCheckpoint(out, 'ddpm').step).toBe(2);
      expect(process.listenerCount('SIGINT')).toBe(0); // handler removed again
    } finally {
      for (const l of others) process.on('SIGINT', l);
    }
  }, 60_000);

  it('a NaN loss stops training and keeps the last good checkpoint', async () => {
    const out = join(root, 'nan');
    const r = await trainDdpm({
      ...base,
      config: { ...TINY_DDPM, train: { ...TINY_DDPM.train!, save_checkpoint_freq: 2 } },
      data,
      out,
      iters: 10,
      lossHook: (step, loss) => (step === 5 ? Number.NaN : loss),
    });
    expect(r.stopped).toBe('nan');
    expect(r.step).toBe(4);
    expect(r.checkpoint).toMatch(/ddpm-00000004\.safetensors$/);
    expect(loadCheckpoint(out, 'ddpm').step).toBe(4);
  }, 120_000);

  it('after a NaN stop, names and keeps the checkpoint from before the loss spiked; resume from it works', async () => {
    const out = join(root, 'nan-spike');
    const cfg = { ...TINY_DDPM, train: { ...TINY_DDPM.train!, save_checkpoint_freq: 2 } };
    // steps 11..15 spike (x1000), step 16 is NaN: checkpoints 12 and 14 hold the divergence
    const r = await trainDdpm({
      ...base,
      config: cfg,
      data,
      out,
      iters: 20,
      keep: 2,
      lossHook: (step, loss) => (step === 16 ? Number.NaN : step > 10 ? loss * 1000 : loss),
    });
    expect(r.stopped).toBe('nan');
    expect(r.step).toBe(15);
    expect(r.checkpoint).toBe(join(out, 'checkpoints', 'ddpm-00000010.safetensors'));
    // the --keep 2 rotation spared it; the later ones are set aside, not picked by --resume
    expect(readdirSync(join(out, 'checkpoints')).sort()).toEqual([
      'ddpm-00000010.safetensors',
      'ddpm-00000012.diverged.safetensors',
      'ddpm-00000014.diverged.safetensors',
    ]);
    const nan = readFileSync(join(out, 'log.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l))
      .find((l) => l.event === 'nan');
    expect(nan.good_checkpoint).toBe(r.checkpoint);
    const again = await trainDdpm({
      ...base,
      config: undefined,
      data,
      out,
      iters: 20,
      resume: true,
    });
    expect(again.stopped).toBe('done');
    expect(again.losses).toHaveLength(10);
    expect(loadCheckpoint(out, 'ddpm').step).toBe(20);
  }, 120_000);

  it('removes the temp files of killed writes (process gone) from the run folders, keeps live ones', async () => {
    const out = join(root, 'stale');
    const stale = join(out, 'checkpoints', '.ddpm-00000002.safetensors.9999999.0badc0de.tmp');
    const stalePlot = join(out, '.loss.png.9999998.0badc0de.tmp');
    const live = join(
      out,
      'checkpoints',
      `.ddpm-00000002.safetensors.${process.ppid}.0badc0de.tmp`,
    );
    mkdirSync(join(out, 'checkpoints'), { recursive: true });
    for (const f of [stale, stalePlot, live]) writeFileSync(f, 'half a checkpoint');
    const r = await trainDdpm({ ...base, data, out, iters: 2 });
    expect(r.stopped).toBe('done');
    expect(existsSync(stale)).toBe(false);
    expect(existsSync(stalePlot)).toBe(false);
    expect(existsSync(live)).toBe(true);
  }, 60_000);

  it('bad data folders and misuse fail with one-line errors', async () => {
    await expect(
      trainDdpm({ ...base, data: join(root, 'nope'), out: join(root, 'x1'), iters: 1 }),
    ).rejects.toThrow(/nope/);
    await expect(trainDdpm({ ...base, out: join(root, 'x2'), iters: 1 })).rejects.toThrow(/--data/);
    await expect(trainDdpm({ ...base, data, out: join(root, 'full'), iters: 1 })).rejects.toThrow(
      /--resume/,
    );
    await expect(
      trainDdpm({ ...base, data, out: join(root, 'x3'), iters: 1, crop: 9 }),
    ).rejects.toThrow(/resolution must be a positive multiple of 2/);
  }, 60_000);
});
