/**
 * The head trainer's feature cache. The DDPM is frozen and (with fixed feature noise) its
 * features are a pure function of the crop, so they can be computed once and reused: on the
 * wasm backend the three UNet passes cost ~3x the head's own forward + backward step, so a
 * cache of crops makes each step ~3x cheaper. Features live as plain Float32Arrays in the JS
 * heap (not in the backend's memory, which wasm caps at 4 GiB) and become tensors per step.
 */
import type { HeadFeatures } from '@dif-fusion/fusion-head';
import { Rng } from '@dif-fusion/schedules';
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
  const rng = new Rng((Math.imul(seed ^ 0x1b873593, 0x9e3779b1) + epoch) >>> 0);
  const order = Array.from({ length: k }, (_, i) => i);
  for (let i = k - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [order[i], order[j]] = [order[j], order[i]];
  }
  return order;
}
