import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { splitBatch } from '@dif-fusion/train';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { trainDdpm } from './ddpm';
import { writeSyntheticPairs } from './synthetic';
import { tinyDdpm } from './test-utils';

/** The datasets block is set per test (batch 4 to split over workers). */
const TINY_DDPM = tinyDdpm({ dropout: 0.1, iters: 4 });

// The worker threads run @dif-fusion/train's built script (dist/worker.js); `turbo test`
// builds first.
const trainDir = dirname(createRequire(import.meta.url).resolve('@dif-fusion/train/package.json'));
const built = existsSync(join(trainDir, 'dist', 'worker.js'));

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
    console.warn('[skip] dist/worker.js not built: run pnpm --filter @dif-fusion/train build');
});
