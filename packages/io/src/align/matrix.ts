/**
 * 3x3 plane transforms (row-major, `[a, b, c, d, e, f, g, h, i]` maps (x, y) to
 * ((a x + b y + c) / w, (d x + e y + f) / w) with w = g x + h y + i), and their least-squares
 * fits to point pairs: similarity, affine and homography (normalised DLT).
 */
import { DifFusionError } from '../errors';

/** A 3x3 matrix, row-major. */
export type Mat3 = readonly number[];

/** The kinds of transform between a rig's cameras. */
export type TransformKind = 'similarity' | 'affine' | 'homography';
export const TRANSFORM_KINDS: readonly TransformKind[] = ['similarity', 'affine', 'homography'];

export const IDENTITY: Mat3 = [1, 0, 0, 0, 1, 0, 0, 0, 1];

export function mul3(a: Mat3, b: Mat3): number[] {
  const o = new Array<number>(9);
  for (let r = 0; r < 3; r++)
    for (let c = 0; c < 3; c++)
      o[r * 3 + c] = a[r * 3] * b[c] + a[r * 3 + 1] * b[3 + c] + a[r * 3 + 2] * b[6 + c];
  return o;
}

export function inv3(m: Mat3): number[] {
  const [a, b, c, d, e, f, g, h, i] = m;
  const A = e * i - f * h;
  const B = -(d * i - f * g);
  const C = d * h - e * g;
  const det = a * A + b * B + c * C;
  if (!Number.isFinite(det) || Math.abs(det) < 1e-300)
    throw new DifFusionError('the transform is singular (not invertible)');
  const r = 1 / det;
  return [
    A * r,
    -(b * i - c * h) * r,
    (b * f - c * e) * r,
    B * r,
    (a * i - c * g) * r,
    -(a * f - c * d) * r,
    C * r,
    -(a * h - b * g) * r,
    (a * e - b * d) * r,
  ];
}

/** Scales so that m[8] = 1 (homographies are defined up to scale). */
export function normalise3(m: Mat3): number[] {
  const s = m[8];
  if (Math.abs(s) < 1e-12) return [...m];
  return m.map((v) => v / s);
}

export function applyPoint(m: Mat3, x: number, y: number): [number, number] {
  const w = m[6] * x + m[7] * y + m[8];
  return [(m[0] * x + m[1] * y + m[2]) / w, (m[3] * x + m[4] * y + m[5]) / w];
}

/** Pixel-centre scaling: the pixel grid of an image resized by (kx, ky) (half-pixel centres). */
export function pixelScale(kx: number, ky = kx): number[] {
  return [kx, 0, 0.5 * kx - 0.5, 0, ky, 0.5 * ky - 0.5, 0, 0, 1];
}

export function translation(tx: number, ty: number): number[] {
  return [1, 0, tx, 0, 1, ty, 0, 0, 1];
}

/** The corners of a width x height image's footprint (pixel edges: -0.5 .. w - 0.5). */
export function imageCorners(width: number, height: number): [number, number][] {
  return [
    [-0.5, -0.5],
    [width - 0.5, -0.5],
    [width - 0.5, height - 0.5],
    [-0.5, height - 0.5],
  ];
}

/**
 * RMS distance between where two transforms put the corners of a `width` x `height` source
 * image: the error measure of a registration (in target pixels).
 */
export function cornerRms(a: Mat3, b: Mat3, width: number, height: number): number {
  let s = 0;
  const corners = imageCorners(width, height);
  for (const [x, y] of corners) {
    const [ax, ay] = applyPoint(a, x, y);
    const [bx, by] = applyPoint(b, x, y);
    s += (ax - bx) ** 2 + (ay - by) ** 2;
  }
  return Math.sqrt(s / corners.length);
}

/** Solves the n x n system A x = b (row-major A) by Gaussian elimination with partial pivoting. */
export function solve(A: Float64Array | number[], b: Float64Array | number[], n: number): number[] {
  const M = Float64Array.from(A);
  const v = Float64Array.from(b);
  for (let c = 0; c < n; c++) {
    let p = c;
    for (let r = c + 1; r < n; r++) if (Math.abs(M[r * n + c]) > Math.abs(M[p * n + c])) p = r;
    if (Math.abs(M[p * n + c]) < 1e-14) throw new DifFusionError('singular system');
    if (p !== c) {
      for (let k = 0; k < n; k++) {
        const t = M[c * n + k];
        M[c * n + k] = M[p * n + k];
        M[p * n + k] = t;
      }
      const t = v[c];
      v[c] = v[p];
      v[p] = t;
    }
    for (let r = c + 1; r < n; r++) {
      const f = M[r * n + c] / M[c * n + c];
      if (f === 0) continue;
      for (let k = c; k < n; k++) M[r * n + k] -= f * M[c * n + k];
      v[r] -= f * v[c];
    }
  }
  const x = new Array<number>(n).fill(0);
  for (let r = n - 1; r >= 0; r--) {
    let s = v[r];
    for (let k = r + 1; k < n; k++) s -= M[r * n + k] * x[k];
    x[r] = s / M[r * n + r];
  }
  return x;
}

/** Least squares min |A x - b| through the normal equations (rows of length n). */
function leastSquares(rows: number[][], rhs: number[], n: number): number[] {
  const AtA = new Float64Array(n * n);
  const Atb = new Float64Array(n);
  rows.forEach((row, k) => {
    for (let i = 0; i < n; i++) {
      Atb[i] += row[i] * rhs[k];
      for (let j = 0; j < n; j++) AtA[i * n + j] += row[i] * row[j];
    }
  });
  return solve(AtA, Atb, n);
}

/** A point correspondence: `from` (source image) maps to `to` (target image). */
export interface PointPair {
  from: [number, number];
  to: [number, number];
}

/** Hartley normalisation: centroid to the origin, mean distance sqrt(2). */
function normaliser(pts: [number, number][]): number[] {
  let mx = 0;
  let my = 0;
  for (const [x, y] of pts) {
    mx += x;
    my += y;
  }
  mx /= pts.length;
  my /= pts.length;
  let d = 0;
  for (const [x, y] of pts) d += Math.hypot(x - mx, y - my);
  d /= pts.length;
  const s = d > 0 ? Math.SQRT2 / d : 1;
  return [s, 0, -s * mx, 0, s, -s * my, 0, 0, 1];
}

const MIN_POINTS: Record<TransformKind, number> = { similarity: 2, affine: 3, homography: 4 };

/**
 * The least-squares transform of a kind mapping every `from` onto its `to` (similarity and
 * affine: linear least squares; homography: the DLT on Hartley-normalised points). Throws
 * when there are too few points or they are degenerate.
 */
export function fitTransform(pairs: PointPair[], kind: TransformKind): number[] {
  if (pairs.length < MIN_POINTS[kind])
    throw new DifFusionError(
      `${kind} needs at least ${MIN_POINTS[kind]} point pairs, got ${pairs.length}`,
    );
  const Tf = normaliser(pairs.map((p) => p.from));
  const Tt = normaliser(pairs.map((p) => p.to));
  const P = pairs.map((p) => ({
    from: applyPoint(Tf, p.from[0], p.from[1]),
    to: applyPoint(Tt, p.to[0], p.to[1]),
  }));
  let m: number[];
  try {
    if (kind === 'similarity') {
      const rows: number[][] = [];
      const rhs: number[] = [];
      for (const {
        from: [x, y],
        to: [u, v],
      } of P) {
        rows.push([x, -y, 1, 0]);
        rhs.push(u);
        rows.push([y, x, 0, 1]);
        rhs.push(v);
      }
      const [a, b, c, d] = leastSquares(rows, rhs, 4);
      m = [a, -b, c, b, a, d, 0, 0, 1];
    } else if (kind === 'affine') {
      const rows = P.map((p) => [p.from[0], p.from[1], 1]);
      const [a, b, c] = leastSquares(
        rows,
        P.map((p) => p.to[0]),
        3,
      );
      const [d, e, f] = leastSquares(
        rows,
        P.map((p) => p.to[1]),
        3,
      );
      m = [a, b, c, d, e, f, 0, 0, 1];
    } else {
      // DLT with h22 = 1 (valid after normalisation unless the map sends the origin to infinity).
      const rows: number[][] = [];
      const rhs: number[] = [];
      for (const {
        from: [x, y],
        to: [u, v],
      } of P) {
        rows.push([x, y, 1, 0, 0, 0, -u * x, -u * y]);
        rhs.push(u);
        rows.push([0, 0, 0, x, y, 1, -v * x, -v * y]);
        rhs.push(v);
      }
      const h = leastSquares(rows, rhs, 8);
      m = [...h, 1];
    }
  } catch {
    throw new DifFusionError(
      `the ${pairs.length} point pairs are degenerate for a ${kind} (collinear or repeated points)`,
    );
  }
  const out = normalise3(mul3(inv3(Tt), mul3(m, Tf)));
  if (!out.every(Number.isFinite))
    throw new DifFusionError(`the point pairs are degenerate for a ${kind}`);
  return out;
}

/** RMS of |T(from) - to| over the pairs (target pixels). */
export function pointRms(m: Mat3, pairs: PointPair[]): number {
  let s = 0;
  for (const p of pairs) {
    const [u, v] = applyPoint(m, p.from[0], p.from[1]);
    s += (u - p.to[0]) ** 2 + (v - p.to[1]) ** 2;
  }
  return Math.sqrt(s / pairs.length);
}

/** Whether a transform keeps orientation and is far from degenerate on a w x h source. */
export function isSane(m: Mat3, width: number, height: number): boolean {
  if (!m.every(Number.isFinite)) return false;
  for (const [x, y] of imageCorners(width, height)) {
    const w = m[6] * x + m[7] * y + m[8];
    if (!(w > 1e-6)) return false;
  }
  const det = m[0] * m[4] - m[1] * m[3];
  return det > 0;
}
