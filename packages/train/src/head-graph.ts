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

export interface HeadGraphOptions {
  /** The frozen DDPM and its weights (PyTorch layouts, official names without `denoise_fn.`). */
  unet: DenoiserNet;
  unetWeights: TorchWeightsLike;
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

export function buildHeadTrainGraph(head: FusionHead, o: HeadGraphOptions): TrainGraph {
  const g = new GraphBuilder('head_train');
  const unetOps = new OnnxOps(g, o.unetWeights, { prefix: 'unet.' });
  const ops = new GradOps(g, paramShapes(head.usedParams()));
  const k = head.config.time_steps.length;
  const n = o.batch;
  const s = o.size;
  const inputs = new Map<string, number[]>([
    ['vis', [n, 3, s, s]],
    ['ir', [n, 1, s, s]],
    ['noise', [k, n, 4, s, s]],
    ['level', [k * n, 1]],
  ]);
  const vis = ops.input('vis', [n, 3, s, s]);
  const ir = ops.input('ir', [n, 1, s, s]);
  const noise = ops.input('noise', [k, n, 4, s, s]);
  const level = ops.input('level', [k * n, 1]);

  // The one feature sequence (@dif-fusion/diffusion's stepFeatures), batched step-major:
  // x_k = level_k x + sqrt(1 - level_k^2) noise_k, one UNet pass over the K*N inputs.
  const indices = head.requiredFeatureIndices();
  const min = Math.min(...indices);
  const frozen = stepFeatures(unetOps, {
    x: unetOps.concatChannels([vis, ir]),
    levels: unetOps.splitBatch(level, k), // [N,1] each
    noise: unetOps.splitBatch(noise, k).map((v) => g.node('Squeeze', [v, g.constI64([0])])), // [N,4,S,S] each
    features: (xt, l) => o.unet.features(unetOps, xt, l, { minDecoderIndex: min }).fd,
    batchLevel: () => level,
    indices,
  });
  // the head's inputs: the frozen features as constants of GradOps (no gradient)
  const channels = o.unet.decoderChannels();
  const feats: Value[][] = frozen.map((fd) => {
    const out = new Array<Value>(fd.length);
    for (const i of indices) {
      const f = o.unet.decoderScale(i);
      out[i] = ops.adopt(fd[i]!, [n, channels[i], s / f, s / f]);
    }
    return out;
  });
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
