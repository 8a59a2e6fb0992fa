/**
 * The fusion loss on TensorFlow.js: the tfjs entry of ./fusion-loss.ts (the one definition,
 * on `Ops`), taking images in either layout and computing targets other than the official
 * max (`salient`, ./target.ts) on the host.
 */
import { TfOps } from '@dif-fusion/tfjs';
import * as tf from '@tensorflow/tfjs-core';
import { fusionLossTerms, luma as lumaOps, sobelMagnitude as sobelOps } from './fusion-loss';
import { FUSION_LOSS_DEFAULTS, type FusionLossOptions, type ImageLayout } from './loss-options';
import { type FusionTargetKind, fusionTargetBatch } from './target';

// No `import '@tensorflow/tfjs-core/dist/register_all_gradients.js'` here: that ESM file uses
// extensionless imports, which plain Node cannot load, so importing it would make this
// package unusable in Node even for inference. Whoever trains registers the gradients
// (see the README, "Gradients").

/** TfOps for the parameter-free loss maths. */
const maths = new TfOps({
  get: (name) => {
    throw new Error(`the fusion loss reads no parameter (asked for ${name})`);
  },
});

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

/** |sobel_x| + |sobel_y| of every channel of an NHWC image, zero padding 1 (./fusion-loss.ts). */
export function sobelMagnitude(x: tf.Tensor4D): tf.Tensor4D {
  return tf.tidy(() => sobelOps(maths, x, x.shape[3]) as tf.Tensor4D);
}

/** BT.601 luma of an NHWC RGB image: [N,H,W,1] (./fusion-loss.ts). */
export function luma(x: tf.Tensor4D): tf.Tensor4D {
  if (x.shape[3] !== 3) throw new Error(`luma: expected 3 channels, got ${x.shape[3]}`);
  return tf.tidy(() => lumaOps(maths, x) as tf.Tensor4D);
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
    let target: { intensity: tf.Tensor; gradient: tf.Tensor } | undefined;
    if ((options.target ?? 'max') !== 'max') {
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
      target = {
        intensity: tf.tensor4d(t.intensity, [n, h, w, 1]),
        gradient: tf.tensor4d(t.gradient, [n, h, w, 1]),
      };
    }
    const r = fusionLossTerms(maths, {
      vis: v,
      ir: i,
      irChannels: i.shape[3],
      visChannels: v.shape[3],
      fused: f,
      alpha,
      colorWeight,
      space: lum ? 'luma' : 'rgb',
      target,
    });
    const res: Record<string, tf.Scalar> = {
      loss: r.loss as tf.Scalar,
      lossIn: r.lossIn as tf.Scalar,
      lossGrad: r.lossGrad as tf.Scalar,
    };
    if (r.lossColor) res.lossColor = r.lossColor as tf.Scalar;
    return res;
  });
  return out as unknown as FusionLossResult;
}
