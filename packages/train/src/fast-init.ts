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
 * Between parameters it yields to the event loop and asks `shouldStop`, so Ctrl-C / SIGTERM
 * are seen within about a second at any point of the init.
 */
import { initParam, type ParamSpec, paramSeed, shapeSize, type TorchWeights } from '@dif-fusion/nn';
import { GraphBuilder, openSession, runFloat } from '@dif-fusion/onnx';
import { Rng } from '@dif-fusion/schedules';

/** Matrices with m·n² below this stay on initParam (they take well under a second there). */
export const FAST_MIN_WORK = 1e9;
/** Long side / short side at least this: κ(B) < 6, safe for one Cholesky QR pass in float32. */
export const FAST_MIN_RATIO = 1.4;

export class InitStopped extends Error {}

type Session = Awaited<ReturnType<typeof openSession>>['session'];

async function matmulSessions(threads?: number): Promise<{ gram: Session; left: Session }> {
  const g1 = new GraphBuilder('gram');
  const x = g1.input('x', ['N', 'M']);
  const xt = g1.node('Transpose', [x], {}, 'xt');
  g1.output(g1.node('MatMul', [x, xt]), 'g');
  const g2 = new GraphBuilder('left');
  const a = g2.input('a', ['N', 'N']);
  const b = g2.input('b', ['N', 'M']);
  g2.output(g2.node('MatMul', [a, b]), 'q');
  const open = async (g: GraphBuilder) =>
    (await openSession(g.serialize().model, { device: 'cpu', threads })).session;
  return { gram: await open(g1), left: await open(g2) };
}

/** Lower Cholesky factor of the n x n (row-major) matrix, or null when it is not positive. */
function cholesky(g: Float32Array, n: number): Float64Array | null {
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

/** Inverse of a lower-triangular matrix, row by row (L·X = I), as float32. */
function invertLower(l: Float64Array, n: number): Float32Array {
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
  return Float32Array.from(x);
}

/** Same draws as initParam's orthogonal case; Q by Cholesky QR, or null to fall back. */
async function fastOrthogonal(
  spec: ParamSpec,
  seed: number,
  s: { gram: Session; left: Session },
): Promise<Float32Array | null> {
  const rows = spec.shape[0];
  const size = shapeSize(spec.shape);
  const cols = size / rows;
  const wide = rows < cols; // orthonormal rows (as initParam: transposed first)
  const n = wide ? rows : cols;
  const m = wide ? cols : rows;
  const rng = new Rng(paramSeed(seed, spec.name));
  // b: the n vectors to orthonormalise, each of length m, as rows.
  const b = new Float32Array(size);
  if (wide) for (let i = 0; i < size; i++) b[i] = rng.normal();
  else for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) b[c * rows + r] = rng.normal();
  const { g } = await runFloat(s.gram, { x: { data: b, dims: [n, m] } });
  const l = cholesky(g.data, n);
  if (!l) return null;
  const { q } = await runFloat(s.left, {
    a: { data: invertLower(l, n), dims: [n, n] },
    b: { data: b, dims: [n, m] },
  });
  const qd = q.data;
  for (let i = 0; i < n; i++) {
    let norm = 0;
    for (let k = i * m; k < (i + 1) * m; k++) norm += qd[k] * qd[k];
    if (!(Math.abs(norm - 1) < 1e-3)) return null;
  }
  if (wide) return qd;
  const out = new Float32Array(size);
  for (let r = 0; r < rows; r++)
    for (let c = 0; c < cols; c++) out[r * cols + c] = qd[c * rows + r];
  return out;
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
 * orthogonal ones by Cholesky QR on ONNX Runtime. Throws InitStopped once `shouldStop()`.
 */
export async function initWeightsFast(
  specs: readonly ParamSpec[],
  seed: number,
  opts: { shouldStop?: () => boolean; threads?: number } = {},
): Promise<TorchWeights> {
  const w: TorchWeights = new Map();
  let sessions: { gram: Session; left: Session } | undefined;
  try {
    for (const spec of specs) {
      await new Promise((r) => setImmediate(r)); // let Ctrl-C / SIGTERM handlers run
      if (opts.shouldStop?.()) throw new InitStopped('stopped while initialising the weights');
      let data: Float32Array | null = null;
      if (usesFastPath(spec)) {
        sessions ??= await matmulSessions(opts.threads);
        data = await fastOrthogonal(spec, seed, sessions);
      }
      w.set(spec.name, { shape: spec.shape.slice(), data: data ?? initParam(spec, seed) });
    }
  } finally {
    if (sessions) await Promise.all([sessions.gram.release(), sessions.left.release()]);
  }
  return w;
}
