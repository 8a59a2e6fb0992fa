import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DdpmConfig } from './config';
import { trainDdpm } from './ddpm';
import { writeSyntheticPairs } from './synthetic';
import { splitBatch } from './workers';

const TINY_DDPM: Partial<DdpmConfig> = {
  model: {
    unet: {
      in_channel: 4,
      out_channel: 4,
      inner_channel: 8,
      norm_groups: 4,
      channel_multiplier: [1, 2],
      attn_res: [8],
      res_blocks: 1,
      dropout: 0.1,
    },
    beta_schedule: {
      train: { schedule: 'linear', n_timestep: 100, linear_start: 1e-4, linear_end: 0.05 },
    },
    diffusion: { loss: 'l2' },
  },
  train: {
    n_iter: 4,
    val_freq: 0,
    save_checkpoint_freq: 0,
    print_freq: 10,
    optimizer: { type: 'adamw', lr: 2e-3 },
  },
};

// The worker threads run the built script (dist/worker.js); `turbo test` builds first.
const built = existsSync(new URL('../dist/worker.js', import.meta.url));

let root: string;
let data: string;
beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'dif-train-workers-'));
  data = await writeSyntheticPairs(join(root, 'data'), {
    count: 4,
    width: 24,
    height: 20,
    seed: 5,
  });
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('data-parallel workers', () => {
  it('splits a batch into contiguous slices differing by at most one', () => {
    expect(splitBatch(5, 2)).toEqual([
      [0, 3],
      [3, 2],
    ]);
    expect(splitBatch(4, 3)).toEqual([
      [0, 2],
      [2, 1],
      [3, 1],
    ]);
  });

  it.skipIf(!built)(
    '2 workers give the losses of 1 (gradients averaged each step)',
    async () => {
      const cfg = {
        ...TINY_DDPM,
        datasets: { train: { dataroot: null, resolution: 16, batch_size: 4 } },
      };
      const base = {
        config: cfg,
        data,
        quiet: true,
        handleSigint: false,
        iters: 4,
        backend: 'wasm' as const, // workers are a tfjs-backend feature
      };
      const one = await trainDdpm({ ...base, out: join(root, 'w1'), workers: 1 });
      const two = await trainDdpm({ ...base, out: join(root, 'w2'), workers: 2 });
      expect(two.workers).toBe(2);
      expect(two.losses).toHaveLength(4);
      for (let i = 0; i < 4; i++) expect(two.losses[i]).toBeCloseTo(one.losses[i], 4);
    },
    120_000,
  );
  if (!built)
    console.warn('[skip] dist/worker.js not built: run pnpm --filter @dif-fusion/trainer build');
});
