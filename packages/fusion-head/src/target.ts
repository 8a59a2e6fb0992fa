/**
 * Fusion targets: what the fusion loss asks the head to produce, computed once from the
 * sources in plain TypeScript (targets carry no gradient, so every training realisation, tfjs
 * or an ONNX training graph, receives them as inputs instead of recomputing them).
 *
 * - `max` (official, SeAFusion's): intensity max(Y(V), I), gradient max(S(Y(V)), S(I)). This is
 *   what the `ycbcr-max` baseline computes, plus sharpening; a head trained on it learns to
 *   reproduce that baseline, the infrared camera's cloud texture and sensor noise included.
 * - `salient` (dif-fusion v4): the infrared adds lightness only where it is informative.
 *   With I_d the infrared denoised (Gaussian, `denoise_sigma`) and local means m(.) (Gaussian,
 *   `context_sigma`):
 *
 *     s   = smoothstep(salient_low, salient_high, I_d - m(I_d))   a hot target stands out of
 *                                                                  its surroundings
 *     e   = 1 - smoothstep(dark_low, dark_high, m(Y))             the visible image is dark
 *     w   = max(s, e, ir_floor)
 *     Y_T = Y + w max(0, I_d - Y)
 *     c   = smoothstep(edge_low, edge_high, S(I_d))               an infrared edge strong
 *                                                                  enough to be structure
 *     u   = 1 - (1 - e) (1 - smoothstep(smooth_low, smooth_high, m4(S(Y))))
 *                                                                  not a smooth, well-exposed
 *                                                                  region (m4: sigma 4)
 *     G_T = gradient_gain max(S(Y), S(Y_T), ir_gradient max(s, ir_structure c, ir_texture u) S(I_d))
 *
 *   I_d is the infrared denoised where the visible image is dark (I + e (blur(I) - I)).
 *
 *   The official gradient target max(S(V), S(I)) is what embosses the infrared camera's cloud
 *   and fixed-pattern texture into bright, smooth skies (there I < Y, so the intensity target
 *   is the visible image, but the infrared's texture gradients are larger than the sky's).
 *   Here the gradient target holds the visible image's detail, the intensity target's own
 *   edges and the infrared edges only where the infrared is salient (hot targets): never
 *   low-contrast infrared texture. Where the visible is dark (night), the infrared is used
 *   denoised (no grain). Non-salient infrared lightness is taken at `ir_floor` (0.9), which
 *   keeps colour closer to the visible image than ycbcr-max and lets hot targets stand out
 *   a little more from their lifted surroundings.
 *
 * Values are in [-1, 1] (as the networks see them); thresholds are on the [0, 1] scale.
 * Gaussian blurs are separable with reflect padding; written here because no maintained
 * pure-JS image library gives float32 planar blurs with PyTorch-free, exact reproducibility
 * (sharp works on 8/16-bit pixels and would quantise the targets).
 */

import { SOBEL_X, SOBEL_Y } from './sobel';

export type FusionTargetKind = 'max' | 'salient';

/** BT.601 luma weights (R, G, B); they sum to 1, so Y maps [-1, 1] images to [-1, 1]. */
export const LUMA_WEIGHTS = [0.299, 0.587, 0.114] as const;

export interface SalientTargetOptions {
  /** Gaussian sigma (px) of the infrared denoising. Default 1. */
  denoise_sigma?: number;
  /**
   * Denoise the infrared only where the visible image is dark (by the darkness weight e),
   * where its sensor noise would otherwise become grain; elsewhere it is used as it is.
   * Default true (false: everywhere).
   */
  dark_denoise_only?: boolean;
  /** Gaussian sigma (px) of the local means (the surroundings). Default 8. */
  context_sigma?: number;
  /** Infrared saliency I_d - m(I_d) ramps from 0 to 1 between these ([0,1] scale). */
  salient_low?: number;
  salient_high?: number;
  /** Visible darkness e ramps from 1 to 0 as the local visible luma goes between these. */
  dark_low?: number;
  dark_high?: number;
  /** Least infrared weight anywhere (1: max(Y, I_d) everywhere, as ycbcr-max). Default 0.9. */
  ir_floor?: number;
  /**
   * Weight of the salient infrared edges s S(I_d) in the gradient target (0: only the
   * visible image's and the intensity target's own edges). Default 1.
   */
  ir_gradient?: number;
  /**
   * Factor on the whole gradient target (1: the sources' own edge strength; above 1 asks
   * for edges slightly stronger than the sources', a mild sharpening). Default 1.
   */
  gradient_gain?: number;
  /**
   * Weight of the infrared's strong edges (structure: a building, a wire, a kerb) in the
   * gradient target wherever they are, also where the infrared is not salient (0: only
   * salient infrared edges). Its texture and noise stay out: an edge counts by the
   * ramp c = smoothstep(edge_low, edge_high, S(I_d)). Default 0.
   */
  ir_structure?: number;
  /**
   * The ramp of c on the Sobel magnitude |Gx| + |Gy| of the [0, 1]-scale infrared (a step of
   * height h gives 4h). Defaults 0.4 and 0.8 (steps of 0.1 to 0.2).
   */
  edge_low?: number;
  edge_high?: number;
  /**
   * Weight of all the infrared's edges, texture included, outside smooth well-exposed
   * regions (u above): where the visible image is dark or itself textured (foliage, clutter,
   * road markings), the infrared's detail adds information; in a bright smooth sky it is the
   * camera's cloud and fixed-pattern texture and stays out. Default 0.
   */
  ir_texture?: number;
  /**
   * The visible image counts as smooth where its local mean Sobel magnitude (|Gx| + |Gy| on
   * the [0, 1] scale, Gaussian sigma 4) is below `smooth_low`, as textured above
   * `smooth_high`. Defaults 0.1 and 0.25.
   */
  smooth_low?: number;
  smooth_high?: number;
}

export const SALIENT_TARGET_DEFAULTS: Readonly<Required<SalientTargetOptions>> = Object.freeze({
  denoise_sigma: 1,
  dark_denoise_only: true,
  context_sigma: 8,
  salient_low: 0.04,
  salient_high: 0.15,
  dark_low: 0.12,
  dark_high: 0.4,
  ir_floor: 0.9,
  ir_gradient: 1,
  gradient_gain: 1,
  ir_structure: 0,
  edge_low: 0.4,
  edge_high: 0.8,
  ir_texture: 0,
  smooth_low: 0.1,
  smooth_high: 0.25,
});

/** The option names (for config validation). */
export const SALIENT_TARGET_KEYS = Object.keys(
  SALIENT_TARGET_DEFAULTS,
) as (keyof SalientTargetOptions)[];

export interface FusionTarget {
  /** Target luma [H*W] in [-1, 1]. */
  intensity: Float32Array;
  /** Target Sobel magnitude of the luma [H*W] (on the [-1, 1] scale). */
  gradient: Float32Array;
  /** The infrared weight w [H*W] in [0, 1] (1 for `max` where I > Y). */
  weight: Float32Array;
}

/** Normalised 1-D Gaussian taps, radius ceil(3 sigma). */
function gaussianTaps(sigma: number): Float32Array {
  const r = Math.max(1, Math.ceil(3 * sigma));
  const k = new Float32Array(2 * r + 1);
  let sum = 0;
  for (let i = -r; i <= r; i++) {
    const v = Math.exp(-(i * i) / (2 * sigma * sigma));
    k[i + r] = v;
    sum += v;
  }
  for (let i = 0; i < k.length; i++) k[i] /= sum;
  return k;
}

/** Reflect index (PyTorch 'reflect': no edge repeat) into [0, n). */
function reflect(i: number, n: number): number {
  if (n === 1) return 0;
  const p = 2 * (n - 1);
  let j = ((i % p) + p) % p;
  if (j >= n) j = p - j;
  return j;
}

/** Separable Gaussian blur of a planar [h, w] image, reflect padding. sigma <= 0: a copy. */
export function gaussianBlurPlane(
  x: Float32Array,
  h: number,
  w: number,
  sigma: number,
): Float32Array {
  if (!(sigma > 0)) return x.slice();
  const k = gaussianTaps(sigma);
  const r = (k.length - 1) / 2;
  const tmp = new Float32Array(h * w);
  const out = new Float32Array(h * w);
  for (let y = 0; y < h; y++) {
    const row = y * w;
    for (let xx = 0; xx < w; xx++) {
      let s = 0;
      for (let t = -r; t <= r; t++) s += k[t + r] * x[row + reflect(xx + t, w)];
      tmp[row + xx] = s;
    }
  }
  for (let y = 0; y < h; y++) {
    for (let xx = 0; xx < w; xx++) {
      let s = 0;
      for (let t = -r; t <= r; t++) s += k[t + r] * tmp[reflect(y + t, h) * w + xx];
      out[y * w + xx] = s;
    }
  }
  return out;
}

/**
 * |sobel_x * x| + |sobel_y * x| with zero padding 1 of a plane [h, w]: the fusion loss's
 * `sobelMagnitude` with its kernels (./sobel.ts), on the host (targets carry no gradient).
 * Integer kernel weights on float32 values: the sums are exact in doubles, so the order of
 * the terms does not change the result.
 */
export function sobelMagnitudePlane(x: Float32Array, h: number, w: number): Float32Array {
  const out = new Float32Array(h * w);
  for (let y = 0; y < h; y++) {
    for (let xx = 0; xx < w; xx++) {
      let gx = 0;
      let gy = 0;
      for (let k = 0; k < 9; k++) {
        const yy = y + Math.floor(k / 3) - 1;
        const xk = xx + (k % 3) - 1;
        if (yy < 0 || yy >= h || xk < 0 || xk >= w) continue; // zero padding
        const v = x[yy * w + xk];
        gx += SOBEL_X[k] * v;
        gy += SOBEL_Y[k] * v;
      }
      out[y * w + xx] = Math.abs(gx) + Math.abs(gy);
    }
  }
  return out;
}

function smoothstep(lo: number, hi: number, v: number): number {
  const t = Math.min(1, Math.max(0, (v - lo) / (hi - lo)));
  return t * t * (3 - 2 * t);
}

/**
 * The target of one image: visible luma `y` and infrared `ir`, planar [h, w] in [-1, 1].
 */
export function fusionTarget(
  kind: FusionTargetKind,
  y: Float32Array,
  ir: Float32Array,
  h: number,
  w: number,
  options: SalientTargetOptions = {},
): FusionTarget {
  const n = h * w;
  if (y.length !== n || ir.length !== n)
    throw new Error(`fusionTarget: expected two [${h}x${w}] planes`);
  const intensity = new Float32Array(n);
  const weight = new Float32Array(n);
  if (kind === 'max') {
    for (let i = 0; i < n; i++) {
      intensity[i] = Math.max(y[i], ir[i]);
      weight[i] = ir[i] > y[i] ? 1 : 0;
    }
    const sy = sobelMagnitudePlane(y, h, w);
    const si = sobelMagnitudePlane(ir, h, w);
    const gradient = new Float32Array(n);
    for (let i = 0; i < n; i++) gradient[i] = Math.max(sy[i], si[i]);
    return { intensity, gradient, weight };
  }
  const o = { ...SALIENT_TARGET_DEFAULTS, ...options };
  const my = gaussianBlurPlane(y, h, w, o.context_sigma);
  const den = gaussianBlurPlane(ir, h, w, o.denoise_sigma);
  const dark = new Float32Array(n);
  const id = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    dark[i] = 1 - smoothstep(o.dark_low, o.dark_high, (my[i] + 1) / 2);
    id[i] = o.dark_denoise_only ? ir[i] + dark[i] * (den[i] - ir[i]) : den[i];
  }
  const mi = gaussianBlurPlane(id, h, w, o.context_sigma);
  const salient = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    // differences of [-1, 1] values are twice those on the [0, 1] scale
    salient[i] = smoothstep(o.salient_low, o.salient_high, (id[i] - mi[i]) / 2);
    const wt = Math.max(salient[i], dark[i], o.ir_floor);
    weight[i] = wt;
    intensity[i] = y[i] + wt * Math.max(0, id[i] - y[i]);
  }
  const sy = sobelMagnitudePlane(y, h, w);
  const st = sobelMagnitudePlane(intensity, h, w);
  const si = o.ir_gradient > 0 ? sobelMagnitudePlane(id, h, w) : null;
  // local visible texture, on the [0, 1] scale (S of [-1, 1] values is twice it)
  const texture = si && o.ir_texture > 0 ? gaussianBlurPlane(sy, h, w, 4) : null;
  const gradient = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const g = Math.max(sy[i], st[i]);
    if (!si) {
      gradient[i] = o.gradient_gain * g;
      continue;
    }
    // S(I_d) on the [-1, 1] scale is twice the [0, 1] scale's
    const c =
      o.ir_structure > 0 ? o.ir_structure * smoothstep(o.edge_low, o.edge_high, si[i] / 2) : 0;
    const u = texture
      ? o.ir_texture *
        (1 - (1 - dark[i]) * (1 - smoothstep(o.smooth_low, o.smooth_high, texture[i] / 2)))
      : 0;
    gradient[i] = o.gradient_gain * Math.max(g, o.ir_gradient * Math.max(salient[i], c, u) * si[i]);
  }
  return { intensity, gradient, weight };
}

/** Targets of a batch, `[N, 1, H, W]` each (luma space). */
export interface FusionTargetBatch {
  intensity: Float32Array;
  gradient: Float32Array;
}

/**
 * The luma-space targets of a batch: visible `[N,3,H,W]` and infrared `[N,1,H,W]` in [-1, 1]
 * (`layout` 'NHWC' for `[N,H,W,3]` / `[N,H,W,1]`). Every training realisation feeds these.
 */
export function fusionTargetBatch(
  kind: FusionTargetKind,
  vis: Float32Array,
  ir: Float32Array,
  n: number,
  h: number,
  w: number,
  options: SalientTargetOptions = {},
  layout: 'NCHW' | 'NHWC' = 'NCHW',
): FusionTargetBatch {
  const hw = h * w;
  if (vis.length !== n * 3 * hw || ir.length !== n * hw)
    throw new Error(`fusionTargetBatch: expected vis [${n},3,${h},${w}] and ir [${n},1,${h},${w}]`);
  const intensity = new Float32Array(n * hw);
  const gradient = new Float32Array(n * hw);
  const [wr, wg, wb] = LUMA_WEIGHTS;
  const y = new Float32Array(hw);
  for (let b = 0; b < n; b++) {
    if (layout === 'NCHW') {
      const o = b * 3 * hw;
      for (let p = 0; p < hw; p++)
        y[p] = wr * vis[o + p] + wg * vis[o + hw + p] + wb * vis[o + 2 * hw + p];
    } else {
      const o = b * 3 * hw;
      for (let p = 0; p < hw; p++)
        y[p] = wr * vis[o + 3 * p] + wg * vis[o + 3 * p + 1] + wb * vis[o + 3 * p + 2];
    }
    const t = fusionTarget(kind, y, ir.subarray(b * hw, (b + 1) * hw), h, w, options);
    intensity.set(t.intensity, b * hw);
    gradient.set(t.gradient, b * hw);
  }
  return { intensity, gradient };
}
