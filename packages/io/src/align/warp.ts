/**
 * Resampling an image onto another camera's pixel grid through a plane transform, and the
 * geometry of the two footprints (coverage mask, common overlap rectangle).
 */
import type { FloatImage } from '../convert';
import { applyPoint, imageCorners, inv3, type Mat3, mul3, pixelScale } from './matrix';
import { resizeArea } from './raster';

/** The linear scale of a transform near a point (sqrt of the Jacobian's determinant). */
export function localScale(m: Mat3, x: number, y: number): number {
  const w = m[6] * x + m[7] * y + m[8];
  const [u, v] = applyPoint(m, x, y);
  const a = (m[0] - m[6] * u) / w;
  const b = (m[1] - m[7] * u) / w;
  const c = (m[3] - m[6] * v) / w;
  const d = (m[4] - m[7] * v) / w;
  return Math.sqrt(Math.abs(a * d - b * c));
}

/**
 * Resamples `src` onto a `width` x `height` grid: output pixel p takes src at
 * inv(srcToDst) p, bilinear. When the transform shrinks the source (scale < 0.75) the source
 * is first area-averaged to about the output's pixel size, so there is no aliasing. Returns
 * the image (0 where the source does not reach) and the coverage mask (1 inside, 0 outside,
 * fractional over the outermost pixel).
 */
export function warpImage(
  src: FloatImage,
  srcToDst: Mat3,
  width: number,
  height: number,
): { image: FloatImage; mask: Float32Array } {
  let img = src;
  let m: Mat3 = srcToDst;
  const s = localScale(srcToDst, src.width / 2, src.height / 2);
  if (s < 0.75) {
    const w = Math.max(1, Math.round(src.width * s));
    const h = Math.max(1, Math.round(src.height * s));
    const planes = [];
    const n = src.width * src.height;
    for (let c = 0; c < src.channels; c++)
      planes.push(
        resizeArea(
          { width: src.width, height: src.height, data: src.data.subarray(c * n, (c + 1) * n) },
          w,
          h,
        ).data,
      );
    const data = new Float32Array(w * h * src.channels);
    for (const [c, p] of planes.entries()) data.set(p, c * w * h);
    img = { width: w, height: h, channels: src.channels, data };
    // dst <- src full <- src small
    m = mul3(srcToDst, inv3(pixelScale(w / src.width, h / src.height)));
  }
  const back = inv3(m); // dst -> src
  const { width: sw, height: sh, channels } = img;
  const n = width * height;
  const sn = sw * sh;
  const out = new Float32Array(n * channels);
  const mask = new Float32Array(n);
  const d = img.data;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const w = back[6] * x + back[7] * y + back[8];
      const u = (back[0] * x + back[1] * y + back[2]) / w;
      const v = (back[3] * x + back[4] * y + back[5]) / w;
      // Coverage: 1 inside the footprint [-0.5, s - 0.5], fading linearly over the half pixel beyond.
      const cu = Math.min(1, Math.max(0, 2 * Math.min(u + 1, sw - u)));
      const cv = Math.min(1, Math.max(0, 2 * Math.min(v + 1, sh - v)));
      const cov = cu * cv;
      if (cov <= 0) continue;
      const uu = Math.min(Math.max(u, 0), sw - 1);
      const vv = Math.min(Math.max(v, 0), sh - 1);
      const x0 = Math.min(Math.floor(uu), Math.max(sw - 2, 0));
      const y0 = Math.min(Math.floor(vv), Math.max(sh - 2, 0));
      const x1 = Math.min(x0 + 1, sw - 1);
      const y1 = Math.min(y0 + 1, sh - 1);
      const fx = uu - x0;
      const fy = vv - y0;
      const o = y * width + x;
      mask[o] = cov;
      for (let c = 0; c < channels; c++) {
        const b = c * sn;
        const a0 = d[b + y0 * sw + x0] * (1 - fx) + d[b + y0 * sw + x1] * fx;
        const a1 = d[b + y1 * sw + x0] * (1 - fx) + d[b + y1 * sw + x1] * fx;
        out[c * n + o] = a0 * (1 - fy) + a1 * fy;
      }
    }
  }
  return { image: { width, height, channels, data: out }, mask };
}

/** An axis-aligned rectangle in pixels (x, y: top-left pixel). */
export interface Rect {
  x: number;
  y: number;
  width: number;
  height: number;
}

/**
 * The common overlap on the target grid: the largest axis-aligned rectangle of whole pixels
 * inside both the target frame and the source footprint mapped by `srcToDst` (for the
 * near-axis-aligned footprints of a camera rig: inside the footprint's inner box). Undefined
 * when they do not overlap.
 */
export function overlapRect(
  srcToDst: Mat3,
  srcSize: [number, number],
  dstSize: [number, number],
): Rect | undefined {
  const [tl, tr, br, bl] = imageCorners(srcSize[0], srcSize[1]).map(([x, y]) =>
    applyPoint(srcToDst, x, y),
  );
  const left = Math.max(tl[0], bl[0], -0.5);
  const right = Math.min(tr[0], br[0], dstSize[0] - 0.5);
  const top = Math.max(tl[1], tr[1], -0.5);
  const bottom = Math.min(bl[1], br[1], dstSize[1] - 0.5);
  // Whole pixels whose square lies inside [left, right] x [top, bottom].
  const x0 = Math.ceil(left + 0.5 - 1e-9);
  const x1 = Math.floor(right - 0.5 + 1e-9);
  const y0 = Math.ceil(top + 0.5 - 1e-9);
  const y1 = Math.floor(bottom - 0.5 + 1e-9);
  if (x1 < x0 || y1 < y0) return undefined;
  return { x: x0, y: y0, width: x1 - x0 + 1, height: y1 - y0 + 1 };
}
