/**
 * The fusion loss's settings (the loss itself on TensorFlow.js: ./loss.ts, the
 * `@dif-fusion/fusion-head/tfjs` subpath; on ONNX graphs: @dif-fusion/onnx/train head-graph).
 */
import type { FusionTargetKind, SalientTargetOptions } from './target';

export type ImageLayout = 'NCHW' | 'NHWC';

export interface FusionLossOptions {
  /** Weight of the gradient term (official: 1). */
  alpha?: number;
  /**
   * Weight of the optional colour-fidelity term: mean |CbCr(F) - CbCr(V)| (BT.601 chroma,
   * computed on the [-1, 1] images). 0 (default) leaves it out, as the official loss does.
   */
  colorWeight?: number;
  /**
   * Where the intensity and gradient terms compare: `rgb` (default, official: every channel
   * against max(V_c, I)) or `luma` (Y(F) against max(Y(V), I)).
   */
  space?: LossSpace;
  /**
   * What the intensity and gradient terms compare against (`./target`): `max` (default,
   * official) or `salient` (luma space only).
   */
  target?: FusionTargetKind;
  /** Options of the `salient` target. */
  targetOptions?: SalientTargetOptions;
  /** Layout of the image tensors passed in. Default 'NCHW'. */
  layout?: ImageLayout;
}

/** Where the fusion loss compares intensities and gradients (see the file comment). */
export type LossSpace = 'rgb' | 'luma';
