/**
 * Automatic visible -> infrared registration across modalities. The two cameras share edges,
 * not intensities, so both images become compressed gradient-magnitude maps
 * ({@link edgeFeature}); then
 *
 * 1. coarse search: for every scale on a 4% log grid the scaled visible edge-orientation field
 *    (double-angle vectors: polarity-free) is slid over the infrared one (one FFT
 *    correlation per scale, normalised over each overlap with summed-area tables), the score
 *    penalising small overlaps that correlate by chance; the best distinct peaks are kept;
 * 2. refinement: ECC (Evangelidis & Psarakis, the enhanced correlation coefficient, forward
 *    additive, as OpenCV's findTransformECC) on the orientation fields, coarse to fine,
 *    for a similarity, affine or homography, from the best few peaks;
 * 3. the score: the correlation of the gradient maps over the overlap before (the visible
 *    frame stretched onto the infrared one) and after; a low score, a transform outside the
 *    plausible range or too small an overlap make the estimate unreliable.
 *
 * Several pairs of one rig (same sizes) are registered jointly: their correlation maps are
 * summed and the ECC steps share one system.
 */
import { DifFusionError } from '../errors';
import { fft2, nextPow2 } from './fft';
import {
  applyPoint,
  imageCorners,
  inv3,
  isSane,
  type Mat3,
  mul3,
  normalise3,
  pixelScale,
  solve,
  type TransformKind,
} from './matrix';
import { edgeFeature, gradients, orientationFeature, type Raster, resizeArea } from './raster';

export interface RegisterOptions {
  /** The transform to estimate (default affine). */
  transform?: TransformKind;
  /**
   * Range of the visible->infrared scale searched, as factors of the scale that fits the
   * visible frame into the infrared one (default [0.3, 3]).
   */
  scaleRange?: [number, number];
  /** Correlation below which the estimate is refused (default 0.35: on the real rig pairs it refuses 5 of 7 wrong estimates and 3 of 106 right ones). */
  minScore?: number;
  /** Smallest overlap, as a fraction of the infrared frame's area (default 0.04). */
  minOverlap?: number;
}

export interface RegisterResult {
  /** Maps visible pixel coordinates to infrared pixel coordinates (row-major 3x3). */
  visToIr: number[];
  transform: TransformKind;
  /** Gradient correlation over the overlap with the frames stretched onto each other. */
  scoreBefore: number;
  /** The same after registration (1 = identical edge maps). */
  scoreAfter: number;
  /** Fraction of the infrared frame the visible image covers after registration. */
  overlap: number;
  /** Whether the estimate can be trusted; when not, `reason` says why. */
  reliable: boolean;
  reason?: string;
}

export interface RasterPair {
  ir: Raster;
  vis: Raster;
}

/** Infrared feature maps of a level are this many pixels on their longer side at most. */
const COARSE_SIDE = 128;

export interface Candidate {
  m: number[]; // vis -> ir (full resolution)
  score: number;
}

/** Halvings of a raster down to ~32 px (index 0: the raster itself). */
function pyramid(r: Raster): Raster[] {
  const out = [r];
  while (Math.min(out[out.length - 1].width, out[out.length - 1].height) > 64) {
    const l = out[out.length - 1];
    out.push(resizeArea(l, Math.round(l.width / 2), Math.round(l.height / 2)));
  }
  return out;
}

/** Area resize to w x h from the smallest pyramid level at least twice that size. */
function fromPyramid(p: Raster[], w: number, h: number): Raster {
  let l = p[0];
  for (const q of p) if (q.width >= 2 * w && q.height >= 2 * h) l = q;
  return resizeArea(l, w, h);
}

/** Summed-area table with a zero first row and column ((w + 1) x (h + 1)). */
function integral(d: Float32Array, w: number, h: number): Float64Array {
  const S = new Float64Array((w + 1) * (h + 1));
  for (let y = 0; y < h; y++) {
    let row = 0;
    for (let x = 0; x < w; x++) {
      row += d[y * w + x];
      S[(y + 1) * (w + 1) + x + 1] = S[y * (w + 1) + x + 1] + row;
    }
  }
  return S;
}

function boxSum(S: Float64Array, w: number, x0: number, y0: number, x1: number, y1: number) {
  const W = w + 1;
  return S[y1 * W + x1] - S[y0 * W + x1] - S[y1 * W + x0] + S[y0 * W + x0];
}

/**
 * Orientation correlation of a template over an image, over the shifts where they overlap by
 * at least half of the smaller: for each shift, the sum over the overlap of a_img . a_tpl
 * (double-angle vectors, so cos 2Δθ weighted by both magnitudes) over
 * sqrt(sum |a_img|^2 sum |a_tpl|^2). The numerator is one packed FFT correlation
 * (c + i s), the denominators come from summed-area tables.
 */
export class OrientationNcc {
  readonly width: number;
  readonly height: number;
  private readonly z: { W: number; H: number; re: Float64Array; im: Float64Array }[] = [];
  private readonly img: { c: Raster; s: Raster };
  private readonly sE: Float64Array;

  constructor(img: { c: Raster; s: Raster }) {
    this.img = img;
    this.width = img.c.width;
    this.height = img.c.height;
    const e = img.c.data.map((v, i) => v * v + img.s.data[i] * img.s.data[i]);
    this.sE = integral(e, this.width, this.height);
  }

  private spectrum(t: { c: Raster; s: Raster }, W: number, H: number) {
    const re = new Float64Array(W * H);
    const im = new Float64Array(W * H);
    const { width: w, height: h } = t.c;
    for (let y = 0; y < h; y++)
      for (let x = 0; x < w; x++) {
        re[y * W + x] = t.c.data[y * w + x];
        im[y * W + x] = t.s.data[y * w + x];
      }
    fft2(re, im, W, H);
    return { W, H, re, im };
  }

  /**
   * Best shift by the score `ncc - chance / sqrt(count)` among the overlaps of at least half
   * the smaller area: { dx, dy, ncc, score, count } (dx, dy: the template's origin on the image,
   * sub-pixel), or undefined.
   */
  best(t: { c: Raster; s: Raster }, chance: number) {
    const iw = this.width;
    const ih = this.height;
    const tw = t.c.width;
    const th = t.c.height;
    // Shifts with overlap >= half: dx in [-(tw - ow/2), iw - ow/2] with ow = min(iw, tw).
    const W = nextPow2(iw + tw - Math.floor(Math.min(iw, tw) / 2) + 2);
    const H = nextPow2(ih + th - Math.floor(Math.min(ih, th) / 2) + 2);
    let zi = this.z.find((q) => q.W === W && q.H === H);
    if (!zi) {
      zi = this.spectrum(this.img, W, H);
      this.z.push(zi);
    }
    const zt = this.spectrum(t, W, H);
    const n = W * H;
    const re = new Float64Array(n);
    const im = new Float64Array(n);
    for (let k = 0; k < n; k++) {
      // Z_img * conj(Z_tpl): its inverse's real part is sum c c' + s s'.
      re[k] = zi.re[k] * zt.re[k] + zi.im[k] * zt.im[k];
      im[k] = zi.im[k] * zt.re[k] - zi.re[k] * zt.im[k];
    }
    fft2(re, im, W, H, true);
    const e = t.c.data.map((v, i) => v * v + t.s.data[i] * t.s.data[i]);
    const sT = integral(e, tw, th);
    const needX = Math.min(iw, tw) / 2;
    const needY = Math.min(ih, th) / 2;
    const minArea = 0.5 * Math.min(iw * ih, tw * th);
    let best: { dx: number; dy: number; ncc: number; score: number; count: number } | undefined;
    const nccAt = (dx: number, dy: number) => {
      const x0 = Math.max(0, dx);
      const y0 = Math.max(0, dy);
      const x1 = Math.min(iw, dx + tw);
      const y1 = Math.min(ih, dy + th);
      if (x1 - x0 < 1 || y1 - y0 < 1) return { ncc: 0, count: 0 };
      const count = (x1 - x0) * (y1 - y0);
      const a = boxSum(this.sE, iw, x0, y0, x1, y1);
      const b = boxSum(sT, tw, x0 - dx, y0 - dy, x1 - dx, y1 - dy);
      const num = re[((dy + H) % H) * W + ((dx + W) % W)];
      const d = a * b;
      return { ncc: d > 1e-12 ? num / Math.sqrt(d) : 0, count };
    };
    for (let dy = Math.ceil(needY - th); dy <= ih - needY; dy++)
      for (let dx = Math.ceil(needX - tw); dx <= iw - needX; dx++) {
        const ox = Math.min(iw, dx + tw) - Math.max(0, dx);
        const oy = Math.min(ih, dy + th) - Math.max(0, dy);
        const count = ox * oy;
        if (count < minArea) continue;
        const { ncc } = nccAt(dx, dy);
        const score = ncc - chance / Math.sqrt(count);
        if (!best || score > best.score) best = { dx, dy, ncc, score, count };
      }
    if (!best) return undefined;
    const para = (m: number, c: number, p: number) => {
      const d = m - 2 * c + p;
      return d < 0 ? Math.max(-0.5, Math.min(0.5, (0.5 * (m - p)) / d)) : 0;
    };
    const { dx, dy, ncc } = best;
    return {
      ...best,
      dx: dx + para(nccAt(dx - 1, dy).ncc, ncc, nccAt(dx + 1, dy).ncc),
      dy: dy + para(nccAt(dx, dy - 1).ncc, ncc, nccAt(dx, dy + 1).ncc),
    };
  }
}

function resized(r: Raster, kx: number, ky: number): Raster {
  return resizeArea(
    r,
    Math.max(4, Math.round(r.width * kx)),
    Math.max(4, Math.round(r.height * ky)),
  );
}

/** The scale that fits a visible frame inside the infrared one (both axes). */
function fitScale(ir: Raster, vis: Raster): number {
  return Math.min(ir.width / vis.width, ir.height / vis.height);
}

/** Longer side of the infrared orientation map in the scale sweep. */
const SWEEP_SIDE = 170;
/** Weight of the chance-correlation penalty in the sweep's score. */
const CHANCE = 10;

/** Coarse search over scale and translation; the best distinct candidates. */
export function coarseSearch(
  pairs: RasterPair[],
  scaleRange: [number, number],
  keep: number,
  debug?: (c: Candidate & { s: number; count: number }) => void,
): Candidate[] {
  const { ir, vis } = pairs[0];
  const s0 = fitScale(ir, vis);
  const sMin = s0 * scaleRange[0];
  const sMax = s0 * scaleRange[1];
  const step = 1.04;
  const found: (Candidate & { s: number })[] = [];
  // The sweep's resolution: the infrared frame at SWEEP_SIDE, unless the visible footprint
  // is larger; then both shrink so that the footprint is SWEEP_SIDE.
  const cache = new Map<number, OrientationNcc[]>();
  const pyramids = pairs.map((p) => pyramid(p.vis));
  for (let s = sMin; s <= sMax * 1.0001; s *= step) {
    const foot = Math.max(vis.width * s, vis.height * s);
    const ci = Math.min(1, SWEEP_SIDE / Math.max(ir.width, ir.height, foot));
    const key = Math.round(ci * 1e6);
    let nccs = cache.get(key);
    if (!nccs) {
      nccs = pairs.map((p) => new OrientationNcc(orientationFeature(resized(p.ir, ci, ci), 1)));
      cache.set(key, nccs);
    }
    const tw = Math.max(4, Math.round(vis.width * s * ci));
    const th = Math.max(4, Math.round(vis.height * s * ci));
    const ekx = tw / vis.width;
    const eky = th / vis.height;
    // Joint estimate: the same shift for every pair; the first pair's peak, scored by all.
    let score = 0;
    let peak: { dx: number; dy: number; count: number } | undefined;
    pairs.forEach((_p, k) => {
      const r = nccs[k].best(orientationFeature(fromPyramid(pyramids[k], tw, th), 1), CHANCE);
      if (!r) return;
      if (!peak) peak = r;
      score += r.score / pairs.length;
    });
    if (!peak) continue;
    const m = mul3(
      inv3(pixelScale(ci, ci)),
      mul3([1, 0, peak.dx, 0, 1, peak.dy, 0, 0, 1], pixelScale(ekx, eky)),
    );
    const c = { m, score, s };
    debug?.({ ...c, count: peak.count });
    found.push(c);
  }
  found.sort((a, b) => b.score - a.score);
  const out: Candidate[] = [];
  const tol = 0.05 * Math.max(ir.width, ir.height);
  for (const c of found) {
    if (out.length >= keep) break;
    if (out.some((o) => cornerDistance(o.m, c.m, vis.width, vis.height) < tol)) continue;
    out.push(c);
  }
  return out;
}

function cornerDistance(a: Mat3, b: Mat3, w: number, h: number): number {
  let d = 0;
  for (const [x, y] of imageCorners(w, h)) {
    const [ax, ay] = applyPoint(a, x, y);
    const [bx, by] = applyPoint(b, x, y);
    d = Math.max(d, Math.hypot(ax - bx, ay - by));
  }
  return d;
}

const NPARAM: Record<TransformKind, number> = { similarity: 4, affine: 6, homography: 8 };

/** Parameters of a warp matrix (IR-normalised coords -> vis-level pixels). */
function toParams(m: Mat3, kind: TransformKind): number[] {
  const n = normalise3(m);
  if (kind === 'similarity') return [(n[0] + n[4]) / 2, (n[3] - n[1]) / 2, n[2], n[5]];
  if (kind === 'affine') return [n[0], n[1], n[2], n[3], n[4], n[5]];
  return n.slice(0, 8);
}

function fromParams(p: number[], kind: TransformKind): number[] {
  if (kind === 'similarity') return [p[0], -p[1], p[2], p[1], p[0], p[3], 0, 0, 1];
  if (kind === 'affine') return [...p, 0, 0, 1];
  return [...p, 1];
}

interface Level {
  /** Feature channels of the infrared image at this level (tw x th). */
  t: Float32Array[];
  tw: number;
  th: number;
  /** Feature channels of the visible image at its own level scale (vw x vh), and gradients. */
  img: Float32Array[];
  ix: Float32Array[];
  iy: Float32Array[];
  vw: number;
  vh: number;
  /** Full-resolution IR -> level IR, full-resolution vis -> level vis. */
  si: number[];
  sv: number[];
}

/** The feature channels the refinement matches (orientation field, or gradient magnitude). */
function features(r: Raster, sigma: number): Raster[] {
  const o = orientationFeature(r, sigma);
  return [o.c, o.s];
}

function buildLevel(p: RasterPair, ci: number, cv: number, sigma: number): Level {
  const ir = resized(p.ir, ci, ci);
  const vis = resized(p.vis, cv, cv);
  const t = features(ir, sigma);
  const img = features(vis, sigma);
  const g = img.map((r) => gradients(r));
  return {
    t: t.map((r) => r.data),
    tw: ir.width,
    th: ir.height,
    img: img.map((r) => r.data),
    ix: g.map((q) => q.gx),
    iy: g.map((q) => q.gy),
    vw: vis.width,
    vh: vis.height,
    si: pixelScale(ir.width / p.ir.width, ir.height / p.ir.height),
    sv: pixelScale(vis.width / p.vis.width, vis.height / p.vis.height),
  };
}

interface EccState {
  rho: number;
  count: number;
}

/**
 * ECC iterations at one level for all pairs jointly; `visToIr` (full resolution) in, refined
 * out. Returns the correlation (mean over pairs) or -1 when it diverged.
 */
function eccLevel(
  levels: Level[],
  visToIr: number[],
  kind: TransformKind,
  iterations: number,
): { m: number[]; state: EccState } {
  const L0 = levels[0];
  const { tw, th } = L0;
  // Normalised IR level coordinates: xn = (x - cx) / sc.
  const cx = (tw - 1) / 2;
  const cy = (th - 1) / 2;
  const sc = Math.max(tw, th) / 2;
  const N = [1 / sc, 0, -cx / sc, 0, 1 / sc, -cy / sc, 0, 0, 1];
  // warp: IR normalised -> vis level pixels (the same for every pair: same sizes).
  const warpOf = (m: number[]) => mul3(L0.sv, mul3(inv3(m), mul3(inv3(L0.si), inv3(N))));
  const visOf = (w: number[]) => inv3(mul3(inv3(L0.sv), mul3(w, mul3(N, L0.si))));
  const np = NPARAM[kind];
  let p = toParams(warpOf(visToIr), kind);
  let state: EccState = { rho: -1, count: 0 };
  const xs = new Float64Array(tw);
  const ys = new Float64Array(th);
  for (let x = 0; x < tw; x++) xs[x] = (x - cx) / sc;
  for (let y = 0; y < th; y++) ys[y] = (y - cy) / sc;
  const J = new Float64Array(np);
  for (let it = 0; it < iterations; it++) {
    const w = fromParams(p, kind);
    const Hs = new Float64Array(np * np);
    const E = new Float64Array(np);
    let rhoSum = 0;
    let countSum = 0;
    let ok = true;
    for (const L of levels) {
      const { vw, vh } = L;
      const nc = L.t.length;
      const H = new Float64Array(np * np);
      const JtI = new Float64Array(np);
      const JtT = new Float64Array(np);
      const Jt1 = new Float64Array(np);
      let n = 0;
      let sI = 0;
      let sT = 0;
      let sII = 0;
      let sTT = 0;
      let sIT = 0;
      for (let y = 0; y < th; y++) {
        const yn = ys[y];
        for (let x = 0; x < tw; x++) {
          const xn = xs[x];
          const den = kind === 'homography' ? w[6] * xn + w[7] * yn + 1 : 1;
          const u = (w[0] * xn + w[1] * yn + w[2]) / den;
          const v = (w[3] * xn + w[4] * yn + w[5]) / den;
          if (!(u >= 0 && v >= 0 && u < vw - 1 && v < vh - 1)) continue;
          const x0 = u | 0;
          const y0 = v | 0;
          const fx = u - x0;
          const fy = v - y0;
          const i00 = y0 * vw + x0;
          const w00 = (1 - fx) * (1 - fy);
          const w01 = fx * (1 - fy);
          const w10 = (1 - fx) * fy;
          const w11 = fx * fy;
          for (let ch = 0; ch < nc; ch++) {
            const img = L.img[ch];
            const ix = L.ix[ch];
            const iy = L.iy[ch];
            const I =
              w00 * img[i00] + w01 * img[i00 + 1] + w10 * img[i00 + vw] + w11 * img[i00 + vw + 1];
            const gx =
              w00 * ix[i00] + w01 * ix[i00 + 1] + w10 * ix[i00 + vw] + w11 * ix[i00 + vw + 1];
            const gy =
              w00 * iy[i00] + w01 * iy[i00 + 1] + w10 * iy[i00 + vw] + w11 * iy[i00 + vw + 1];
            const T = L.t[ch][y * tw + x];
            if (kind === 'similarity') {
              J[0] = gx * xn + gy * yn;
              J[1] = -gx * yn + gy * xn;
              J[2] = gx;
              J[3] = gy;
            } else if (kind === 'affine') {
              J[0] = gx * xn;
              J[1] = gx * yn;
              J[2] = gx;
              J[3] = gy * xn;
              J[4] = gy * yn;
              J[5] = gy;
            } else {
              const a = gx / den;
              const b = gy / den;
              J[0] = a * xn;
              J[1] = a * yn;
              J[2] = a;
              J[3] = b * xn;
              J[4] = b * yn;
              J[5] = b;
              const c = -(a * u + b * v);
              J[6] = c * xn;
              J[7] = c * yn;
            }
            for (let i = 0; i < np; i++) {
              const ji = J[i];
              JtI[i] += ji * I;
              JtT[i] += ji * T;
              Jt1[i] += ji;
              for (let j = i; j < np; j++) H[i * np + j] += ji * J[j];
            }
            n++;
            sI += I;
            sT += T;
            sII += I * I;
            sTT += T * T;
            sIT += I * T;
          }
        }
      }
      if (n < 64) {
        ok = false;
        break;
      }
      for (let i = 0; i < np; i++) for (let j = 0; j < i; j++) H[i * np + j] = H[j * np + i];
      const mI = sI / n;
      const mT = sT / n;
      const ip = new Array<number>(np);
      const tp = new Array<number>(np);
      for (let i = 0; i < np; i++) {
        ip[i] = JtI[i] - mI * Jt1[i];
        tp[i] = JtT[i] - mT * Jt1[i];
      }
      const imgNorm2 = sII - n * mI * mI;
      const tmpNorm2 = sTT - n * mT * mT;
      const corr = sIT - n * mI * mT;
      let Hip: number[];
      try {
        Hip = solve(H, ip, np);
      } catch {
        ok = false;
        break;
      }
      let ipHip = 0;
      let tpHip = 0;
      for (let i = 0; i < np; i++) {
        ipHip += ip[i] * Hip[i];
        tpHip += tp[i] * Hip[i];
      }
      const lambdaN = imgNorm2 - ipHip;
      const lambdaD = corr - tpHip;
      if (!(lambdaD > 0) || !(imgNorm2 > 0) || !(tmpNorm2 > 0)) {
        ok = false;
        break;
      }
      const lambda = lambdaN / lambdaD;
      for (let i = 0; i < np; i++) E[i] += lambda * tp[i] - ip[i];
      for (let i = 0; i < np * np; i++) Hs[i] += H[i];
      rhoSum += corr / Math.sqrt(imgNorm2 * tmpNorm2);
      countSum += n;
    }
    if (!ok) return { m: visToIr, state: { rho: -1, count: 0 } };
    state = { rho: rhoSum / levels.length, count: countSum / levels.length };
    let dp: number[];
    try {
      dp = solve(Hs, E, np);
    } catch {
      break;
    }
    p = p.map((v, i) => v + dp[i]);
    // Converged when the update moves the level's corners by less than 0.01 px.
    let move = 0;
    for (let i = 0; i < np; i++) move = Math.max(move, Math.abs(dp[i]));
    if (move * sc < 0.01) break;
  }
  return { m: normalise3(visOf(fromParams(p, kind))), state };
}

/** Infrared level scales from `fromSide` px on the longer side, doubling, up to 1 (full resolution). */
function levelScalesFrom(ir: Raster, fromSide: number): number[] {
  const out: number[] = [];
  for (let c = Math.min(1, fromSide / Math.max(ir.width, ir.height)); c < 1; c *= 2) out.push(c);
  out.push(1);
  return out;
}

/** Every pair's level at infrared scale `ci`, the visible image at the transform's scale. */
function levelsAt(pairs: RasterPair[], ci: number, m: Mat3): Level[] {
  const s = Math.sqrt(Math.abs(m[0] * m[4] - m[1] * m[3]));
  const cv = Math.min(1, s * ci);
  return pairs.map((p) => buildLevel(p, ci, cv, ci < 0.5 ? 1 : 1.5));
}

/** ECC over the given infrared level scales in turn; stops at the first level that diverges. */
function refineOver(
  pairs: RasterPair[],
  start: Mat3,
  kind: TransformKind,
  scales: number[],
): { m: number[]; rho: number } {
  let m: number[] = [...start];
  let rho = -1;
  for (const ci of scales) {
    const r = eccLevel(levelsAt(pairs, ci, m), m, kind, ci === 1 ? 15 : 25);
    if (r.state.rho < 0) break;
    m = r.m;
    rho = r.state.rho;
  }
  return { m, rho };
}

/**
 * ECC refinement of a vis->ir transform from a given start, coarse to fine: infrared levels
 * from `fromSide` px on the longer side, doubling, up to full resolution (the last stage of
 * {@link registerPairs}); the pairs are refined jointly. Returns the refined transform and the
 * last level's correlation (-1: diverged at the first level).
 */
export function refineTransform(
  pairs: RasterPair[],
  start: Mat3,
  kind: TransformKind,
  fromSide = 2 * COARSE_SIDE,
): { m: number[]; rho: number } {
  return refineOver(pairs, start, kind, levelScalesFrom(pairs[0].ir, fromSide));
}

/** Correlation of the two gradient-magnitude maps over the overlap, for a vis->ir transform. */
export function gradientScore(pair: RasterPair, visToIr: Mat3): { score: number; overlap: number } {
  const ci = Math.min(1, 320 / Math.max(pair.ir.width, pair.ir.height));
  const s = Math.sqrt(Math.abs(visToIr[0] * visToIr[4] - visToIr[1] * visToIr[3]));
  const cv = Math.min(1, s * ci);
  const irL = resized(pair.ir, ci, ci);
  const visL = resized(pair.vis, cv, cv);
  const t = edgeFeature(irL, 1).data;
  const img = edgeFeature(visL, 1).data;
  const si = pixelScale(irL.width / pair.ir.width, irL.height / pair.ir.height);
  const sv = pixelScale(visL.width / pair.vis.width, visL.height / pair.vis.height);
  const w = irL.width;
  const h = irL.height;
  const warp = mul3(sv, mul3(inv3(visToIr), inv3(si)));
  let n = 0;
  let sI = 0;
  let sT = 0;
  let sII = 0;
  let sTT = 0;
  let sIT = 0;
  const vw = visL.width;
  const vh = visL.height;
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++) {
      const [u, v] = applyPoint(warp, x, y);
      if (!(u >= 0 && v >= 0 && u < vw - 1 && v < vh - 1)) continue;
      const x0 = u | 0;
      const y0 = v | 0;
      const fx = u - x0;
      const fy = v - y0;
      const i00 = y0 * vw + x0;
      const I =
        (1 - fx) * (1 - fy) * img[i00] +
        fx * (1 - fy) * img[i00 + 1] +
        (1 - fx) * fy * img[i00 + vw] +
        fx * fy * img[i00 + vw + 1];
      const T = t[y * w + x];
      n++;
      sI += I;
      sT += T;
      sII += I * I;
      sTT += T * T;
      sIT += I * T;
    }
  if (n < 16) return { score: 0, overlap: 0 };
  const cov = sIT - (sI * sT) / n;
  const d = (sII - (sI * sI) / n) * (sTT - (sT * sT) / n);
  return { score: d > 0 ? cov / Math.sqrt(d) : 0, overlap: n / (w * h) };
}

/** The transform that stretches the visible frame onto the infrared one (no registration). */
export function stretchTransform(irSize: [number, number], visSize: [number, number]): number[] {
  const kx = irSize[0] / visSize[0];
  const ky = irSize[1] / visSize[1];
  return pixelScale(kx, ky);
}

/**
 * Estimates the visible -> infrared transform of one pair, or jointly of several pairs of the
 * same rig (all infrared images one size, all visible images one size).
 */
export function registerPairs(pairs: RasterPair[], options: RegisterOptions = {}): RegisterResult {
  if (pairs.length === 0) throw new DifFusionError('no image pairs to register');
  const kind = options.transform ?? 'affine';
  const { ir, vis } = pairs[0];
  for (const p of pairs)
    if (
      p.ir.width !== ir.width ||
      p.ir.height !== ir.height ||
      p.vis.width !== vis.width ||
      p.vis.height !== vis.height
    )
      throw new DifFusionError(
        `the pairs of one rig must share sizes: infrared ${p.ir.width}x${p.ir.height} vs ${ir.width}x${ir.height}, visible ${p.vis.width}x${p.vis.height} vs ${vis.width}x${vis.height}`,
      );
  const scaleRange = options.scaleRange ?? [0.3, 3];
  const candidates = coarseSearch(pairs, scaleRange, 3);
  // Refine each candidate at the coarse levels; keep the best, then go to full resolution.
  const levelScales = levelScalesFrom(ir, COARSE_SIDE);
  const coarseKinds: TransformKind[] =
    kind === 'similarity' ? ['similarity'] : ['similarity', 'affine'];
  let best: { m: number[]; rho: number } | undefined;
  for (const c of candidates) {
    let m = c.m;
    let rho = -1;
    for (const k of coarseKinds) {
      const r = eccLevel(levelsAt(pairs, levelScales[0], m), m, k, 40);
      if (r.state.rho < 0) break;
      m = r.m;
      rho = r.state.rho;
    }
    if (rho > (best?.rho ?? -Infinity)) best = { m, rho };
  }
  const reasons: string[] = [];
  if (!best || best.rho < 0) {
    return {
      visToIr: candidates[0]?.m ?? stretchTransform([ir.width, ir.height], [vis.width, vis.height]),
      transform: kind,
      scoreBefore: 0,
      scoreAfter: 0,
      overlap: 0,
      reliable: false,
      reason: 'no consistent match between the edges of the two images',
    };
  }
  const m = refineOver(pairs, best.m, kind, levelScales.slice(1)).m;
  const stretch = stretchTransform([ir.width, ir.height], [vis.width, vis.height]);
  let before = 0;
  let after = 0;
  let overlap = 0;
  for (const p of pairs) {
    before += gradientScore(p, stretch).score / pairs.length;
    const a = gradientScore(p, m);
    after += a.score / pairs.length;
    overlap += a.overlap / pairs.length;
  }
  const minScore = options.minScore ?? 0.35;
  const minOverlap = options.minOverlap ?? 0.04;
  if (!isSane(m, vis.width, vis.height)) reasons.push('the transform folds or flips the image');
  const s = Math.sqrt(Math.abs(m[0] * m[4] - m[1] * m[3])) / fitScale(ir, vis);
  if (s < scaleRange[0] * 0.8 || s > scaleRange[1] * 1.25)
    reasons.push(`its scale (${s.toFixed(2)}x) is outside the searched range`);
  if (after < minScore)
    reasons.push(`the edges correlate poorly after alignment (${after.toFixed(2)} < ${minScore})`);
  if (overlap < minOverlap)
    reasons.push(`the images overlap on only ${(overlap * 100).toFixed(1)}% of the infrared frame`);
  return {
    visToIr: m,
    transform: kind,
    scoreBefore: before,
    scoreAfter: after,
    overlap,
    reliable: reasons.length === 0,
    reason: reasons.length ? reasons.join('; ') : undefined,
  };
}
