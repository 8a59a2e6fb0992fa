/**
 * Parameter initialisation in PyTorch layout, driven by the project's seeded Rng.
 *
 * Every parameter draws from its own generator, seeded from (seed, parameter name), so a
 * parameter's initial value depends only on the seed, its name, shape and init: adding or
 * reordering other parameters never changes it.
 */
import { fillNormal, Rng } from '@dif-fusion/schedules';
import type { ParamSpec } from './module';

/** Number of elements of a shape. */
export function shapeSize(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** 32-bit seed for one parameter: FNV-1a of the name, mixed with the global seed. */
export function paramSeed(seed: number, name: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < name.length; i++) {
    h ^= name.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  // Mix in the seed (murmur3 finaliser) so nearby seeds give unrelated streams.
  let x = (h ^ Math.imul(seed >>> 0, 0x9e3779b1)) >>> 0;
  x = Math.imul(x ^ (x >>> 16), 0x85ebca6b) >>> 0;
  x = Math.imul(x ^ (x >>> 13), 0xc2b2ae35) >>> 0;
  return (x ^ (x >>> 16)) >>> 0;
}

/**
 * Orthonormalise like torch.nn.init.orthogonal_ (gain 1): `a` is a row-major `rows x cols`
 * matrix; when rows < cols it is transposed first; the result is Q of its QR
 * decomposition with R's diagonal made positive (Q * sign(diag(R))), transposed back.
 * Modified Gram-Schmidt with one re-orthogonalisation pass, in float64. Returns row-major
 * `rows x cols`.
 */
export function orthogonalize(a: ArrayLike<number>, rows: number, cols: number): Float64Array {
  const transpose = rows < cols;
  const m = transpose ? cols : rows; // long side
  const n = transpose ? rows : cols; // short side: number of orthonormal vectors
  // Columns of the m x n matrix as contiguous vectors.
  const q: Float64Array[] = [];
  for (let j = 0; j < n; j++) {
    const v = new Float64Array(m);
    for (let i = 0; i < m; i++) v[i] = transpose ? a[j * cols + i] : a[i * cols + j];
    for (let pass = 0; pass < 2; pass++) {
      for (let k = 0; k < j; k++) {
        const qk = q[k];
        let dot = 0;
        for (let i = 0; i < m; i++) dot += qk[i] * v[i];
        for (let i = 0; i < m; i++) v[i] -= dot * qk[i];
      }
    }
    let norm = 0;
    for (let i = 0; i < m; i++) norm += v[i] * v[i];
    norm = Math.sqrt(norm);
    if (!(norm > 0)) throw new Error('orthogonalize: matrix is rank deficient');
    for (let i = 0; i < m; i++) v[i] /= norm;
    q.push(v);
  }
  const out = new Float64Array(rows * cols);
  for (let j = 0; j < n; j++) {
    const v = q[j];
    for (let i = 0; i < m; i++) {
      if (transpose) out[j * cols + i] = v[i];
      else out[i * cols + j] = v[i];
    }
  }
  return out;
}

/** Initial value of a parameter, PyTorch layout, from its own Rng stream (see `paramSeed`). */
export function initParam(spec: ParamSpec, seed: number): Float32Array {
  const size = shapeSize(spec.shape);
  const init = spec.init;
  switch (init.kind) {
    case 'zeros':
      return new Float32Array(size);
    case 'ones':
      return new Float32Array(size).fill(1);
    case 'uniform': {
      const rng = new Rng(paramSeed(seed, spec.name));
      const out = new Float32Array(size);
      for (let i = 0; i < size; i++) out[i] = rng.uniformRange(-init.bound, init.bound);
      return out;
    }
    case 'orthogonal': {
      if (spec.shape.length < 2)
        throw new Error(`${spec.name}: orthogonal init needs at least 2 dimensions`);
      const rows = spec.shape[0];
      const cols = size / rows;
      // fillNormal: Rng.normal()'s doubles, bit for bit, with the state in locals (faster).
      const a = fillNormal(paramSeed(seed, spec.name), new Float64Array(size));
      return Float32Array.from(orthogonalize(a, rows, cols));
    }
  }
}
