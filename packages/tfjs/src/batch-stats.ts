/** The BatchNorm2d batch statistics a TfOps recorded, read back as arrays. */
import type { BatchStatValues } from '@dif-fusion/nn';
import * as tf from '@tensorflow/tfjs-core';
import type { TfOps } from './tf-ops';

/** Read (and dispose) the batch statistics a TfOps recorded, as arrays. */
export function takeBatchStats(ops: Pick<TfOps, 'batchStats'>): BatchStatValues[] {
  const out = ops.batchStats.map((s) => ({
    site: s.site,
    mean: s.mean.dataSync() as Float32Array,
    variance: s.variance.dataSync() as Float32Array,
    count: s.count,
  }));
  for (const s of ops.batchStats) tf.dispose([s.mean, s.variance]);
  ops.batchStats.length = 0;
  return out;
}
