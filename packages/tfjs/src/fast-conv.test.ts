import { Rng } from '@dif-fusion/schedules';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, describe, expect, it } from 'vitest';
import { relErr } from '../../../test/shared';
import { useBackend } from './backends';
import { plainConv2d } from './conv';
import { fastConv2d, fastMatMul } from './fast-conv';

/** Reference conv in float64: x [n,h,w,c], w [kh,kw,c,o] (NHWC / tf layout). */
function convRef(
  x: Float64Array,
  xs: number[],
  w: Float64Array,
  ws: number[],
  s: number,
  p: number,
): { y: Float64Array; shape: number[] } {
  const [n, h, wd, c] = xs;
  const [kh, kw, , o] = ws;
  const ho = Math.floor((h + 2 * p - kh) / s) + 1;
  const wo = Math.floor((wd + 2 * p - kw) / s) + 1;
  const y = new Float64Array(n * ho * wo * o);
  for (let b = 0; b < n; b++)
    for (let i = 0; i < ho; i++)
      for (let j = 0; j < wo; j++)
        for (let a = 0; a < kh; a++)
          for (let e = 0; e < kw; e++) {
            const yi = i * s + a - p;
            const xj = j * s + e - p;
            if (yi < 0 || yi >= h || xj < 0 || xj >= wd) continue;
            for (let ci = 0; ci < c; ci++) {
              const xv = x[((b * h + yi) * wd + xj) * c + ci];
              for (let oi = 0; oi < o; oi++)
                y[((b * ho + i) * wo + j) * o + oi] += xv * w[((a * kw + e) * c + ci) * o + oi];
            }
          }
  return { y, shape: [n, ho, wo, o] };
}

const randn = (rng: Rng, size: number) => Float64Array.from({ length: size }, () => rng.normal());
const size = (s: number[]) => s.reduce((a, b) => a * b, 1);

// [n, h, w, c, o, k, stride, padding]
const CASES: number[][] = [
  [2, 5, 7, 3, 4, 1, 1, 0],
  [2, 5, 7, 3, 4, 3, 1, 1],
  [2, 6, 9, 3, 4, 3, 2, 1],
  [1, 7, 4, 2, 3, 3, 2, 1],
  [2, 8, 6, 3, 2, 3, 2, 1],
  [1, 6, 5, 2, 3, 3, 1, 0],
  [1, 5, 6, 2, 2, 1, 2, 0],
];

function fastGrads(
  x: Float64Array,
  xs: number[],
  w: Float64Array,
  ws: number[],
  r: Float64Array,
  s: number,
  p: number,
) {
  let out: { value: Float32Array; fast: Float32Array[]; plain: Float32Array[] | null } | undefined;
  tf.tidy(() => {
    const xt = tf.tensor4d(Float32Array.from(x), xs as [number, number, number, number]);
    const wt = tf.tensor4d(Float32Array.from(w), ws as [number, number, number, number]);
    const f = (conv: typeof fastConv2d) =>
      tf
        .grads((a, b) => {
          const y = conv(a as tf.Tensor4D, b as tf.Tensor4D, s, p);
          return tf.sum(tf.mul(y, tf.tensor(Float32Array.from(r), y.shape)));
        })([xt, wt])
        .map((g) => g.dataSync() as Float32Array);
    const value = fastConv2d(xt, wt, s, p).dataSync() as Float32Array;
    out = { value, fast: f(fastConv2d), plain: tf.getBackend() === 'cpu' ? f(plainConv2d) : null };
  });
  return out as NonNullable<typeof out>;
}

describe.each(['cpu', 'wasm'] as const)('fastConv2d on %s', (backend) => {
  afterAll(async () => {
    await useBackend('wasm');
  });

  it.each(CASES)(
    'n%i %ix%i %i->%i k%i s%i p%i: value and gradients match numeric ones',
    async (n, h, wd, c, o, k, s, p) => {
      await useBackend(backend);
      const rng = new Rng(1000 + h * 31 + wd + k + s);
      const xs = [n, h, wd, c];
      const ws = [k, k, c, o];
      const x = randn(rng, size(xs));
      const w = randn(rng, size(ws));
      const ref = convRef(x, xs, w, ws, s, p);
      const r = randn(rng, ref.y.length); // dL/dy
      const loss = (xv: Float64Array, wv: Float64Array) => {
        const y = convRef(xv, xs, wv, ws, s, p).y;
        let l = 0;
        for (let i = 0; i < y.length; i++) l += y[i] * r[i];
        return l;
      };
      // Central differences in float64 (L is linear in x and in w, so they are exact to rounding).
      const numeric = (v: Float64Array, other: (u: Float64Array) => number) =>
        Float64Array.from(v, (_, i) => {
          const u = v.slice();
          u[i] += 1e-3;
          const lp = other(u);
          u[i] -= 2e-3;
          return (lp - other(u)) / 2e-3;
        });
      const dxNum = numeric(x, (u) => loss(u, w));
      const dwNum = numeric(w, (u) => loss(x, u));

      const { value, fast, plain } = fastGrads(x, xs, w, ws, r, s, p);
      expect(relErr(value, ref.y)).toBeLessThan(1e-5);
      expect(relErr(fast[0], dxNum)).toBeLessThan(1e-5);
      expect(relErr(fast[1], dwNum)).toBeLessThan(1e-5);
      if (plain) {
        // tfjs's own conv gradients on the cpu backend
        expect(relErr(fast[0], plain[0])).toBeLessThan(1e-5);
        expect(relErr(fast[1], plain[1])).toBeLessThan(1e-5);
      }
    },
  );
});

describe.each(['cpu', 'wasm'] as const)('fastMatMul on %s', (backend) => {
  afterAll(async () => {
    await useBackend('wasm');
  });

  it('value and gradients match float64 references', async () => {
    await useBackend(backend);
    const rng = new Rng(77);
    const [m, k, n] = [5, 7, 3];
    const a = randn(rng, m * k);
    const b = randn(rng, k * n);
    const r = randn(rng, m * n); // dL/dY
    const ref = new Float64Array(m * n);
    for (let i = 0; i < m; i++)
      for (let j = 0; j < n; j++)
        for (let t = 0; t < k; t++) ref[i * n + j] += a[i * k + t] * b[t * n + j];
    // L = sum(r * A B): dA = r B^T, dB = A^T r (exact)
    const da = new Float64Array(m * k);
    const db = new Float64Array(k * n);
    for (let i = 0; i < m; i++)
      for (let j = 0; j < n; j++)
        for (let t = 0; t < k; t++) {
          da[i * k + t] += r[i * n + j] * b[t * n + j];
          db[t * n + j] += a[i * k + t] * r[i * n + j];
        }
    let got: Float32Array[] = [];
    tf.tidy(() => {
      const at = tf.tensor2d(Float32Array.from(a), [m, k]);
      const bt = tf.tensor2d(Float32Array.from(b), [k, n]);
      const rt = tf.tensor2d(Float32Array.from(r), [m, n]);
      const value = fastMatMul(at, bt).dataSync() as Float32Array;
      const g = tf.grads((x, y) =>
        tf.sum(tf.mul(fastMatMul(x as tf.Tensor2D, y as tf.Tensor2D), rt)),
      )([at, bt]);
      got = [value, ...g.map((t) => t.dataSync() as Float32Array)];
    });
    expect(relErr(got[0], ref)).toBeLessThan(1e-5);
    expect(relErr(got[1], da)).toBeLessThan(1e-5);
    expect(relErr(got[2], db)).toBeLessThan(1e-5);
  });
});
