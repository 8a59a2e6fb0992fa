/**
 * TfOps for training with reproducible dropout: every dropout mask comes from the
 * project's seeded Rng, keyed by (step seed, dropout call index, sample index in the whole
 * batch). So a resumed run draws the same masks as an uninterrupted one, and data-parallel
 * workers that each hold a slice of the batch draw exactly the masks a single process would.
 */

import { mixSeed, Rng } from '@dif-fusion/schedules';
import * as tf from '@tensorflow/tfjs-core';
import type { Conv2dFn } from './conv';
import { TfOps, type TfParamSource } from './tf-ops';

export class TrainOps extends TfOps {
  private calls = 0;

  /**
   * @param stepSeed drawn from the training Rng once per step
   * @param sampleOffset index of this tensor's first sample in the whole batch
   */
  constructor(
    params: TfParamSource,
    options: { conv2d?: Conv2dFn; stepSeed: number; sampleOffset?: number },
  ) {
    super(params, { training: true, conv2d: options.conv2d });
    this.stepSeed = options.stepSeed;
    this.sampleOffset = options.sampleOffset ?? 0;
  }
  private readonly stepSeed: number;
  private readonly sampleOffset: number;

  override dropout(x: tf.Tensor, rate: number): tf.Tensor {
    if (!(rate > 0)) return x;
    const call = this.calls++;
    const [n, ...rest] = x.shape;
    const per = rest.reduce((a, b) => a * b, 1);
    const mask = new Float32Array(n * per);
    for (let i = 0; i < n; i++)
      mask.set(dropoutMask(this.stepSeed, call, this.sampleOffset + i, per, rate), i * per);
    return tf.mul(x, tf.tensor(mask, x.shape));
  }
}

/**
 * The dropout mask of one sample: `count` values in the tensor's own (NHWC) order from
 * Rng(mixSeed(stepSeed, call, sample)), kept (1 / (1 - rate)) where nextUint32() >=
 * rate * 2^32, else 0. Every training backend draws its masks with this.
 */
export function dropoutMask(
  stepSeed: number,
  call: number,
  sample: number,
  count: number,
  rate: number,
): Float32Array {
  const rng = new Rng(mixSeed(stepSeed, call, sample));
  const keep = 1 / (1 - rate);
  const threshold = Math.floor(rate * 2 ** 32);
  const mask = new Float32Array(count);
  for (let j = 0; j < count; j++) mask[j] = rng.nextUint32() >= threshold ? keep : 0;
  return mask;
}
