/**
 * The fusion loss's settings, defined once: their config shape (`FusionLossConfig`, the keys
 * of dif-train's `train.loss` block), their one default each (`FUSION_LOSS_DEFAULTS`), the
 * one check (`fusionLossProblem`) and the one translation to the loss's options
 * (`fusionLossOptions`). The loss itself: ./loss.ts on TensorFlow.js (the
 * `@dif-fusion/fusion-head/tfjs` subpath) and @dif-fusion/train's head-graph on ONNX.
 */
import {
  type FusionTargetKind,
  SALIENT_TARGET_DEFAULTS,
  type SalientTargetOptions,
} from './target';

export type ImageLayout = 'NCHW' | 'NHWC';

export interface FusionLossOptions {
  /** Weight of the gradient term (default {@link FUSION_LOSS_DEFAULTS}: 1, official). */
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

/**
 * The fusion loss settings as configs write them (dif-train's `train.loss`): `alpha`
 * weighs the gradient term, `color_weight` the optional chroma term (0 = off, the official
 * loss), `space` where intensities and gradients compare, `target` what they compare against,
 * `target_options` the `salient` target's options (./target.ts).
 */
export interface FusionLossConfig {
  alpha?: number;
  color_weight?: number;
  space?: LossSpace;
  target?: FusionTargetKind;
  target_options?: SalientTargetOptions;
}

/** Every fusion loss setting's one default (the official loss: SeAFusion's, as Dif-Fusion's). */
export const FUSION_LOSS_DEFAULTS: Readonly<Required<Omit<FusionLossConfig, 'target_options'>>> =
  Object.freeze({ alpha: 1, color_weight: 0, space: 'rgb', target: 'max' });

/** What is wrong with a loss config, in one line, or null (the cross-field rules). */
export function fusionLossProblem(c: FusionLossConfig): string | null {
  if (
    (c.target ?? FUSION_LOSS_DEFAULTS.target) !== 'max' &&
    (c.space ?? FUSION_LOSS_DEFAULTS.space) !== 'luma'
  )
    return `target '${c.target}' compares luma: set space 'luma' (--loss-space luma)`;
  const o = { ...SALIENT_TARGET_DEFAULTS, ...c.target_options };
  for (const [lo, hi] of [
    ['salient_low', 'salient_high'],
    ['dark_low', 'dark_high'],
    ['edge_low', 'edge_high'],
    ['smooth_low', 'smooth_high'],
  ] as const)
    if (!(o[lo] < o[hi])) return `target_options: ${lo} (${o[lo]}) must be below ${hi} (${o[hi]})`;
  return null;
}

/** The loss options a config asks for, every default filled (the one translation). */
export function fusionLossOptions(
  c: FusionLossConfig = {},
): Required<Omit<FusionLossOptions, 'targetOptions' | 'layout'>> &
  Pick<FusionLossOptions, 'targetOptions'> {
  return {
    alpha: c.alpha ?? FUSION_LOSS_DEFAULTS.alpha,
    colorWeight: c.color_weight ?? FUSION_LOSS_DEFAULTS.color_weight,
    space: c.space ?? FUSION_LOSS_DEFAULTS.space,
    target: c.target ?? FUSION_LOSS_DEFAULTS.target,
    targetOptions: c.target_options,
  };
}
