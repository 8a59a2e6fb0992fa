import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { describe, expect, it } from 'vitest';
import { sobelMagnitude as sobelMagnitudeTf } from './loss';
import {
  fusionTarget,
  fusionTargetBatch,
  gaussianBlurPlane,
  LUMA_WEIGHTS,
  SALIENT_TARGET_DEFAULTS,
  sobelMagnitudePlane,
} from './target';

const fill = (n: number, v: number) => new Float32Array(n).fill(v);
/** Deterministic texture in [-amp, amp]. */
const texture = (h: number, w: number, base: number, amp: number) =>
  Float32Array.from(
    { length: h * w },
    (_, i) => base + amp * Math.sin(i * 1.7) * Math.cos(i * 0.3),
  );

describe('sobelMagnitudePlane and gaussianBlurPlane', () => {
  it('Sobel of a 3x3 ramp by hand (zero padding, |gx| + |gy|)', () => {
    // x = column index: interior gx = (2 + 2*2 + 2) - 0 = 8, gy = 0
    const x = Float32Array.from([0, 1, 2, 0, 1, 2, 0, 1, 2]);
    const s = sobelMagnitudePlane(x, 3, 3);
    expect(s[4]).toBe(8);
    // top-left (0,0): neighbours outside are 0: gx = (1 + 2*1) - 0 = 3, gy = (0 + 0 + 0)... rows:
    // a b c = 0 0 0 (outside), d=0 (outside), f=1, g=0 (outside), h=0, i=1
    // gx = c + 2f + i - (a + 2d + g) = 0 + 2 + 1 = 3; gy = a + 2b + c - (g + 2h + i) = -1 -> 1
    expect(s[0]).toBe(4);
  });
  it("is the fusion loss's sobelMagnitude (the one pair of kernels) on the host", async () => {
    const [h, w] = [9, 11];
    const x = texture(h, w, 0.1, 0.8);
    const want = await sobelMagnitudeTf(tf.tensor4d(x, [1, h, w, 1])).data();
    const got = sobelMagnitudePlane(x, h, w);
    for (let i = 0; i < got.length; i++) expect(got[i]).toBeCloseTo(want[i], 5);
  });
  it('a Gaussian blur keeps a constant image and the mean of a symmetric pattern', () => {
    const c = gaussianBlurPlane(fill(35, 0.25), 5, 7, 2);
    for (const v of c) expect(v).toBeCloseTo(0.25, 6);
    expect(gaussianBlurPlane(Float32Array.from([1, 2, 3]), 1, 3, 0)).toEqual(
      Float32Array.from([1, 2, 3]),
    );
  });
});

describe("fusionTarget('max'): the official target", () => {
  it('is max(Y, I) and max(S(Y), S(I))', () => {
    const y = texture(6, 5, 0, 0.5);
    const ir = texture(6, 5, 0.1, 0.7).reverse();
    const t = fusionTarget('max', y, ir, 6, 5);
    const sy = sobelMagnitudePlane(y, 6, 5);
    const si = sobelMagnitudePlane(ir, 6, 5);
    for (let i = 0; i < 30; i++) {
      expect(t.intensity[i]).toBe(Math.max(y[i], ir[i]));
      expect(t.gradient[i]).toBe(Math.max(sy[i], si[i]));
    }
  });
});

describe("fusionTarget('salient')", () => {
  const h = 48;
  const w = 48;
  const n = h * w;
  const at = (a: Float32Array, y: number, x: number) => a[y * w + x];

  it('a bright, smooth sky over low-contrast infrared texture stays the visible image (no embossing)', () => {
    // visible luma 0.6 ([0,1]: 0.8), infrared cloud texture below it: I < Y everywhere
    const y = fill(n, 0.6);
    const ir = texture(h, w, 0.0, 0.02);
    const t = fusionTarget('salient', y, ir, h, w);
    for (let i = 0; i < n; i++) expect(t.intensity[i]).toBe(y[i]);
    // the official target's gradient would carry the texture; the salient one does not
    const official = fusionTarget('max', y, ir, h, w);
    expect(at(official.gradient, 20, 20)).toBeGreaterThan(0.01);
    expect(at(t.gradient, 20, 20)).toBeLessThan(1e-6);
  });

  it('a hot target takes the infrared lightness; warm background is lifted by ir_floor only', () => {
    // visible luma 0.2 ([0,1] 0.6: well exposed); infrared background 0.4 (warmer than Y),
    // a hot 12x12 square at 0.95 in the middle
    const y = fill(n, 0.2);
    const ir = fill(n, 0.4);
    for (let r = 18; r < 30; r++) for (let c = 18; c < 30; c++) ir[r * w + c] = 0.95;
    const t = fusionTarget('salient', y, ir, h, w);
    // centre of the square: salient (I - m(I) well above 0.15 on the [0,1] scale): w = 1
    expect(at(t.weight, 24, 24)).toBe(1);
    expect(at(t.intensity, 24, 24)).toBeCloseTo(0.95, 5);
    // far corner: no saliency, not dark: w = ir_floor, Y_T = Y + 0.9 (I - Y)
    expect(at(t.weight, 2, 2)).toBeCloseTo(SALIENT_TARGET_DEFAULTS.ir_floor, 6);
    expect(at(t.intensity, 2, 2)).toBeCloseTo(0.2 + 0.9 * 0.2, 5);
    // ycbcr-max would give 0.4 there: the target stands out more (contrast 0.95 - 0.38)
    expect(at(t.intensity, 24, 24) - at(t.intensity, 2, 2)).toBeGreaterThan(0.95 - 0.4);
  });

  it('in the dark the infrared is taken whole but denoised (no grain)', () => {
    const y = fill(n, -0.9); // [0,1]: 0.05, dark
    const ir = texture(h, w, 0.3, 0.1); // noisy, above Y
    const t = fusionTarget('salient', y, ir, h, w);
    const den = gaussianBlurPlane(ir, h, w, SALIENT_TARGET_DEFAULTS.denoise_sigma);
    const std = (a: Float32Array) => {
      const m = a.reduce((s, v) => s + v, 0) / a.length;
      return Math.sqrt(a.reduce((s, v) => s + (v - m) ** 2, 0) / a.length);
    };
    for (const i of [0, 500, 1200, 2000]) {
      expect(t.weight[i]).toBe(1);
      expect(t.intensity[i]).toBeCloseTo(den[i], 5);
    }
    expect(std(t.intensity)).toBeLessThan(0.5 * std(ir));
  });

  it('ir_structure keeps a strong infrared edge under a bright sky, never its texture', () => {
    // bright smooth visible (I < Y everywhere: the intensity target is Y), infrared with
    // low-contrast texture on the left half and a step of 0.3 ([0,1] scale: 0.15) at column 36
    const y = fill(n, 0.6);
    const tex = texture(h, w, -0.2, 0.02);
    const ir = fill(n, -0.2);
    for (let r = 0; r < h; r++)
      for (let c = 0; c < w; c++)
        if (c < 24) ir[r * w + c] = tex[r * w + c];
        else if (c >= 36) ir[r * w + c] = 0.1;
    const off = fusionTarget('salient', y, ir, h, w, { denoise_sigma: 0 });
    const on = fusionTarget('salient', y, ir, h, w, { denoise_sigma: 0, ir_structure: 1 });
    const si = sobelMagnitudePlane(ir, h, w);
    // the step's dark side (column 35: below its surroundings, so not salient): |Gx| + |Gy| =
    // 4 x 0.3 = 1.2 ([-1,1] scale), 0.6 on the [0,1] scale: half-way up the 0.4-0.8 ramp
    // (c = 0.5), so half of it enters the target
    expect(at(si, 24, 35)).toBeCloseTo(1.2, 5);
    expect(at(off.gradient, 24, 35)).toBeLessThan(1e-6);
    expect(at(on.gradient, 24, 35)).toBeCloseTo(0.5 * 1.2, 5);
    // the texture (|S(I)| well below the ramp) stays out; the intensity target is unchanged
    expect(at(on.gradient, 24, 10)).toBeLessThan(1e-6);
    expect(on.intensity).toEqual(off.intensity);
  });

  it('ir_texture takes the infrared detail where the visible image is textured, not in a smooth bright sky', () => {
    // top half: bright smooth sky; bottom half: bright foliage (strong visible texture:
    // 4-px stripes). The infrared has low-contrast texture everywhere, below the visible luma.
    const y = fill(n, 0.6);
    for (let r = 24; r < h; r++)
      for (let c = 0; c < w; c++) y[r * w + c] = 0.5 + 0.3 * (Math.floor(c / 4) % 2 ? 1 : -1);
    const ir = texture(h, w, -0.2, 0.05);
    const opts = { denoise_sigma: 0, ir_texture: 1 };
    const t = fusionTarget('salient', y, ir, h, w, opts);
    const off = fusionTarget('salient', y, ir, h, w, { denoise_sigma: 0 });
    const si = sobelMagnitudePlane(ir, h, w);
    const sy = sobelMagnitudePlane(y, h, w);
    // sky (row 6): the visible is flat and bright: no infrared texture, as without the option
    expect(at(t.gradient, 6, 20)).toBe(at(off.gradient, 6, 20));
    expect(at(t.gradient, 6, 20)).toBeLessThan(1e-6);
    // foliage (row 40, column 21: inside a stripe, where S(Y) = 0): u = 1, so the target is
    // the infrared's texture there, which the option's absence leaves out
    const i = 40 * w + 21;
    expect(sy[i]).toBe(0);
    expect(si[i]).toBeGreaterThan(0.01);
    expect(t.gradient[i]).toBeCloseTo(si[i], 6);
    expect(off.gradient[i]).toBeLessThan(1e-6);
    expect(t.intensity).toEqual(off.intensity);
  });

  it('ir_floor 1 and no denoising is max(Y, I): the official intensity target', () => {
    const y = texture(h, w, 0.1, 0.5);
    const ir = texture(h, w, 0.2, 0.6).reverse();
    const t = fusionTarget('salient', y, ir, h, w, { ir_floor: 1, denoise_sigma: 0 });
    for (let i = 0; i < n; i++) expect(t.intensity[i]).toBeCloseTo(Math.max(y[i], ir[i]), 6);
  });
});

describe('fusionTargetBatch', () => {
  it('computes luma per image, the same in NCHW and NHWC layouts', () => {
    const nb = 2;
    const h = 8;
    const w = 9;
    const hw = h * w;
    const vis = texture(1, nb * 3 * hw, 0, 0.8);
    const ir = texture(1, nb * hw, 0.1, 0.8).reverse();
    const a = fusionTargetBatch('salient', vis, ir, nb, h, w, { context_sigma: 2 });
    // NHWC copy of vis
    const nhwc = new Float32Array(vis.length);
    for (let b = 0; b < nb; b++)
      for (let c = 0; c < 3; c++)
        for (let p = 0; p < hw; p++) nhwc[b * 3 * hw + 3 * p + c] = vis[b * 3 * hw + c * hw + p];
    const b2 = fusionTargetBatch('salient', nhwc, ir, nb, h, w, { context_sigma: 2 }, 'NHWC');
    expect(b2.intensity).toEqual(a.intensity);
    expect(b2.gradient).toEqual(a.gradient);
    // image 1 equals fusionTarget on its own luma
    const y = new Float32Array(hw);
    for (let p = 0; p < hw; p++)
      y[p] =
        LUMA_WEIGHTS[0] * vis[3 * hw + p] +
        LUMA_WEIGHTS[1] * vis[4 * hw + p] +
        LUMA_WEIGHTS[2] * vis[5 * hw + p];
    const one = fusionTarget('salient', y, ir.subarray(hw), h, w, { context_sigma: 2 });
    expect(a.intensity.subarray(hw)).toEqual(one.intensity);
  });
});
