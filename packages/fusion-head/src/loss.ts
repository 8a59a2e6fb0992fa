/**
 * Dif-Fusion's fusion loss (official models/fs_loss.py, from SeAFusion) on TensorFlow.js:
 *
 *   loss_in   = mean |F - max(V, I)|
 *   loss_grad = mean |S(F) - max(S(V), S(I))|,  S(x) = |sobel_x * x| + |sobel_y * x| per channel
 *   loss      = loss_in + alpha * loss_grad (+ colorWeight * loss_color, off by default)
 *
 * or, with `space: 'luma'` (dif-fusion's addition, for heads that change lightness only), the
 * same two terms on BT.601 luma Y(x) = 0.299 R + 0.587 G + 0.114 B:
 *
 *   loss_in   = mean |Y(F) - max(Y(V), I)|
 *   loss_grad = mean |S(Y(F)) - max(S(Y(V)), S(I))|
 *
 * The per-channel target max(V_c, I) lifts every channel of a saturated pixel that is darker
 * than the infrared, so for a red tail light (R high, G and B low) it asks for much more
 * lightness than the pixel's luma warrants; the luma target asks for exactly the lightness of
 * ycbcr-max (max(Y(V), I)), which is what keeps colour fidelity (CIEDE2000) close to it.
 *
 * with the infrared image broadcast to the visible image's channels and zero padding 1 for
 * the Sobel filters. The Sobel filters are built from pad + slice + add (no convolution), so
 * gradients work on every backend, wasm included.
 */
import * as tf from '@tensorflow/tfjs-core';
import { FUSION_LOSS_DEFAULTS, type FusionLossOptions, type ImageLayout } from './loss-options';
import { type FusionTargetKind, fusionTargetBatch, LUMA_WEIGHTS } from './target';
// No `import '@tensorflow/tfjs-core/dist/register_all_gradients.js'` here: that ESM file uses
// extensionless imports, which plain Node cannot load, so importing it would make this
// package unusable in Node even for inference. Whoever trains registers the gradients
// (see the README, "Gradients").

export interface FusionLossResult {
  /** Weighted total (scalar). */
  loss: tf.Scalar;
  lossIn: tf.Scalar;
  lossGrad: tf.Scalar;
  /** Present when colorWeight > 0. */
  lossColor?: tf.Scalar;
}

const toNhwc = (x: tf.Tensor, layout: ImageLayout): tf.Tensor4D =>
  (layout === 'NCHW' ? tf.transpose(x, [0, 2, 3, 1]) : x) as tf.Tensor4D;

/**
 * |sobel_x| + |sobel_y| of every channel of an NHWC image, zero padding 1 (same size out).
 * sobel_x = [[-1,0,1],[-2,0,2],[-1,0,1]], sobel_y = [[1,2,1],[0,0,0],[-1,-2,-1]] (the signs
 * do not matter after the absolute value).
 */
export function sobelMagnitude(x: tf.Tensor4D): tf.Tensor4D {
  return tf.tidy(() => {
    const [n, h, w, c] = x.shape;
    const p = tf.pad(x, [
      [0, 0],
      [1, 1],
      [1, 1],
      [0, 0],
    ]);
    const cols = (start: number) => tf.slice(p, [0, 0, start, 0], [n, h + 2, w, c]);
    const rows = (t: tf.Tensor4D, start: number) => tf.slice(t, [0, start, 0, 0], [n, h, w, c]);
    const left = cols(0);
    const mid = cols(1);
    const right = cols(2);
    // x: horizontal difference, smoothed vertically with [1, 2, 1]
    const dx = tf.sub(right, left) as tf.Tensor4D;
    const gx = tf.addN([rows(dx, 0), tf.mul(rows(dx, 1), 2), rows(dx, 2)]);
    // y: horizontal smoothing [1, 2, 1], differenced vertically
    const sx = tf.addN([left, tf.mul(mid, 2), right]) as tf.Tensor4D;
    const gy = tf.sub(rows(sx, 0), rows(sx, 2));
    return tf.add(tf.abs(gx), tf.abs(gy)) as tf.Tensor4D;
  });
}

/** BT.601 chroma (Cb, Cr) of an NHWC RGB image, without the offset (it cancels in L1). */
export function chroma(x: tf.Tensor4D): tf.Tensor4D {
  return tf.tidy(() => {
    const [n, h, w, c] = x.shape;
    if (c !== 3) throw new Error(`chroma: expected 3 channels, got ${c}`);
    const m = tf.tensor2d(
      [
        [-0.168736, 0.5],
        [-0.331264, -0.418688],
        [0.5, -0.081312],
      ],
      [3, 2],
    );
    return tf.reshape(tf.matMul(tf.reshape(x, [-1, 3]), m), [n, h, w, 2]) as tf.Tensor4D;
  });
}

/** BT.601 luma Y = 0.299 R + 0.587 G + 0.114 B of an NHWC RGB image: [N,H,W,1]. */
export function luma(x: tf.Tensor4D): tf.Tensor4D {
  return tf.tidy(() => {
    const [n, h, w, c] = x.shape;
    if (c !== 3) throw new Error(`luma: expected 3 channels, got ${c}`);
    const m = tf.tensor2d([...LUMA_WEIGHTS], [3, 1]);
    return tf.reshape(tf.matMul(tf.reshape(x, [-1, 3]), m), [n, h, w, 1]) as tf.Tensor4D;
  });
}

/**
 * The fusion loss of fused `F` against visible `V` (N,3,H,W) and infrared `I` (N,1,H,W),
 * all in [-1, 1] (any layout, see options). Differentiable with respect to `fused`.
 */
export function fusionLoss(
  vis: tf.Tensor,
  ir: tf.Tensor,
  fused: tf.Tensor,
  options: FusionLossOptions = {},
): FusionLossResult {
  const alpha = options.alpha ?? FUSION_LOSS_DEFAULTS.alpha;
  const colorWeight = options.colorWeight ?? FUSION_LOSS_DEFAULTS.color_weight;
  const layout = options.layout ?? 'NCHW';
  const out = tf.tidy(() => {
    const v = toNhwc(vis, layout);
    const i = toNhwc(ir, layout);
    const f = toNhwc(fused, layout);
    if (v.shape[3] !== f.shape[3])
      throw new Error(`fusionLoss: fused has ${f.shape[3]} channels, visible ${v.shape[3]}`);
    if (i.shape[3] !== 1 && i.shape[3] !== v.shape[3])
      throw new Error(
        `fusionLoss: infrared must have 1 or ${v.shape[3]} channels, got ${i.shape[3]}`,
      );
    const lum = options.space === 'luma';
    if (lum && i.shape[3] !== 1)
      throw new Error(`fusionLoss: space 'luma' needs a 1-channel infrared, got ${i.shape[3]}`);
    const fs = lum ? luma(f) : f;
    // Targets carry no gradient.
    let target: tf.Tensor;
    let gradTarget: tf.Tensor;
    if ((options.target ?? 'max') === 'max') {
      const vs = lum ? luma(v) : v;
      target = tf.maximum(vs, i);
      gradTarget = tf.maximum(sobelMagnitude(vs), sobelMagnitude(i));
    } else {
      if (!lum) throw new Error(`fusionLoss: target '${options.target}' needs space 'luma'`);
      const [n, h, w] = v.shape;
      const t = fusionTargetBatch(
        options.target as FusionTargetKind,
        v.dataSync() as Float32Array,
        i.dataSync() as Float32Array,
        n,
        h,
        w,
        options.targetOptions,
        'NHWC',
      );
      target = tf.tensor4d(t.intensity, [n, h, w, 1]);
      gradTarget = tf.tensor4d(t.gradient, [n, h, w, 1]);
    }
    const lossIn = tf.mean(tf.abs(tf.sub(fs, target))) as tf.Scalar;
    const lossGrad = tf.mean(tf.abs(tf.sub(sobelMagnitude(fs), gradTarget))) as tf.Scalar;
    let loss = tf.add(lossIn, tf.mul(lossGrad, alpha)) as tf.Scalar;
    const res: Record<string, tf.Scalar> = { lossIn, lossGrad };
    if (colorWeight > 0) {
      const lossColor = tf.mean(tf.abs(tf.sub(chroma(f), chroma(v)))) as tf.Scalar;
      loss = tf.add(loss, tf.mul(lossColor, colorWeight)) as tf.Scalar;
      res.lossColor = lossColor;
    }
    res.loss = loss;
    return res;
  });
  return out as unknown as FusionLossResult;
}
