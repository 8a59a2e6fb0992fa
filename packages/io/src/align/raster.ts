/**
 * One-channel float rasters for registration: gray conversion, area resize, Gaussian blur,
 * gradients and the gradient-magnitude features that infrared and visible images share.
 */
import type { FloatImage } from '../convert';
import { DifFusionError } from '../errors';

/** A one-channel float image, row-major. */
export interface Raster {
  width: number;
  height: number;
  data: Float32Array;
}

/** Luma of a planar image (BT.601 weights on RGB; the one channel of a gray image). */
export function toGray(img: FloatImage): Raster {
  const { width, height, channels, data } = img;
  const n = width * height;
  if (channels === 1) return { width, height, data: data.slice(0, n) };
  if (channels !== 3) throw new DifFusionError(`expected 1 or 3 channels, got ${channels}`);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++)
    out[i] = 0.299 * data[i] + 0.587 * data[n + i] + 0.114 * data[2 * n + i];
  return { width, height, data: out };
}

/**
 * Resampling weights along one axis for `src` -> `dst` samples (half-pixel centres): area
 * averaging when shrinking (each output pixel averages the source interval it covers), linear
 * interpolation when enlarging.
 */
function axisWeights(src: number, dst: number): { start: Int32Array; w: Float32Array[] } {
  const start = new Int32Array(dst);
  const w: Float32Array[] = [];
  const f = src / dst;
  for (let o = 0; o < dst; o++) {
    if (f > 1) {
      const a = o * f;
      const b = (o + 1) * f;
      const i0 = Math.floor(a);
      const i1 = Math.min(Math.ceil(b), src);
      const ws = new Float32Array(i1 - i0);
      for (let i = i0; i < i1; i++) ws[i - i0] = (Math.min(b, i + 1) - Math.max(a, i)) / f;
      start[o] = i0;
      w.push(ws);
    } else {
      const u = Math.min(Math.max((o + 0.5) * f - 0.5, 0), src - 1);
      const i0 = Math.floor(u);
      const t = u - i0;
      start[o] = i0;
      w.push(i0 + 1 < src ? Float32Array.of(1 - t, t) : Float32Array.of(1));
    }
  }
  return { start, w };
}

/** Resize to width x height: area average when shrinking, bilinear when enlarging (per axis). */
export function resizeArea(r: Raster, width: number, height: number): Raster {
  if (width === r.width && height === r.height) return { width, height, data: r.data.slice() };
  const ax = axisWeights(r.width, width);
  const ay = axisWeights(r.height, height);
  const tmp = new Float32Array(width * r.height);
  for (let y = 0; y < r.height; y++) {
    const row = y * r.width;
    for (let x = 0; x < width; x++) {
      const ws = ax.w[x];
      const s0 = row + ax.start[x];
      let s = 0;
      for (let k = 0; k < ws.length; k++) s += ws[k] * r.data[s0 + k];
      tmp[y * width + x] = s;
    }
  }
  const out = new Float32Array(width * height);
  for (let y = 0; y < height; y++) {
    const ws = ay.w[y];
    const y0 = ay.start[y];
    const o = y * width;
    for (let k = 0; k < ws.length; k++) {
      const wk = ws[k];
      const src = (y0 + k) * width;
      for (let x = 0; x < width; x++) out[o + x] += wk * tmp[src + x];
    }
  }
  return { width, height, data: out };
}

/** Separable Gaussian blur (edges clamped). */
export function blur(r: Raster, sigma: number): Raster {
  if (!(sigma > 0)) return { ...r, data: r.data.slice() };
  const rad = Math.max(1, Math.ceil(3 * sigma));
  const k = new Float32Array(2 * rad + 1);
  let s = 0;
  for (let i = -rad; i <= rad; i++) s += k[i + rad] = Math.exp((-i * i) / (2 * sigma * sigma));
  for (let i = 0; i < k.length; i++) k[i] /= s;
  const { width: w, height: h } = r;
  const tmp = new Float32Array(w * h);
  for (let y = 0; y < h; y++) {
    const row = y * w;
    for (let x = 0; x < w; x++) {
      let a = 0;
      for (let i = -rad; i <= rad; i++) {
        const xx = x + i < 0 ? 0 : x + i >= w ? w - 1 : x + i;
        a += k[i + rad] * r.data[row + xx];
      }
      tmp[row + x] = a;
    }
  }
  const out = new Float32Array(w * h);
  for (let y = 0; y < h; y++) {
    for (let i = -rad; i <= rad; i++) {
      const yy = y + i < 0 ? 0 : y + i >= h ? h - 1 : y + i;
      const ki = k[i + rad];
      const src = yy * w;
      const o = y * w;
      for (let x = 0; x < w; x++) out[o + x] += ki * tmp[src + x];
    }
  }
  return { width: w, height: h, data: out };
}

/** Central-difference gradients (one-sided at the edges). */
export function gradients(r: Raster): { gx: Float32Array; gy: Float32Array } {
  const { width: w, height: h, data: d } = r;
  const gx = new Float32Array(w * h);
  const gy = new Float32Array(w * h);
  for (let y = 0; y < h; y++) {
    const ym = y > 0 ? y - 1 : 0;
    const yp = y < h - 1 ? y + 1 : h - 1;
    const dy = yp - ym || 1;
    for (let x = 0; x < w; x++) {
      const xm = x > 0 ? x - 1 : 0;
      const xp = x < w - 1 ? x + 1 : w - 1;
      const i = y * w + x;
      gx[i] = (d[y * w + xp] - d[y * w + xm]) / (xp - xm || 1);
      gy[i] = (d[yp * w + x] - d[ym * w + x]) / dy;
    }
  }
  return { gx, gy };
}

/**
 * The registration feature: the gradient magnitude of the lightly blurred image, compressed
 * (m / (m + c), c = the mean magnitude) so that a few strong edges do not outweigh the many
 * weak ones both cameras see, then blurred by `sigma` to widen the basin of convergence.
 */
export function edgeFeature(r: Raster, sigma: number): Raster {
  const b = blur(r, 0.7);
  const { gx, gy } = gradients(b);
  const n = r.width * r.height;
  const m = new Float32Array(n);
  let mean = 0;
  for (let i = 0; i < n; i++) {
    m[i] = Math.sqrt(gx[i] * gx[i] + gy[i] * gy[i]);
    mean += m[i];
  }
  mean = mean / n || 1;
  for (let i = 0; i < n; i++) m[i] = m[i] / (m[i] + mean);
  return blur({ width: r.width, height: r.height, data: m }, sigma);
}

/**
 * Edge orientation as a double-angle vector field (polarity-free: a dark-to-bright edge and
 * its reverse give the same vector), weighted by the compressed gradient magnitude and
 * smoothed by `sigma` (a smoothed structure tensor). Channels c = w cos 2θ, s = w sin 2θ.
 */
export function orientationFeature(r: Raster, sigma: number): { c: Raster; s: Raster } {
  const b = blur(r, 0.7);
  const { gx, gy } = gradients(b);
  const n = r.width * r.height;
  let mean = 0;
  const m = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    m[i] = Math.sqrt(gx[i] * gx[i] + gy[i] * gy[i]);
    mean += m[i];
  }
  mean = mean / n || 1;
  const c = new Float32Array(n);
  const s = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    if (m[i] === 0) continue;
    const w = 1 / (m[i] + mean) / m[i];
    c[i] = (gx[i] * gx[i] - gy[i] * gy[i]) * w;
    s[i] = 2 * gx[i] * gy[i] * w;
  }
  const { width, height } = r;
  return {
    c: blur({ width, height, data: c }, sigma),
    s: blur({ width, height, data: s }, sigma),
  };
}
