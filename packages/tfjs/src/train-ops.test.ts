import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { beforeAll, describe, expect, it } from 'vitest';
import { TrainOps } from './train-ops';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

const noParams = { get: (name: string): tf.Tensor => Promise.reject(name) as never };

describe('TrainOps: seeded dropout', () => {
  it('shards of a batch draw exactly the masks of the whole batch', () => {
    const x = tf.ones([4, 3, 3, 2]);
    const whole = new TrainOps(noParams, { stepSeed: 7 }).dropout(x, 0.5);
    const a = new TrainOps(noParams, { stepSeed: 7, sampleOffset: 0 });
    const b = new TrainOps(noParams, { stepSeed: 7, sampleOffset: 2 });
    const halves = tf.concat([
      a.dropout(tf.ones([2, 3, 3, 2]), 0.5),
      b.dropout(tf.ones([2, 3, 3, 2]), 0.5),
    ]);
    expect(Array.from(halves.dataSync())).toEqual(Array.from(whole.dataSync()));
    // Values are 0 or 1 / (1 - rate); both occur.
    const values = new Set(whole.dataSync());
    expect([...values].sort()).toEqual([0, 2]);
  });

  it('each dropout call and each step seed has its own masks; rate 0 is the identity', () => {
    const x = tf.ones([2, 4, 4, 1]);
    const ops = new TrainOps(noParams, { stepSeed: 1 });
    const first = Array.from(ops.dropout(x, 0.3).dataSync());
    const second = Array.from(ops.dropout(x, 0.3).dataSync());
    expect(second).not.toEqual(first);
    const other = Array.from(new TrainOps(noParams, { stepSeed: 2 }).dropout(x, 0.3).dataSync());
    expect(other).not.toEqual(first);
    expect(ops.dropout(x, 0)).toBe(x);
  });
});
