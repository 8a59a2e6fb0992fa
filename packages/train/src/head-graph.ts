/**
 * The fusion-head training graph: the frozen DDPM's decoder features of a batch (the
 * UNet run forward only, its weights baked in as initializers, exactly as the fusion
 * export runs it), the head on `GradOps`, and Dif-Fusion's fusion loss (official
 * models/fs_loss.py; its one definition is @dif-fusion/fusion-head's `fusionLossTerms`):
 *
 *   x_k       = q_sample(cat(V, I), level_k, noise_k)   (@dif-fusion/diffusion's qSample; no gradient)
 *   F         = head(UNet.features(x_k, level_k) for every time step k)
 *   loss_in   = mean |F - max(V, I)|
 *   loss_grad = mean |S(F) - max(S(V), S(I))|,  S = |sobel_x * .| + |sobel_y * .| per channel
 *   loss      = loss_in + alpha * loss_grad (+ color_weight * mean |CbCr(F) - CbCr(V)|)
 *
 * (with `space: 'luma'` both terms compare BT.601 luma: Y(F) against max(Y(V), I)),
 * Inputs: `vis` [N,3,S,S], `ir` [N,1,S,S] in [-1, 1], `noise` [K,N,4,S,S], `level` [K*N,1]
 * (step-major), with `target: 'input'` the targets `target` and `target_grad`, and the head
 * parameters by official name; outputs `loss`, `loss_in`,
 * `loss_grad` (`loss_color`), `fused` [N,3,S,S] and `grad.<name>` for `head.usedParams()`.
 */

import { stepFeatures } from '@dif-fusion/diffusion';
import {
  FUSION_LOSS_DEFAULTS,
  type FusionHead,
  fusionLossTerms,
  type LossSpace,
} from '@dif-fusion/fusion-head';
import type { TorchWeightsLike } from '@dif-fusion/nn';
import { GraphBuilder, OnnxOps, type Value } from '@dif-fusion/onnx';
import { finishTrainGraph, GradOps, paramShapes, type TrainGraph } from '@dif-fusion/onnx/train';
import type { DenoiserNet } from '@dif-fusion/unet';

export interface HeadGraphOptions extends HeadLossOptions {
  /** The frozen DDPM and its weights (PyTorch layouts, official names without `denoise_fn.`). */
  unet: DenoiserNet;
  unetWeights: TorchWeightsLike;
}

/** The head's part of the graphs below: the batch and the head's loss options. */
export interface HeadLossOptions {
  batch: number;
  size: number;
  /** Weight of the gradient term (official 1). */
  alpha?: number;
  /** Weight of the chroma term (default 0: off, as the official loss). */
  colorWeight?: number;
  /** Where intensities and gradients are compared (default rgb, official). */
  space?: LossSpace;
  /**
   * `max` (default, official): the targets max(., I) are nodes of this graph. `input`: the
   * targets are inputs `target` and `target_grad` ([N,C,S,S], C = 1 in luma space, else 3),
   * computed outside by fusion-head's `fusionTargetBatch` (e.g. the `salient` target).
   */
  target?: 'max' | 'input';
}

/** The frozen DDPM's decoder features: `[step][decoder index]` (only the head's indices set). */
type Features = Value[][];

/**
 * The frozen UNet's decoder features of the batch at every time step (forward only, no
 * gradient), written into `g` with `unetOps`: q_sample of `cat(vis, ir)` at each step's
 * level, one UNet pass over the K steps batched step-major, split per step.
 */
function frozenFeatures(
  g: GraphBuilder,
  head: FusionHead,
  unet: DenoiserNet,
  unetOps: OnnxOps,
  batch: { vis: Value; ir: Value; noise: Value; level: Value; n: number; s: number },
): Features {
  const k = head.config.time_steps.length;
  const indices = head.requiredFeatureIndices();
  const min = Math.min(...indices);
  // The one feature sequence (@dif-fusion/diffusion's stepFeatures), batched step-major:
  // x_k = level_k x + sqrt(1 - level_k^2) noise_k, one UNet pass over the K*N inputs.
  return stepFeatures(unetOps, {
    x: unetOps.concatChannels([batch.vis, batch.ir]),
    levels: unetOps.splitBatch(batch.level, k), // [N,1] each
    noise: unetOps.splitBatch(batch.noise, k).map((v) => g.node('Squeeze', [v, g.constI64([0])])), // [N,4,S,S] each
    features: (xt, l) => unet.features(unetOps, xt, l, { minDecoderIndex: min }).fd,
    batchLevel: () => batch.level,
    indices,
  }) as Features;
}

/** Shape `[N, C_i, S/f_i, S/f_i]` of decoder feature `i` (what the head reads). */
export function headFeatureShape(
  unet: DenoiserNet,
  i: number,
  batch: number,
  size: number,
): number[] {
  const f = unet.decoderScale(i);
  return [batch, unet.decoderChannels()[i], size / f, size / f];
}

/** The input / output name of the feature of time step index `t`, decoder index `i`. */
export const headFeatureName = (t: number, i: number): string => `feat.${t}.${i}`;

/** The head on `ops`, over `feats`, and its fusion loss: the training graph's outputs. */
function headLoss(
  g: GraphBuilder,
  ops: GradOps,
  head: FusionHead,
  feats: Features,
  io: { vis: Value; ir: Value; inputs: Map<string, number[]> },
  o: HeadLossOptions,
): TrainGraph {
  const { vis, ir, inputs } = io;
  const n = o.batch;
  const s = o.size;
  const fused = head.forward(ops, feats, { vis, ir });
  const fShape = ops.shape(fused);

  const rgb = [n, 3, s, s];
  if (fShape.join() !== rgb.join())
    throw new Error(`head training graph: the head outputs [${fShape}], the loss needs [${rgb}]`);
  const cmp = o.space === 'luma' ? [n, 1, s, s] : rgb;
  let target: { intensity: Value; gradient: Value } | undefined;
  if ((o.target ?? 'max') === 'input') {
    inputs.set('target', cmp);
    inputs.set('target_grad', cmp);
    target = { intensity: ops.input('target', cmp), gradient: ops.input('target_grad', cmp) };
  }
  const terms = fusionLossTerms(ops, {
    vis,
    ir,
    fused,
    alpha: o.alpha ?? FUSION_LOSS_DEFAULTS.alpha,
    colorWeight: o.colorWeight ?? FUSION_LOSS_DEFAULTS.color_weight,
    space: o.space ?? 'rgb',
    target,
  });
  const scalars: Record<string, Value> = { loss_in: terms.lossIn, loss_grad: terms.lossGrad };
  if (terms.lossColor) scalars.loss_color = terms.lossColor;
  return finishTrainGraph(g, ops, terms.loss, scalars, inputs, { fused });
}

/** The inputs of the head's training and feature graphs: the pair, the noise, the levels. */
function headGraphInputs(k: number, n: number, s: number): Map<string, number[]> {
  return new Map<string, number[]>([
    ['vis', [n, 3, s, s]],
    ['ir', [n, 1, s, s]],
    ['noise', [k, n, 4, s, s]],
    ['level', [k * n, 1]],
  ]);
}

export function buildHeadTrainGraph(head: FusionHead, o: HeadGraphOptions): TrainGraph {
  const g = new GraphBuilder('head_train');
  const unetOps = new OnnxOps(g, o.unetWeights, { prefix: 'unet.' });
  const ops = new GradOps(g, paramShapes(head.usedParams()));
  const k = head.config.time_steps.length;
  const n = o.batch;
  const s = o.size;
  const inputs = headGraphInputs(k, n, s);
  const vis = ops.input('vis', [n, 3, s, s]);
  const ir = ops.input('ir', [n, 1, s, s]);
  const noise = ops.input('noise', [k, n, 4, s, s]);
  const level = ops.input('level', [k * n, 1]);
  const feats = frozenFeatures(g, head, o.unet, unetOps, { vis, ir, noise, level, n, s });
  for (const i of head.requiredFeatureIndices())
    for (let t = 0; t < k; t++) ops.adopt(feats[t][i], headFeatureShape(o.unet, i, n, s));
  return headLoss(g, ops, head, feats, { vis, ir, inputs }, o);
}

/**
 * The feature cache's two graphs (`dif-train head --feature-cache` on ONNX Runtime): the
 * frozen UNet's part of `buildHeadTrainGraph` alone, and the head's part alone fed with its
 * outputs. Together they compute what `buildHeadTrainGraph` computes, node for node.
 *
 * `buildHeadFeaturesGraph`: inputs `vis`, `ir`, `noise`, `level` as above; outputs
 * `feat.<t>.<i>` (headFeatureName) for every time step index t and every decoder index i the
 * head reads; no parameters (the UNet's weights are initializers), no gradients.
 */
export function buildHeadFeaturesGraph(
  head: FusionHead,
  o: { unet: DenoiserNet; unetWeights: TorchWeightsLike; batch: number; size: number },
): TrainGraph {
  const g = new GraphBuilder('head_features');
  const unetOps = new OnnxOps(g, o.unetWeights, { prefix: 'unet.' });
  const k = head.config.time_steps.length;
  const n = o.batch;
  const s = o.size;
  const inputs = headGraphInputs(k, n, s);
  const [vis, ir, noise, level] = [...inputs].map(([name, shape]) => g.input(name, shape));
  const feats = frozenFeatures(g, head, o.unet, unetOps, { vis, ir, noise, level, n, s });
  const tensors = new Map<string, number[]>();
  for (const i of head.requiredFeatureIndices())
    for (let t = 0; t < k; t++) {
      const shape = headFeatureShape(o.unet, i, n, s);
      g.output(feats[t][i], headFeatureName(t, i), shape);
      tensors.set(headFeatureName(t, i), shape);
    }
  return {
    model: g.serialize({ producerName: 'dif-fusion-train' }).model,
    ...{ params: [], dropout: [], inputs, scalars: [], tensors },
  };
}

/**
 * The head's training graph on cached features: `buildHeadTrainGraph` with its features
 * as inputs `feat.<t>.<i>` (shapes `headFeatureShape`) instead of the UNet's nodes; the same
 * outputs. Needs the frozen UNet's shape only (channels and scales), not its weights.
 */
export function buildHeadCachedTrainGraph(
  head: FusionHead,
  o: HeadLossOptions & { unet: DenoiserNet },
): TrainGraph {
  const g = new GraphBuilder('head_train_cached');
  const ops = new GradOps(g, paramShapes(head.usedParams()));
  const k = head.config.time_steps.length;
  const n = o.batch;
  const s = o.size;
  const inputs = new Map<string, number[]>([
    ['vis', [n, 3, s, s]],
    ['ir', [n, 1, s, s]],
  ]);
  const vis = ops.input('vis', [n, 3, s, s]);
  const ir = ops.input('ir', [n, 1, s, s]);
  const feats: Features = Array.from({ length: k }, () => []);
  for (const i of head.requiredFeatureIndices())
    for (let t = 0; t < k; t++) {
      const shape = headFeatureShape(o.unet, i, n, s);
      inputs.set(headFeatureName(t, i), shape);
      feats[t][i] = ops.input(headFeatureName(t, i), shape);
    }
  return headLoss(g, ops, head, feats, { vis, ir, inputs }, o);
}
