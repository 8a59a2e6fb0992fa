/**
 * The head trainer's feature cache. The DDPM is frozen and (with fixed feature noise) its
 * features are a pure function of the crop, so they can be computed once and reused: on the
 * wasm backend the three UNet passes cost ~2.7x the head's own forward + backward step, so a
 * cache of crops makes each step ~3.5x cheaper (BENCHMARKS.md). Features live as plain
 * Float32Arrays in the JS heap (not in the backend's memory, which wasm caps at 4 GiB) and
 * become tensors per step. The ONNX Runtime engine fills the same `CachedBatch` (NCHW, from
 * its features-only graph) and feeds it to its head-only graph: ~1.6x less CPU per step
 * there, where the UNet's passes are cheaper beside the head (BENCHMARKS.md).
 */

import type { HeadFeatures } from '@dif-fusion/fusion-head/tfjs';
import { deriveSeed, Rng } from '@dif-fusion/schedules';
import * as tf from '@tensorflow/tfjs-core';

/**
 * One batch: its images `[B,4,H,W]` (visible RGB + IR) and the features of each time step,
 * `[step][decoder index]` (null where the head reads none), in the layout of the engine
 * that computed them (tfjs NHWC, ONNX Runtime NCHW).
 */
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
 * Compute `k` batches of features with `next` (a training engine's `cacheFeatures` on fresh
 * crops), reporting progress (batches done, bytes held) after each. Returns
 * null when `stopRequested()` turns true (checked between batches, after letting signals
 * through). How progress is shown is the caller's (dif-train prints a progress line).
 */
export async function buildFeatureCache(
  k: number,
  next: () => Promise<CachedBatch>,
  options: { progress?: (done: number, bytes: number) => void; stopRequested: () => boolean },
): Promise<CachedBatch[] | null> {
  const pool: CachedBatch[] = [];
  let bytes = 0;
  for (let i = 0; i < k; i++) {
    const c = await next();
    pool.push(c);
    bytes += cachedBytes(c);
    options.progress?.(i + 1, bytes);
    await new Promise((r) => setImmediate(r)); // let Ctrl-C / SIGTERM handlers run
    if (options.stopRequested()) return null;
  }
  return pool;
}
