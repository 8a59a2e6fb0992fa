import * as tf from '@tensorflow/tfjs-core';
import { type Conv2dFn, plainConv2d } from './conv';
import { fastMatMul } from './fast-conv';
// tfjs-core alone registers no gradients (the @tensorflow/tfjs bundle does): training needs them.
import '@tensorflow/tfjs-core/dist/register_all_gradients.js';
import type { BatchStat, Ops } from '@dif-fusion/nn';

/** Anything that hands out parameters by name, in TfOps layout (see `toTfLayout`). */
export interface TfParamSource {
  get(name: string): tf.Tensor;
}

/**
 * Physical layouts used by TfOps: images are NHWC; conv weights `[kh, kw, I, O]`;
 * linear weights `[in, out]`; everything else as in PyTorch.
 */
export function toTfLayout(torchShape: number[]): { perm: number[] | null; shape: number[] } {
  if (torchShape.length === 4) {
    const [o, i, kh, kw] = torchShape;
    return { perm: [2, 3, 1, 0], shape: [kh, kw, i, o] };
  }
  if (torchShape.length === 2) {
    const [o, i] = torchShape;
    return { perm: [1, 0], shape: [i, o] };
  }
  return { perm: null, shape: torchShape.slice() };
}

/** Convert a PyTorch-layout tensor to TfOps layout. */
export function torchToTf(t: tf.Tensor): tf.Tensor {
  const { perm } = toTfLayout(t.shape);
  return perm ? tf.transpose(t, perm) : t.clone();
}

/** Convert a TfOps-layout tensor back to PyTorch layout (inverse of torchToTf). */
export function tfToTorch(t: tf.Tensor): tf.Tensor {
  if (t.rank === 4) return tf.transpose(t, [3, 2, 0, 1]);
  if (t.rank === 2) return tf.transpose(t, [1, 0]);
  return t.clone();
}

/** NCHW -> NHWC and back, for feeding and reading images at the boundary. */
export const nchwToNhwc = (x: tf.Tensor): tf.Tensor => tf.transpose(x, [0, 2, 3, 1]);
export const nhwcToNchw = (x: tf.Tensor): tf.Tensor => tf.transpose(x, [0, 3, 1, 2]);

/** y = x forward, no gradient backward (PyTorch's `detach`). */
export const stopGradient: (x: tf.Tensor) => tf.Tensor = tf.customGrad(
  (...args: (tf.Tensor | tf.GradSaveFunc)[]) => ({
    value: tf.clone(args[0] as tf.Tensor),
    gradFunc: (dy: tf.Tensor) => tf.zerosLike(dy),
  }),
) as (x: tf.Tensor) => tf.Tensor;

/** Ops realised on TensorFlow.js tensors (NHWC). */
export class TfOps implements Ops<tf.Tensor> {
  readonly kind = 'tf' as const;
  readonly training: boolean;
  /**
   * Training-mode BatchNorm2d statistics (kept out of tf.tidy with tf.keep: the caller
   * reads and disposes them, see `takeBatchStats`).
   */
  readonly batchStats: BatchStat<tf.Tensor>[] = [];
  private readonly convFn: Conv2dFn;

  constructor(
    private readonly params: TfParamSource,
    options: { training?: boolean; conv2d?: Conv2dFn } = {},
  ) {
    this.training = options.training ?? false;
    this.convFn = options.conv2d ?? plainConv2d;
  }

  param(name: string): tf.Tensor {
    return this.params.get(name);
  }

  conv2d(
    x: tf.Tensor,
    weight: tf.Tensor,
    bias: tf.Tensor | null,
    options: { stride?: number; padding?: number } = {},
  ): tf.Tensor {
    const y = this.convFn(
      x as tf.Tensor4D,
      weight as tf.Tensor4D,
      options.stride ?? 1,
      options.padding ?? 0,
    );
    return bias ? tf.add(y, bias) : y;
  }

  linear(x: tf.Tensor, weight: tf.Tensor, bias: tf.Tensor | null): tf.Tensor {
    const y = tf.matMul(x as tf.Tensor2D, weight as tf.Tensor2D);
    return bias ? tf.add(y, bias) : y;
  }

  groupNorm(
    x: tf.Tensor,
    groups: number,
    weight: tf.Tensor,
    bias: tf.Tensor,
    eps = 1e-5,
  ): tf.Tensor {
    const [n, h, w, c] = x.shape;
    const g = tf.reshape(x, [n, h, w, groups, c / groups]);
    const { mean, variance } = tf.moments(g, [1, 2, 4], true);
    const normed = tf.mul(tf.sub(g, mean), tf.rsqrt(tf.add(variance, eps)));
    return tf.add(tf.mul(tf.reshape(normed, [n, h, w, c]), weight), bias);
  }

  batchNorm2d(
    x: tf.Tensor,
    weight: tf.Tensor,
    bias: tf.Tensor,
    running: { mean: tf.Tensor; variance: tf.Tensor } | null,
    options: { site: string; eps?: number },
  ): tf.Tensor {
    const eps = options.eps ?? 1e-5;
    let mean = running?.mean;
    let variance = running?.variance;
    if (!mean || !variance) {
      const [n, h, w] = x.shape;
      const m = tf.moments(x, [0, 1, 2]);
      mean = m.mean;
      variance = m.variance;
      this.batchStats.push({
        site: options.site,
        mean: tf.keep(mean),
        variance: tf.keep(variance),
        count: n * h * w,
      });
    }
    const normed = tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, eps)));
    return tf.add(tf.mul(normed, weight), bias);
  }

  avgPool2x2(x: tf.Tensor): tf.Tensor {
    // Reshape + mean rather than tf.avgPool: a plain sum gradient on every backend.
    const [n, h, w, c] = x.shape;
    return tf.mean(tf.reshape(x, [n, h / 2, 2, w / 2, 2, c]), [2, 4]);
  }

  add(a: tf.Tensor, b: tf.Tensor): tf.Tensor {
    return tf.add(a, b);
  }
  mul(a: tf.Tensor, b: tf.Tensor): tf.Tensor {
    return tf.mul(a, b);
  }
  max(a: tf.Tensor, b: tf.Tensor): tf.Tensor {
    return tf.maximum(a, b);
  }
  scale(x: tf.Tensor, s: number): tf.Tensor {
    return tf.mul(x, s);
  }
  axpby(a: number, x: tf.Tensor, b: number, y: tf.Tensor): tf.Tensor {
    return tf.add(tf.mul(x, a), tf.mul(y, b));
  }
  swish(x: tf.Tensor): tf.Tensor {
    return tf.mul(x, tf.sigmoid(x));
  }
  relu(x: tf.Tensor): tf.Tensor {
    return tf.relu(x);
  }
  leakyRelu(x: tf.Tensor, slope: number): tf.Tensor {
    return tf.leakyRelu(x, slope);
  }
  sigmoid(x: tf.Tensor): tf.Tensor {
    return tf.sigmoid(x);
  }
  tanh(x: tf.Tensor): tf.Tensor {
    return tf.tanh(x);
  }
  dropout(x: tf.Tensor, rate: number): tf.Tensor {
    return this.training && rate > 0 ? tf.dropout(x, rate) : x;
  }

  addChannel(x: tf.Tensor, v: tf.Tensor): tf.Tensor {
    const [n, c] = v.shape;
    return tf.add(x, tf.reshape(v, [n, 1, 1, c]));
  }
  mulChannel(x: tf.Tensor, v: tf.Tensor): tf.Tensor {
    const [n, c] = v.shape;
    return tf.mul(x, tf.reshape(v, [n, 1, 1, c]));
  }
  mulSpatial(x: tf.Tensor, s: tf.Tensor): tf.Tensor {
    return tf.mul(x, s);
  }
  sliceFeatures(v: tf.Tensor, start: number, end: number): tf.Tensor {
    return tf.slice(v, [0, start], [v.shape[0], end - start]);
  }
  concatChannels(xs: tf.Tensor[]): tf.Tensor {
    return tf.concat(xs, 3);
  }
  concatBatch(xs: tf.Tensor[]): tf.Tensor {
    return xs.length === 1 ? xs[0] : tf.concat(xs, 0);
  }
  splitBatch(x: tf.Tensor, parts: number): tf.Tensor[] {
    return parts === 1 ? [x] : tf.split(x, parts, 0);
  }
  meanSpatial(x: tf.Tensor): tf.Tensor {
    return tf.mean(x, [1, 2]);
  }
  upsampleNearest2x(x: tf.Tensor): tf.Tensor {
    // Broadcast multiply by ones + reshape instead of resizeNearestNeighbor or tile: the
    // gradient is a plain sum over the broadcast axes (tile's gradient stops at rank 5 and
    // unstack is slow on wasm).
    const [n, h, w, c] = x.shape;
    const ones = tf.ones([1, 1, 2, 1, 2, 1]);
    return tf.reshape(tf.mul(tf.reshape(x, [n, h, 1, w, 1, c]), ones), [n, 2 * h, 2 * w, c]);
  }
  upsampleBilinear2x(x: tf.Tensor): tf.Tensor {
    const [, h, w] = x.shape;
    return tf.image.resizeBilinear(x as tf.Tensor4D, [2 * h, 2 * w], true);
  }

  // ------------------------------------------------------------ loss maths

  sub(a: tf.Tensor, b: tf.Tensor): tf.Tensor {
    return tf.sub(a, b);
  }
  abs(x: tf.Tensor): tf.Tensor {
    return tf.abs(x);
  }
  square(x: tf.Tensor): tf.Tensor {
    return tf.square(x);
  }
  sqrt(x: tf.Tensor): tf.Tensor {
    return tf.sqrt(x);
  }
  exp(x: tf.Tensor): tf.Tensor {
    return tf.exp(x);
  }
  log(x: tf.Tensor): tf.Tensor {
    return tf.log(x);
  }
  addScalar(x: tf.Tensor, s: number): tf.Tensor {
    return tf.add(x, s);
  }
  maxScalar(x: tf.Tensor, s: number): tf.Tensor {
    return tf.maximum(x, s);
  }
  compareScalar(x: tf.Tensor, op: 'less' | 'greater', s: number): tf.Tensor {
    // One custom op, so the tape never reaches Less / Greater (they have no gradient).
    const mask = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
      const v = args[0] as tf.Tensor;
      return {
        value: tf.cast(op === 'less' ? tf.less(v, s) : tf.greater(v, s), 'float32'),
        gradFunc: (dy: tf.Tensor) => tf.zerosLike(dy),
      };
    }) as (v: tf.Tensor) => tf.Tensor;
    return mask(x);
  }
  mulSample(x: tf.Tensor, s: tf.Tensor): tf.Tensor {
    return tf.mul(x, tf.reshape(s, [-1, 1, 1, 1]));
  }
  broadcastLike(s: tf.Tensor, like: tf.Tensor): tf.Tensor {
    if (s.size !== 1) throw new Error(`broadcastLike: [${s.shape}] is not a one-element value`);
    return tf.broadcastTo(tf.reshape(s, new Array(like.rank).fill(1)), like.shape);
  }
  sumAll(x: tf.Tensor): tf.Tensor {
    return tf.sum(x);
  }
  meanAll(x: tf.Tensor): tf.Tensor {
    return tf.mean(x);
  }
  sliceChannels(x: tf.Tensor, start: number, end: number): tf.Tensor {
    return tf.slice(x, [0, 0, 0, start], [-1, -1, -1, end - start]);
  }
  stopGradient(x: tf.Tensor): tf.Tensor {
    return stopGradient(x);
  }
  /**
   * A sum of shifted slices of the padded input (one per kernel tap with a non-zero weight)
   * times per-channel weights (grouped per channel) or a [I, O] matrix (otherwise), rather
   * than tf.conv2d / depthwiseConv2d: pad, slice, mul and matMul have gradients on every
   * backend, wasm included. A 1x1 kernel without groups is one matMul.
   */
  constConv(
    x: tf.Tensor,
    kernel: Float32Array,
    [co, cig, kh, kw]: [number, number, number, number],
    options: { groups?: number; padding?: number } = {},
  ): tf.Tensor {
    const groups = options.groups ?? 1;
    const p = options.padding ?? 0;
    const [n, h, w, ci] = x.shape;
    if (cig * groups !== ci)
      throw new Error(`constConv: the kernel expects ${cig * groups} channels, got ${ci}`);
    const ho = h + 2 * p - kh + 1;
    const wo = w + 2 * p - kw + 1;
    const cog = co / groups;
    const xp =
      p > 0
        ? tf.pad(x, [
            [0, 0],
            [p, p],
            [p, p],
            [0, 0],
          ])
        : x;
    const depthwise = cig === 1 && cog === 1;
    const terms: tf.Tensor[] = [];
    for (let ky = 0; ky < kh; ky++)
      for (let kx = 0; kx < kw; kx++) {
        const at = (o: number, i: number) => kernel[((o * cig + i) * kh + ky) * kw + kx];
        const tap = () =>
          kh === 1 && kw === 1 && p === 0 ? xp : tf.slice(xp, [0, ky, kx, 0], [n, ho, wo, ci]);
        if (depthwise) {
          const v = Float32Array.from({ length: co }, (_, o) => at(o, 0));
          if (v.some((e) => e !== 0)) terms.push(tf.mul(tap(), tf.tensor1d(v)));
          continue;
        }
        const m = new Float32Array(ci * co); // [I, O]
        for (let o = 0; o < co; o++) {
          const gi = Math.floor(o / cog);
          for (let i = 0; i < cig; i++) m[(gi * cig + i) * co + o] = at(o, i);
        }
        if (!m.some((e) => e !== 0)) continue;
        const y = tf.matMul(tf.reshape(tap(), [-1, ci]), tf.tensor2d(m, [ci, co]));
        terms.push(tf.reshape(y, [n, ho, wo, co]));
      }
    if (terms.length === 0) return tf.zeros([n, ho, wo, co]);
    return terms.length === 1 ? terms[0] : tf.addN(terms);
  }

  selfAttention(qkv: tf.Tensor, nHead: number): tf.Tensor {
    const [n, h, w, c3] = qkv.shape;
    const c = c3 / 3;
    const hd = c / nHead;
    // channel index = head * 3hd + part * hd + j  (torch .view(b, nHead, 3hd, h, w).chunk(3, 2))
    // Rank-4 slices: tfjs-backend-wasm slices rank >= 5 element by element in JS (~50x slower).
    const r = tf.reshape(qkv, [n * h * w, nHead, 3, hd]);
    const part = (i: number) =>
      tf.transpose(
        tf.reshape(tf.slice(r, [0, 0, i, 0], [n * h * w, nHead, 1, hd]), [n, h * w, nHead, hd]),
        [0, 2, 1, 3],
      ) as tf.Tensor4D;
    const q = part(0);
    const k = part(1);
    const v = part(2);
    // One 2D product per sample and head (see fastMatMul: wasm's batched matMul is slow).
    const scale = 1 / Math.sqrt(c);
    const outs: tf.Tensor[] = [];
    for (let b = 0; b < n; b++)
      for (let g = 0; g < nHead; g++) {
        const pick = (t: tf.Tensor4D) =>
          tf.reshape(tf.slice(t, [b, g, 0, 0], [1, 1, h * w, hd]), [h * w, hd]) as tf.Tensor2D;
        const kT = tf.transpose(pick(k)) as tf.Tensor2D;
        const scores = tf.mul(fastMatMul(pick(q), kT), scale);
        const attn = tf.softmax(scores, -1) as tf.Tensor2D;
        outs.push(fastMatMul(attn, pick(v)));
      }
    const out = tf.reshape(tf.stack(outs), [n, nHead, h * w, hd]); // [n, nHead, hw, hd]
    return tf.reshape(tf.transpose(out, [0, 2, 1, 3]), [n, h, w, c]);
  }

  positionalEncoding(level: tf.Tensor, dim: number): tf.Tensor {
    const count = Math.floor(dim / 2);
    const freqs = new Float32Array(count);
    for (let k = 0; k < count; k++) freqs[k] = Math.exp(-Math.log(1e4) * (k / count));
    const enc = tf.mul(tf.reshape(level, [-1, 1]), tf.tensor2d(freqs, [1, count]));
    return tf.concat([tf.sin(enc), tf.cos(enc)], 1);
  }
}
