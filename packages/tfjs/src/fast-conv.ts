/**
 * Convolution with hand-written gradients that are fast on every tfjs backend.
 *
 * tfjs-backend-wasm 4.22 has no Conv2DBackpropFilter kernel (tfjs falls back to slow
 * generic paths), a slow Conv2DBackpropInput and a slow matMul with transposeA. Here both
 * gradients are expressed with the fast kernels (Conv2D, transposes, pads, slices):
 * - dx: one forward convolution of the incoming gradient (flipped, in/out-transposed
 *   kernel; for stride s > 1 a sub-pixel kernel producing the s*s phases, then
 *   depthToSpace) — see `convInputGrad`;
 * - dW: one forward convolution of the transposed input with the transposed gradient as
 *   kernel (dilated by the stride) — see `convFilterGrad`.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { Conv2dFn } from './conv';

type Conv = (x: tf.Tensor4D, w: tf.Tensor4D) => tf.Tensor4D;

const cache = new Map<string, Conv>();

/**
 * Drop-in `Conv2dFn` for `new TfOps(params, { conv2d: fastConv2d })`: same forward as
 * `tf.conv2d` (NHWC input, `[kh, kw, I, O]` kernel, symmetric zero padding), gradients as
 * described above. Needs padding <= kernel - 1 (true for every conv in dif-fusion).
 */
export const fastConv2d: Conv2dFn = (x, w, stride, padding) => {
  const [kh, kw] = w.shape;
  const key = `${kh},${kw},${stride},${padding}`;
  let fn = cache.get(key);
  if (!fn) {
    if (padding > kh - 1 || padding > kw - 1)
      throw new Error(`fastConv2d: padding ${padding} > kernel size - 1 (${kh}x${kw})`);
    fn = makeConv(kh, kw, stride, padding);
    cache.set(key, fn);
  }
  return fn(x, w);
};

function makeConv(kh: number, kw: number, stride: number, padding: number): Conv {
  const pad = padding === 0 ? 'valid' : padding;
  // customGrad's typing is variadic (`...args: Array<Tensor | GradSaveFunc>`): the last one is `save`.
  const f = (x: tf.Tensor, w: tf.Tensor, save: tf.GradSaveFunc) => {
    const x4 = x as tf.Tensor4D;
    const w4 = w as tf.Tensor4D;
    save([x4, w4]);
    return {
      value: tf.conv2d(x4, w4, stride, pad),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [xs, ws] = saved as [tf.Tensor4D, tf.Tensor4D];
        const dy4 = dy as tf.Tensor4D;
        return [
          convInputGrad(dy4, ws, xs.shape, stride, padding),
          convFilterGrad(xs, dy4, kh, kw, stride, padding),
        ];
      },
    };
  };
  return tf.customGrad(f as unknown as Parameters<typeof tf.customGrad>[0]) as unknown as Conv;
}

/**
 * dL/dx of a conv, exactly, as one forward convolution. With stride s the input pixels
 * split into s*s phases (i + p = s*m + r); phase r of pixel row i collects dy rows m - j
 * through kernel taps r + s*j. That is a correlation of dy with a ceil(k/s)-tap kernel whose
 * s*s*I output channels are the phases, followed by depthToSpace(s) and a crop. For s = 1
 * it is the usual flipped, in/out-transposed kernel.
 */
export function convInputGrad(
  dy: tf.Tensor4D,
  w: tf.Tensor4D,
  xShape: readonly number[],
  stride: number,
  padding: number,
): tf.Tensor4D {
  return tf.tidy(() => {
    const s = stride;
    const p = padding;
    const [kh, kw, c, o] = w.shape;
    const [n, h, wd] = xShape;
    const [, ho, wo] = dy.shape;
    const jh = Math.floor((kh - 1) / s); // taps per phase - 1
    const jw = Math.floor((kw - 1) / s);
    const m0 = Math.floor(p / s); // first block row/col needed
    const mh = Math.ceil((p + h) / s) - m0; // block rows/cols to compute
    const mw = Math.ceil((p + wd) / s) - m0;
    // Kernel [jh+1, jw+1, O, s*s*I]: K[t, u, o, (rh*s + rw)*I + i] = w[rh + s(jh-t), rw + s(jw-u), i, o].
    let k: tf.Tensor4D;
    if (s === 1) {
      k = tf.transpose(flipTaps(w), [0, 1, 3, 2]);
    } else {
      const wp = tf.pad(w, [
        [0, s * (jh + 1) - kh],
        [0, s * (jw + 1) - kw],
        [0, 0],
        [0, 0],
      ]);
      const w6 = tf.reverse(tf.reshape(wp, [jh + 1, s, jw + 1, s, c, o]), [0, 2]);
      k = tf.reshape(tf.transpose(w6, [0, 2, 5, 1, 3, 4]), [jh + 1, jw + 1, o, s * s * c]);
    }
    const g = padOrCrop(dy, jh - m0, mh + m0 - ho, jw - m0, mw + m0 - wo);
    let out = tf.conv2d(g, k, 1, 'valid'); // [n, mh, mw, s*s*I]
    if (s > 1) out = tf.depthToSpace(out, s, 'NHWC'); // [n, s*mh, s*mw, I]
    const top = p - s * m0;
    if (top === 0 && out.shape[1] === h && out.shape[2] === wd) return out;
    return tf.slice(out, [0, top, top, 0], [n, h, wd, c]);
  });
}

/**
 * `tf.reverse(w, [0, 1])` for a `[kh, kw, I, O]` kernel, as contiguous row slices and one
 * concat (the wasm Reverse kernel is element-wise: measured 6x slower on 3x3x256x256).
 */
function flipTaps(w: tf.Tensor4D): tf.Tensor4D {
  const [kh, kw, c, o] = w.shape;
  const taps = kh * kw;
  if (taps === 1) return w;
  const rows = tf.reshape(w, [taps, c * o]);
  const parts: tf.Tensor[] = [];
  for (let t = taps - 1; t >= 0; t--) parts.push(tf.slice(rows, [t, 0], [1, c * o]));
  return tf.reshape(tf.concat(parts, 0), [kh, kw, c, o]);
}

/** Zero-pad (or, for a negative amount, crop) the bottom and right of an NHWC tensor, pad top/left. */
function padOrCrop(
  x: tf.Tensor4D,
  top: number,
  bottom: number,
  left: number,
  right: number,
): tf.Tensor4D {
  if (bottom < 0 || right < 0) {
    const [n, h, w, c] = x.shape;
    x = tf.slice(x, [0, 0, 0, 0], [n, h + Math.min(0, bottom), w + Math.min(0, right), c]);
  }
  const b = Math.max(0, bottom);
  const r = Math.max(0, right);
  if (top === 0 && b === 0 && left === 0 && r === 0) return x;
  return tf.pad(x, [
    [0, 0],
    [top, b],
    [left, r],
    [0, 0],
  ]);
}

/**
 * dL/dW of a conv, `[kh, kw, I, O]`, as one forward convolution with the roles swapped:
 * the padded input transposed to `[I, H', W', N]` (channels as batch, batch as channels)
 * convolved with the gradient transposed to `[Ho, Wo, N, O]` as kernel, dilated by the
 * stride: `r[i, a, b, o] = sum_{y, x, n} xpad[n, a + s*y, b + s*x, i] * dy[n, y, x, o]`,
 * exactly dW[a, b, i, o]. One XNNPACK convolution on wasm; measured 1.5x (stride 1) to 5x
 * (stride 2) less CPU than a matMul per kernel tap (whose im2col windows cost a copy each).
 */
export function convFilterGrad(
  x: tf.Tensor4D,
  dy: tf.Tensor4D,
  kh: number,
  kw: number,
  stride: number,
  padding: number,
): tf.Tensor4D {
  return tf.tidy(() => {
    const s = stride;
    const p = padding;
    const c = x.shape[3];
    const o = dy.shape[3];
    const xp = padOrCrop(x, p, p, p, p);
    const xT = tf.transpose(xp, [3, 1, 2, 0]) as tf.Tensor4D; // [I, H', W', N]
    const dyT = tf.transpose(dy, [1, 2, 0, 3]) as tf.Tensor4D; // [Ho, Wo, N, O]
    // Output spatial size is kh + ((H' - kh) mod s) >= kh: keep the first kh x kw.
    let r = tf.conv2d(xT, dyT, 1, 'valid', 'NHWC', s); // [I, >=kh, >=kw, O]
    if (r.shape[1] !== kh || r.shape[2] !== kw) r = tf.slice(r, [0, 0, 0, 0], [c, kh, kw, o]);
    return tf.transpose(r, [1, 2, 0, 3]) as tf.Tensor4D;
  });
}

let matMulFn: ((a: tf.Tensor2D, b: tf.Tensor2D) => tf.Tensor2D) | null = null;

/**
 * `a [M, K] x b [K, N]` with gradients that stay on wasm's fast matMul path. The wasm
 * BatchMatMul kernel uses XNNPACK only for a batch of 1 without transposeA; otherwise it
 * falls back to a naive loop (measured ~10x slower on attention-sized products). Here the
 * forward is a plain 2D matMul, dA = dY * B^T (transposeB is fine) and dB = (A^T) * dY with
 * the transpose done by the Transpose kernel.
 */
export function fastMatMul(a: tf.Tensor2D, b: tf.Tensor2D): tf.Tensor2D {
  if (!matMulFn) {
    const f = (x: tf.Tensor, y: tf.Tensor, save: tf.GradSaveFunc) => {
      save([x, y]);
      return {
        value: tf.matMul(x as tf.Tensor2D, y as tf.Tensor2D),
        gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
          const [xs, ys] = saved as [tf.Tensor2D, tf.Tensor2D];
          const d = dy as tf.Tensor2D;
          return [tf.matMul(d, ys, false, true), tf.matMul(tf.transpose(xs), d)];
        },
      };
    };
    matMulFn = tf.customGrad(f as unknown as Parameters<typeof tf.customGrad>[0]) as unknown as (
      a: tf.Tensor2D,
      b: tf.Tensor2D,
    ) => tf.Tensor2D;
  }
  return matMulFn(a, b);
}

/**
 * The convolution to train with on a tfjs backend (the name `useBackend` returns):
 * fastConv2d where tfjs's convolution gradients are slow or missing (wasm, cpu), tfjs's own
 * (undefined: TfOps's default) on the native `tensorflow` backend.
 */
export function conv2dFor(backend: string): Conv2dFn | undefined {
  return backend === 'tensorflow' ? undefined : fastConv2d;
}
