import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { describe, expect, it } from 'vitest';
import { TfOps } from './tf-ops';

describe('TfOps', () => {
  it('positional encoding matches the SR3 formula', async () => {
    await tf.setBackend('cpu');
    const ops = new TfOps({ get: () => tf.scalar(0) });
    const enc = ops.positionalEncoding(tf.tensor2d([[0.5]]), 4).arraySync() as number[][];
    // count = 2: freqs [1, exp(-ln(1e4)/2)] = [1, 0.01]
    expect(enc[0][0]).toBeCloseTo(Math.sin(0.5), 6);
    expect(enc[0][1]).toBeCloseTo(Math.sin(0.005), 6);
    expect(enc[0][2]).toBeCloseTo(Math.cos(0.5), 6);
    expect(enc[0][3]).toBeCloseTo(Math.cos(0.005), 6);
  });
});
