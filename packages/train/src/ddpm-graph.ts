/**
 * The DDPM training graph: @dif-fusion/diffusion's `pLossTerms` (SR3 p_losses, Saharia et
 * al. eq. 6 with the continuous noise level of WaveGrad; the mean type's target; Improved
 * DDPM's hybrid loss for `learned_range`) and every parameter's gradient, written by running
 * that one definition and the UNet's on `GradOps`. Inputs: `x`, `noise` [B,C,H,W], `level`
 * [B,1], the dropout masks (`dropout_mask_<k>`, in call order) and the parameters by official
 * name; outputs `loss` and `grad.<name>`. Options add inputs: `coefs` [1,9] (mean type
 * x_prev, or `learnedRange`: @dif-fusion/diffusion's `lossCoefs` of the batch's t, so one
 * graph serves every t), `condition` [B,Cc,H,W] concatenated before x_t (SR3's conditional
 * mode: the UNet's in_channel is Cc + C). `learnedRange` (var_type `learned_range`): the UNet
 * outputs 2C channels [eps, v], and a `vb` output.
 */
import { type MeanType, needsLossCoefs, pLossTerms } from '@dif-fusion/diffusion';
import { notBuffer } from '@dif-fusion/nn';
import { GraphBuilder, type Value } from '@dif-fusion/onnx';
import { finishTrainGraph, GradOps, paramShapes, type TrainGraph } from '@dif-fusion/onnx/train';
import type { DenoiserNet } from '@dif-fusion/unet';

export interface DdpmGraphOptions {
  batch: number;
  /** Crop size (square). */
  size: number;
  loss: 'l1' | 'l2';
  /** Dropout masks as inputs (training); false: dropout off. Default true. */
  dropout?: boolean;
  /** What the UNet predicts (the loss's target; default epsilon). */
  meanType?: MeanType;
  /** Channels of a `condition` input concatenated before x_t (conditional mode); 0: none. */
  condition?: number;
  /**
   * Gradient checkpointing: every ResnetBlocWithAttn's activations are recomputed in the
   * backward pass instead of kept (see GradOps `checkpoint`). Default false.
   */
  checkpoint?: boolean;
  /**
   * var_type `learned_range`: lambda T, the weight of the bound term vb in the loss
   * (@dif-fusion/diffusion's vlbWeight times the number of time steps); absent: fixed variance.
   */
  learnedRange?: { vbWeight: number };
}

/** Build the DDPM training graph of `unet`. */
export function buildDdpmTrainGraph(unet: DenoiserNet, o: DdpmGraphOptions): TrainGraph {
  const g = new GraphBuilder('ddpm_train');
  const ops = new GradOps(g, paramShapes(unet.params()), {
    training: o.dropout ?? true,
    checkpoint: o.checkpoint ?? false,
    trainable: notBuffer(unet.params()),
  });
  const cc = o.condition ?? 0;
  const c = unet.config.in_channel - cc;
  const meanType = o.meanType ?? 'epsilon';
  const shape = [o.batch, c, o.size, o.size];
  const inputs = new Map<string, number[]>([
    ['x', shape],
    ['noise', shape],
    ['level', [o.batch, 1]],
  ]);
  const condShape = [o.batch, cc, o.size, o.size];
  if (cc > 0) inputs.set('condition', condShape);
  const x = ops.input('x', shape);
  const noise = ops.input('noise', shape);
  const level = ops.input('level', [o.batch, 1]);
  const condition = cc > 0 ? ops.input('condition', condShape) : null;
  let coefs: Value | undefined;
  if (needsLossCoefs(meanType, o.learnedRange !== undefined)) {
    inputs.set('coefs', [1, 9]);
    coefs = ops.input('coefs', [1, 9]);
  }
  const terms = pLossTerms(ops, {
    xStart: x,
    noise,
    level,
    denoise: (xt, l) => unet.forward(ops, condition ? ops.concatChannels([condition, xt]) : xt, l),
    loss: o.loss,
    meanType,
    channels: c,
    denom: o.batch * c * o.size * o.size,
    coefs,
    vbWeight: o.learnedRange?.vbWeight,
  });
  const scalars: Record<string, Value> = terms.vb ? { vb: terms.vb } : {};
  // BatchNorm in training mode (skip_unet): each site's batch statistics, for the buffers
  const stats = Object.fromEntries(
    ops.batchStats.flatMap((s) => [
      [`bn_mean.${s.site}`, s.mean],
      [`bn_var.${s.site}`, s.variance],
    ]),
  );
  const graph = finishTrainGraph(g, ops, terms.loss, scalars, inputs, stats);
  if (ops.batchStats.length === 0) return graph;
  return { ...graph, batchStats: ops.batchStats.map((s) => ({ site: s.site, count: s.count })) };
}
