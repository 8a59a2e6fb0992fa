import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { beforeAll, describe, expect, it } from 'vitest';
import { Adam } from './adam';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

const vec = (v: number[]) => tf.variable(tf.tensor1d(v));

describe('Adam / AdamW (PyTorch update)', () => {
  it('the first step moves each weight by lr * sign(g) (bias-corrected moments)', () => {
    // Step 1: m = 0.1 g, v = 0.001 g^2; m / (1 - 0.9) = g, sqrt(v / (1 - 0.999)) = |g|, so
    // the update is lr * g / (|g| + eps).
    const p = vec([1, 2]);
    const adam = new Adam(new Map([['w', p]]), { type: 'adam', lr: 0.1 });
    adam.apply(new Map([['w', tf.tensor1d([0.5, -1])]]));
    // float32 arithmetic: within a few ulps of the float64 value.
    const [w0, w1] = Array.from(p.dataSync());
    expect(w0).toBeCloseTo(1 - 0.1 * (0.5 / (0.5 + 1e-8)), 6);
    expect(w1).toBeCloseTo(2 + 0.1 * (1 / (1 + 1e-8)), 6);
    // AdamW first decays the weights by lr * weight_decay (default 0.01).
    const q = vec([1, 2]);
    const adamw = new Adam(new Map([['w', q]]), { type: 'adamw', lr: 0.1 });
    adamw.apply(new Map([['w', tf.tensor1d([0.5, -1])]]));
    const got = Array.from(q.dataSync());
    expect(got[0]).toBeCloseTo(1 * (1 - 0.001) - 0.1, 6);
    expect(got[1]).toBeCloseTo(2 * (1 - 0.001) + 0.1, 6);
  });

  it('state() / load() resume exactly (PyTorch slot names exp_avg, exp_avg_sq)', () => {
    const grads = [
      [0.3, -0.2],
      [0.1, 0.4],
      [-0.5, 0.05],
    ].map((g) => tf.tensor1d(g));
    const a = vec([0.5, -0.5]);
    const one = new Adam(new Map([['w', a]]), { type: 'adamw', lr: 0.05 });
    for (const g of grads) one.apply(new Map([['w', g]]));
    const b = vec([0.5, -0.5]);
    const first = new Adam(new Map([['w', b]]), { type: 'adamw', lr: 0.05 });
    first.apply(new Map([['w', grads[0]]]));
    const state = first.state();
    expect(Object.keys(state.slots)).toEqual(['exp_avg', 'exp_avg_sq']);
    expect(state.step).toBe(1);
    const c = tf.variable(b.clone());
    const resumed = new Adam(new Map([['w', c]]), { type: 'adamw', lr: 0.05 });
    resumed.load(state);
    for (const g of grads.slice(1)) resumed.apply(new Map([['w', g]]));
    expect(Array.from(c.dataSync())).toEqual(Array.from(a.dataSync()));
  });
});
