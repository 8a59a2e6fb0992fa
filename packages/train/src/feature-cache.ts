/**
 * The head trainer's feature cache. The DDPM is frozen and (with fixed feature noise) its
 * features are a pure function of the crop, so they can be computed once and reused: on the
 * wasm backend the three UNet passes cost ~2.7x the head's own forward + backward step, so a
 * cache of crops makes each step ~3.5x cheaper (BENCHMARKS.md). Features live as plain
 * Float32Arrays in the JS heap (not in the backend's memory, which wasm caps at 4 GiB) and
 * become tensors per step.
 */

import { Progress } from '@dif-fusion/cli-kit';
import { disposeFeatures, type HeadFeatures } from '@dif-fusion/fusion-head/tfjs';
import { deriveSeed, Rng } from '@dif-fusion/schedules';
import * as tf from '@tensorflow/tfjs-core';

/** One batch: its images `[B,4,H,W]` (visible RGB + IR) and the features of each time step. */
export interface CachedBatch {
  x: Float32Array;
  n: number;
  feats: ({ data: Float32Array; shape: number[] } | null)[][];
}

/** Copy a batch's features out of the backend (the tensors are left to the caller). */
export function cacheBatch(x: Float32Array, n: number, feats: HeadFeatures): CachedBatch {
  return {
    x,
    n,
    feats: feats.map((f) =>
      f.map((t) =>
        t && t.size > 0 ? { data: t.dataSync() as Float32Array, shape: t.shape.slice() } : null,
      ),
    ),
  };
}

/** Tensors of a cached batch's features (dispose with disposeFeatures). */
export function cachedFeatures(c: CachedBatch): HeadFeatures {
  return c.feats.map((f) => f.map((e) => (e ? tf.tensor(e.data, e.shape, 'float32') : null)));
}

/** Bytes a cached batch holds. */
export function cachedBytes(c: CachedBatch): number {
  let b = c.x.byteLength;
  for (const f of c.feats) for (const e of f) if (e) b += e.data.byteLength;
  return b;
}

/**
 * The order in which epoch `epoch` visits `k` cached batches: a Fisher–Yates permutation from
 * a seeded stream of its own, so step `s` of a resumed run visits the same batch as in an
 * uninterrupted one.
 */
export function cacheOrder(k: number, epoch: number, seed: number): number[] {
  return new Rng(deriveSeed(seed, 'cacheOrder', epoch)).permutation(k);
}

/**
 * Compute `k` batches of features with `next` (which returns tensors for this function to
 * copy out and dispose), printing progress (batches, rate, ETA, GiB) every 50. Returns null when
 * `stopRequested()` turns true (checked between batches, after letting signals through).
 */
export async function buildFeatureCache(
  k: number,
  next: () => Promise<{ x: Float32Array; n: number; feats: HeadFeatures }>,
  options: { say: (line: string) => void; stopRequested: () => boolean },
): Promise<CachedBatch[] | null> {
  const pool: CachedBatch[] = [];
  let bytes = 0;
  // The progress style of every dif-fusion tool, as lines through `say`.
  const progress = new Progress({
    label: 'feature cache',
    unit: 'batches',
    stream: { write: (s: string) => options.say(s.replace(/\n$/, '')) },
    bar: false,
    every: 50,
  });
  progress.start(k);
  for (let i = 0; i < k; i++) {
    const { x, n, feats } = await next();
    const c = cacheBatch(x, n, feats);
    disposeFeatures(feats);
    pool.push(c);
    bytes += cachedBytes(c);
    progress.update(i + 1, { extra: `${(bytes / 2 ** 30).toFixed(2)} GiB` });
    await new Promise((r) => setImmediate(r)); // let Ctrl-C / SIGTERM handlers run
    if (options.stopRequested()) return null;
  }
  return pool;
}
