/**
 * The initial weights of a large UNet in seconds rather than the best part of an hour.
 *
 * `initParam`'s orthogonal init (the reference's `init_weights(net, 'orthogonal')`) runs
 * modified Gram-Schmidt with re-orthogonalisation in JavaScript: about 4·m·n² operations for
 * an m x n matrix. The official ddpm_train.json UNet (370 M parameters) holds 113 such
 * matrices, Σ m·n² = 348 G, which is most of an hour on a shared 2-core machine. For the
 * large, tall matrices this computes the same Q (the Q of the QR decomposition with a positive
 * diagonal R is unique) by Cholesky QR: the Gram matrix B·Bᵀ and the product L⁻¹·B run as
 * ONNX Runtime MatMuls (multi-threaded, float32), the Cholesky factor and its inverse (n x n)
 * in float64 here. Tall Gaussian matrices are well conditioned (κ < 6 for m ≥ 1.4 n), so Q is
 * orthonormal to float32 precision; each result is checked (row norms) and any doubt falls
 * back to `initParam`. Small and square matrices keep `initParam` exactly, so small models
 * (every test, the shipped default) initialise bit for bit as before.
 *
 * In a large model (Σ m·n² ≥ {@link LARGE_MODEL_WORK}, e.g. the official config) the other
 * orthogonal matrices too leave JavaScript (there they were ~15 CPU-s, the 1024x1024 one
 * alone several seconds between two looks at Ctrl-C): Cholesky QR twice (CholeskyQR2) in
 * float64 on ORT, orthonormal to float64 precision for any Gaussian matrix whose κ² is well
 * under 1e16, square ones included, and the same Q as initParam's up to rounding. The normals
 * are drawn with @dif-fusion/schedules' fillNormal (Rng.normal()'s values, ~2.5x faster).
 *
 * Between parameters it yields to the event loop and asks `shouldStop`, so Ctrl-C / SIGTERM
 * are seen within about a second at any point of the init.
 */
import { initParam, type ParamSpec, paramSeed, shapeSize, type TorchWeights } from '@dif-fusion/nn';
import { DataType, GraphBuilder, openSession, ort, runFloat } from '@dif-fusion/onnx';
import { fillNormal } from '@dif-fusion/schedules';

/** Matrices with m·n² below this stay on initParam (they take well under a second there). */
export const FAST_MIN_WORK = 1e9;
/** Long side / short side at least this: κ(B) < 6, safe for one Cholesky QR pass in float32. */
export const FAST_MIN_RATIO = 1.4;
/**
 * Models whose orthogonal matrices add up to this much work (Σ m·n²) initialise every
 * orthogonal matrix on ORT (inner_channel 128: 348 G; the shipped default, 32: ~6 G).
 */
export const LARGE_MODEL_WORK = 1e11;

export class InitStopped extends Error {}

type Session = Awaited<ReturnType<typeof openSession>>['session'];

interface Sessions {
  gram: Session;
  left: Session;
}

/** x·xᵀ and a·b as ORT sessions, float32 or (elemType DOUBLE) float64. */
async function matmulSessions(
  threads?: number,
  elemType: number = DataType.FLOAT,
): Promise<Sessions> {
  const g1 = new GraphBuilder('gram');
  const x = g1.input('x', ['N', 'M'], elemType);
  const xt = g1.node('Transpose', [x], {}, 'xt');
  g1.output(g1.node('MatMul', [x, xt]), 'g', undefined, elemType);
  const g2 = new GraphBuilder('left');
  const a = g2.input('a', ['N', 'N'], elemType);
  const b = g2.input('b', ['N', 'M'], elemType);
  g2.output(g2.node('MatMul', [a, b]), 'q', undefined, elemType);
  const open = async (g: GraphBuilder) =>
    (await openSession(g.serialize().model, { device: 'cpu', threads })).session;
  return { gram: await open(g1), left: await open(g2) };
}

/** One float64 MatMul session run. */
async function run64(
  s: Session,
  feeds: Record<string, { data: Float64Array; dims: number[] }>,
): Promise<Float64Array> {
  const t: Record<string, ort.Tensor> = {};
  for (const [k, v] of Object.entries(feeds)) t[k] = new ort.Tensor('float64', v.data, v.dims);
  const out = await s.run(t);
  return Object.values(out)[0].data as Float64Array;
}

/** Lower Cholesky factor of the n x n (row-major) matrix, or null when it is not positive. */
function cholesky(g: Float32Array | Float64Array, n: number): Float64Array | null {
  const l = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    const ri = i * n;
    for (let j = 0; j <= i; j++) {
      const rj = j * n;
      let s = g[ri + j];
      for (let k = 0; k < j; k++) s -= l[ri + k] * l[rj + k];
      if (i === j) {
        if (!(s > 0)) return null;
        l[ri + i] = Math.sqrt(s);
      } else l[ri + j] = s / l[rj + j];
    }
  }
  return l;
}

/** Inverse of a lower-triangular matrix, row by row (L·X = I). */
function invertLower(l: Float64Array, n: number): Float64Array {
  const x = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    const ri = i * n;
    x[ri + i] = 1;
    for (let k = 0; k < i; k++) {
      const c = l[ri + k];
      if (c === 0) continue;
      const rk = k * n;
      for (let j = 0; j <= k; j++) x[ri + j] -= c * x[rk + j];
    }
    const d = 1 / l[ri + i];
    for (let j = 0; j <= i; j++) x[ri + j] *= d;
  }
  return x;
}

/** `out` (cols x rows) = `a` (rows x cols)ᵀ, in cache-sized blocks. */
function transposeInto(
  a: Float32Array | Float64Array,
  rows: number,
  cols: number,
  out: Float32Array | Float64Array,
): void {
  const B = 64;
  for (let r0 = 0; r0 < rows; r0 += B)
    for (let c0 = 0; c0 < cols; c0 += B) {
      const r1 = Math.min(rows, r0 + B);
      const c1 = Math.min(cols, c0 + B);
      for (let r = r0; r < r1; r++)
        for (let c = c0; c < c1; c++) out[c * rows + r] = a[r * cols + c];
    }
}

/** Whether each of the n rows (length m) of q has unit norm (to `tol`). */
function unitRows(q: Float32Array | Float64Array, n: number, m: number, tol: number): boolean {
  for (let i = 0; i < n; i++) {
    let norm = 0;
    for (let k = i * m; k < (i + 1) * m; k++) norm += q[k] * q[k];
    if (!(Math.abs(norm - 1) < tol)) return false;
  }
  return true;
}

/**
 * The layout both paths share: the n vectors to orthonormalise (rows of `b`, n x m) from
 * initParam's draws, and how to put Q back into the parameter's rows x cols.
 */
function orthogonalLayout(spec: ParamSpec) {
  const rows = spec.shape[0];
  const size = shapeSize(spec.shape);
  const cols = size / rows;
  const wide = rows < cols; // orthonormal rows (as initParam: transposed first)
  return { rows, cols, size, wide, n: wide ? rows : cols, m: wide ? cols : rows };
}

/** Same draws as initParam's orthogonal case; Q by Cholesky QR, or null to fall back. */
async function fastOrthogonal(
  spec: ParamSpec,
  seed: number,
  s: Sessions,
): Promise<Float32Array | null> {
  const { rows, cols, size, wide, n, m } = orthogonalLayout(spec);
  // b: the n vectors to orthonormalise, each of length m, as rows.
  let b = fillNormal(paramSeed(seed, spec.name), new Float32Array(size));
  if (!wide) {
    const t = new Float32Array(size);
    transposeInto(b, rows, cols, t);
    b = t;
  }
  const { g } = await runFloat(s.gram, { x: { data: b, dims: [n, m] } });
  const l = cholesky(g.data, n);
  if (!l) return null;
  const { q } = await runFloat(s.left, {
    a: { data: Float32Array.from(invertLower(l, n)), dims: [n, n] },
    b: { data: b, dims: [n, m] },
  });
  const qd = q.data;
  if (!unitRows(qd, n, m, 1e-3)) return null;
  if (wide) return qd;
  const out = new Float32Array(size);
  transposeInto(qd, cols, rows, out);
  return out;
}

/**
 * Large models' other orthogonal matrices (square ones included): initParam's float64 draws,
 * Q by CholeskyQR2 in float64 on ORT (the second pass restores orthogonality lost to
 * κ² in the first), or null to fall back.
 */
async function orthogonal64(
  spec: ParamSpec,
  seed: number,
  s: Sessions,
): Promise<Float32Array | null> {
  const { rows, cols, size, wide, n, m } = orthogonalLayout(spec);
  let q: Float64Array = fillNormal(paramSeed(seed, spec.name), new Float64Array(size));
  if (!wide) {
    const t = new Float64Array(size);
    transposeInto(q, rows, cols, t);
    q = t;
  }
  for (let pass = 0; pass < 2; pass++) {
    const l = cholesky(await run64(s.gram, { x: { data: q, dims: [n, m] } }), n);
    if (!l) return null;
    q = await run64(s.left, {
      a: { data: invertLower(l, n), dims: [n, n] },
      b: { data: q, dims: [n, m] },
    });
  }
  if (!unitRows(q, n, m, 1e-6)) return null;
  const out = new Float32Array(size);
  if (wide) out.set(q);
  else transposeInto(q, cols, rows, out);
  return out;
}

/** Σ m·n² of a parameter's orthogonal init (0 for other inits). */
export function orthogonalWork(spec: ParamSpec): number {
  if (spec.init.kind !== 'orthogonal' || spec.shape.length < 2) return 0;
  const { n, m } = orthogonalLayout(spec);
  return m * n * n;
}

/** Whether `initWeightsFast` takes the Cholesky QR path for this parameter. */
export function usesFastPath(spec: ParamSpec): boolean {
  if (spec.init.kind !== 'orthogonal' || spec.shape.length < 2) return false;
  const rows = spec.shape[0];
  const cols = shapeSize(spec.shape) / rows;
  const m = Math.max(rows, cols);
  const n = Math.min(rows, cols);
  return m * n * n >= FAST_MIN_WORK && m >= FAST_MIN_RATIO * n;
}

/**
 * Every parameter's initial value (PyTorch layout), as `initParam` gives it, the large
 * orthogonal ones by Cholesky QR on ONNX Runtime (in a large model all orthogonal ones, see
 * LARGE_MODEL_WORK). Throws InitStopped once `shouldStop()`.
 */
export async function initWeightsFast(
  specs: readonly ParamSpec[],
  seed: number,
  opts: {
    shouldStop?: () => boolean;
    threads?: number;
    /** Σ m·n² from which every orthogonal matrix goes to ORT (default LARGE_MODEL_WORK). */
    largeModelWork?: number;
    /** Tests: wait this long (ms) before each parameter, as a slow init would take. */
    testDelayMs?: number;
  } = {},
): Promise<TorchWeights> {
  const w: TorchWeights = new Map();
  const large =
    specs.reduce((a, s) => a + orthogonalWork(s), 0) >= (opts.largeModelWork ?? LARGE_MODEL_WORK);
  let f32: Sessions | undefined;
  let f64: Sessions | undefined;
  try {
    for (const spec of specs) {
      await new Promise((r) => setImmediate(r)); // let Ctrl-C / SIGTERM handlers run
      if (opts.testDelayMs) await new Promise((r) => setTimeout(r, opts.testDelayMs));
      if (opts.shouldStop?.()) throw new InitStopped('stopped while initialising the weights');
      let data: Float32Array | null = null;
      if (usesFastPath(spec)) {
        f32 ??= await matmulSessions(opts.threads);
        data = await fastOrthogonal(spec, seed, f32);
      } else if (large && orthogonalWork(spec) > 0) {
        f64 ??= await matmulSessions(opts.threads, DataType.DOUBLE);
        data = await orthogonal64(spec, seed, f64);
      }
      w.set(spec.name, { shape: spec.shape.slice(), data: data ?? initParam(spec, seed) });
    }
  } finally {
    for (const s of [f32, f64]) if (s) await Promise.all([s.gram.release(), s.left.release()]);
  }
  return w;
}
