import { Rng } from '@dif-fusion/schedules';
import * as tf from '@tensorflow/tfjs-core';
// gradients (vitest resolves this ESM file; plain Node cannot, see README)
import '@tensorflow/tfjs-core/dist/register_all_gradients.js';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';
import { describe, expect, it } from 'vitest';
import { fusionLoss, luma, sobelMagnitude } from './loss';

function rand(shape: number[], seed: number): Float32Array {
  const rng = new Rng(seed);
  return new Float32Array(shape.reduce((a, b) => a * b, 1)).map(() => rng.uniformRange(-1, 1));
}

/** Direct 3x3 Sobel on one NCHW channel (zero padding), for reference. */
function sobelRef(x: Float32Array, h: number, w: number): Float32Array {
  const kx = [-1, 0, 1, -2, 0, 2, -1, 0, 1];
  const ky = [1, 2, 1, 0, 0, 0, -1, -2, -1];
  const out = new Float32Array(h * w);
  const at = (i: number, j: number) => (i < 0 || j < 0 || i >= h || j >= w ? 0 : x[i * w + j]);
  for (let i = 0; i < h; i++)
    for (let j = 0; j < w; j++) {
      let gx = 0;
      let gy = 0;
      for (let a = 0; a < 3; a++)
        for (let b = 0; b < 3; b++) {
          gx += kx[a * 3 + b] * at(i + a - 1, j + b - 1);
          gy += ky[a * 3 + b] * at(i + a - 1, j + b - 1);
        }
      out[i * w + j] = Math.abs(gx) + Math.abs(gy);
    }
  return out;
}

const shape = { vis: [2, 3, 6, 7], ir: [2, 1, 6, 7] };
const inputs = () => ({
  vis: tf.tensor(rand(shape.vis, 1), shape.vis),
  ir: tf.tensor(rand(shape.ir, 2), shape.ir),
  fused: tf.tensor(rand(shape.vis, 3), shape.vis),
});

/** Gradient of the total loss w.r.t. fused, on the current backend. */
function lossGrad(options = {}): { value: number; grad: Float32Array } {
  const { vis, ir, fused } = inputs();
  const { value, grad } = tf.valueAndGrad((f: tf.Tensor) => fusionLoss(vis, ir, f, options).loss)(
    fused,
  );
  const out = { value: value.dataSync()[0], grad: grad.dataSync() as Float32Array };
  tf.dispose([vis, ir, fused, value, grad]);
  return out;
}

describe('fusion loss', () => {
  it('sobelMagnitude matches a direct 3x3 convolution with zero padding', async () => {
    await tf.setBackend('cpu');
    const x = rand([1, 5, 9, 1], 4);
    const got = sobelMagnitude(tf.tensor4d(x, [1, 5, 9, 1])).dataSync();
    const want = sobelRef(x, 5, 9);
    for (let i = 0; i < want.length; i++) expect(got[i]).toBeCloseTo(want[i], 5);
  });

  it('layouts agree: NCHW and NHWC give the same losses', async () => {
    await tf.setBackend('cpu');
    const { vis, ir, fused } = inputs();
    const t = (x: tf.Tensor) => tf.transpose(x, [0, 2, 3, 1]);
    const a = fusionLoss(vis, ir, fused);
    const b = fusionLoss(t(vis), t(ir), t(fused), { layout: 'NHWC' });
    expect(b.lossIn.dataSync()[0]).toBeCloseTo(a.lossIn.dataSync()[0], 6);
    expect(b.lossGrad.dataSync()[0]).toBeCloseTo(a.lossGrad.dataSync()[0], 6);
  });

  it('alpha weights the gradient term', async () => {
    await tf.setBackend('cpu');
    const { vis, ir, fused } = inputs();
    const r = fusionLoss(vis, ir, fused, { alpha: 0.25 });
    expect(r.loss.dataSync()[0]).toBeCloseTo(
      r.lossIn.dataSync()[0] + 0.25 * r.lossGrad.dataSync()[0],
      6,
    );
  });

  it('colour term: off by default, zero for fused = visible, weighted when on', async () => {
    await tf.setBackend('cpu');
    const { vis, ir, fused } = inputs();
    expect(fusionLoss(vis, ir, fused).lossColor).toBeUndefined();
    expect(fusionLoss(vis, ir, vis, { colorWeight: 1 }).lossColor!.dataSync()[0]).toBeCloseTo(0, 7);
    // a grey image has no chroma: its colour loss is the visible image's mean |CbCr|
    const grey = tf.tile(tf.mean(fused, 1, true), [1, 3, 1, 1]);
    const r = fusionLoss(vis, ir, grey, { colorWeight: 2 });
    const c = r.lossColor!.dataSync()[0];
    expect(c).toBeGreaterThan(0.05);
    expect(r.loss.dataSync()[0]).toBeCloseTo(
      r.lossIn.dataSync()[0] + r.lossGrad.dataSync()[0] + 2 * c,
      5,
    );
  });

  it('luma space: hand-computed terms on luma, and why it differs from rgb', async () => {
    await tf.setBackend('cpu');
    // a saturated red pixel (R .8, G = B = -.8 in [-1, 1]) under an infrared of 0
    const vis = tf.tensor4d([0.8, -0.8, -0.8], [1, 3, 1, 1]);
    const ir = tf.tensor4d([0], [1, 1, 1, 1]);
    const y = 0.299 * 0.8 - 0.587 * 0.8 - 0.114 * 0.8; // Y(V) = -0.3216
    expect(luma(tf.tensor4d([0.8, -0.8, -0.8], [1, 1, 1, 3])).dataSync()[0]).toBeCloseTo(y, 6);
    // F = V: luma target max(Y(V), I) = 0 -> |Y - 0|; rgb target (.8, 0, 0) -> mean(0, .8, .8)
    const l = fusionLoss(vis, ir, vis, { space: 'luma' });
    expect(l.lossIn.dataSync()[0]).toBeCloseTo(-y, 6);
    const r = fusionLoss(vis, ir, vis);
    expect(r.lossIn.dataSync()[0]).toBeCloseTo(1.6 / 3, 6);
    // Sobel of a 1x1 image with zero padding is 0 everywhere but the centre: |S(x)| = 0 at
    // the one pixel (every tap but the centre is padding, and the centre tap is 0)
    expect(l.lossGrad.dataSync()[0]).toBeCloseTo(0, 6);
    // the best lightness change d (F = V + d on every channel): luma -Y(V) = .3216 (ycbcr-max),
    // rgb the median of max(V_c, I) - V_c = .8, a far brighter pixel
    const best = (space: 'rgb' | 'luma') => {
      let arg = 0;
      let min = Infinity;
      for (let d = 0; d <= 1; d += 0.001) {
        const f = tf.add(vis, d);
        const v = fusionLoss(vis, ir, f, { space }).lossIn.dataSync()[0];
        if (v < min - 1e-9) [min, arg] = [v, d];
      }
      return arg;
    };
    expect(best('luma')).toBeCloseTo(-y, 2);
    expect(best('rgb')).toBeCloseTo(0.8, 2);
  });

  it('gradient w.r.t. fused matches central differences (cpu)', async () => {
    await tf.setBackend('cpu');
    const { grad } = lossGrad({ colorWeight: 0.5 });
    const { vis, ir, fused } = inputs();
    const base = fused.dataSync().slice();
    const rng = new Rng(5);
    const eps = 1e-3;
    for (let k = 0; k < 20; k++) {
      const idx = rng.int(base.length);
      const at = (d: number) => {
        const v = base.slice();
        v[idx] += d;
        return tf.tidy(
          () =>
            fusionLoss(vis, ir, tf.tensor(v, shape.vis), { colorWeight: 0.5 }).loss.dataSync()[0],
        );
      };
      const numeric = (at(eps) - at(-eps)) / (2 * eps);
      // |.| kinks: the loss is piecewise linear, so the derivative is exact away from kinks
      expect(Math.abs(numeric - grad[idx])).toBeLessThan(2e-3 + 0.05 * Math.abs(grad[idx]));
    }
  });

  it('gradients work on wasm and equal the cpu gradients', async () => {
    await tf.setBackend('cpu');
    const cpu = lossGrad({ colorWeight: 0.5 });
    await tf.setBackend('wasm');
    const wasm = lossGrad({ colorWeight: 0.5 });
    expect(wasm.value).toBeCloseTo(cpu.value, 5);
    let maxDiff = 0;
    for (let i = 0; i < cpu.grad.length; i++)
      maxDiff = Math.max(maxDiff, Math.abs(cpu.grad[i] - wasm.grad[i]));
    expect(maxDiff).toBeLessThan(1e-6);
    await tf.setBackend('cpu');
  });
});
