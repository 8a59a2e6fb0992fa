import { disposeFeatures } from '@dif-fusion/fusion-head/tfjs';
import { useBackend } from '@dif-fusion/tfjs';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  buildFeatureCache,
  cacheBatch,
  cachedBytes,
  cachedFeatures,
  cacheOrder,
} from './feature-cache';

beforeAll(async () => {
  await useBackend('cpu');
});

describe('feature cache', () => {
  it('round-trips features through plain arrays (null and empty entries stay null)', () => {
    const a = tf.tensor([1, 2, 3, 4, 5, 6], [1, 1, 2, 3]);
    const b = tf.tensor([7, 8], [1, 1, 1, 2]);
    const x = new Float32Array([9, 10]);
    const c = cacheBatch(x, 1, [
      [a, null],
      [b, tf.zeros([0])],
    ]);
    expect(cachedBytes(c)).toBe((2 + 6 + 2) * 4);
    const back = cachedFeatures(c);
    expect(back[0][0]?.shape).toEqual([1, 1, 2, 3]);
    expect(Array.from(back[0][0]?.dataSync() ?? [])).toEqual([1, 2, 3, 4, 5, 6]);
    expect(back[0][1]).toBeNull();
    expect(Array.from(back[1][0]?.dataSync() ?? [])).toEqual([7, 8]);
    expect(back[1][1]).toBeNull();
    tf.dispose([a, b, ...(back.flat().filter(Boolean) as tf.Tensor[])]);
  });

  it('visits every cached batch once per epoch, the same order for the same seed and epoch', () => {
    const o = cacheOrder(10, 3, 7);
    expect(o.slice().sort((p, q) => p - q)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(cacheOrder(10, 3, 7)).toEqual(o);
    expect(cacheOrder(10, 4, 7)).not.toEqual(o);
    expect(cacheOrder(10, 3, 8)).not.toEqual(o);
  });

  it('builds k batches (progress after each: batches, bytes), or returns null once a stop is requested', async () => {
    const tensorsBefore = tf.memory().numTensors;
    const reports: [number, number][] = [];
    let calls = 0;
    const next = async () => {
      calls++;
      const feats = [[tf.fill([1, 2, 2, 1], calls)]];
      const c = cacheBatch(new Float32Array([calls]), 1, feats);
      disposeFeatures(feats);
      return c;
    };
    const pool = await buildFeatureCache(3, next, {
      progress: (done, bytes) => reports.push([done, bytes]),
      stopRequested: () => false,
    });
    expect(pool?.map((c) => Array.from(c.feats[0][0]?.data ?? []))).toEqual([
      [1, 1, 1, 1],
      [2, 2, 2, 2],
      [3, 3, 3, 3],
    ]);
    // each batch: x (1 float) and one 2x2 feature map, 4 bytes a float
    expect(reports).toEqual([
      [1, 20],
      [2, 40],
      [3, 60],
    ]);
    calls = 0;
    const none = await buildFeatureCache(3, next, { stopRequested: () => true });
    expect(none).toBeNull();
    expect(calls).toBe(1);
    expect(tf.memory().numTensors).toBe(tensorsBefore); // every feature tensor was disposed
  });
});
