/**
 * The diffusion settings and the maths that need no tensor library: the loss, mean and
 * variance types (./parameterisation.ts), the samplers' names, the training levels (q_sample and
 * the losses on any `Ops`: ./losses.ts). The TensorFlow.js realisation (`GaussianDiffusion`, the feature extractor,
 * the bound term) is `@dif-fusion/diffusion/tfjs`.
 */
import type { NoiseSchedule } from '@dif-fusion/schedules';
import { learnsVariance, type MeanType, type VarType } from './parameterisation';

/** The fusion noise for a seed (defined in @dif-fusion/schedules, beside Rng). */
export { fusionNoise } from '@dif-fusion/schedules';

/** The default lambda of the hybrid loss (Improved DDPM's 0.001; config `vlb_weight`). */
export const DEFAULT_VLB_WEIGHT = 0.001;

export type DiffusionLoss = 'l1' | 'l2';

/** The loss of the reference configs (`model.diffusion.loss: "l2"`) and dif-train's default. */
export const DEFAULT_DIFFUSION_LOSS: DiffusionLoss = 'l2';

/**
 * The diffusion's one config: the `model.diffusion` block of a DDPM config file, with its key
 * names (the reference's `loss` and `conditional`, pytorch-ddpm's `mean_type` and `var_type`,
 * Improved DDPM's `vlb_weight`), what `GaussianDiffusion` takes and what checkpoints store.
 */
export interface DiffusionConfig {
  /** Loss between the target and the denoiser's output (default {@link DEFAULT_DIFFUSION_LOSS}, the reference configs' l2). */
  loss?: DiffusionLoss;
  /** What the denoiser predicts (pytorch-ddpm's mean_type; default `epsilon`). */
  mean_type?: MeanType;
  /**
   * The reverse variance of ancestral sampling (pytorch-ddpm's var_type; default
   * `fixedsmall`); `learned_range`: the denoiser outputs [mean output, v] (twice the data's
   * channels) and trains with the hybrid loss (see ./losses.ts).
   */
  var_type?: VarType;
  /**
   * lambda of the hybrid loss L_simple + lambda T vb (default 0.001 as Improved DDPM);
   * `learned_range` only.
   */
  vlb_weight?: number;
  /**
   * SR3's image-conditional mode: the denoiser sees the condition image concatenated before x
   * on the channel axis (the reference's `torch.cat([x_in['SR'], x_noisy], dim=1)`), so its
   * in_channel is cond + x channels.
   */
  conditional?: boolean;
  /** Condition dropout of conditional training (classifier-free guidance), in [0, 1). */
  drop_prob?: number;
}

/**
 * The problems between keys of a block whose keys each have the right type (the one home of
 * these rules; dif-train's config schema reports them at `model.diffusion.<key>`).
 */
export function diffusionConfigProblems(
  d: DiffusionConfig,
): Array<{ key: keyof DiffusionConfig; message: string }> {
  const out: Array<{ key: keyof DiffusionConfig; message: string }> = [];
  if (d.vlb_weight !== undefined && d.var_type !== 'learned_range')
    out.push({
      key: 'vlb_weight',
      message: 'needs model.diffusion.var_type: "learned_range" (the only learned variance)',
    });
  if (d.drop_prob && !d.conditional)
    out.push({ key: 'drop_prob', message: 'needs model.diffusion.conditional: true' });
  return out;
}

/**
 * The official p_sample_loop's `sample_inter = (1 | (num_timesteps // 10))` (a bitwise or, as
 * written there: 201 for T = 2000) over the steps actually taken: with `continous=True` it
 * returns x_T and every state whose index i (steps - 1 .. 0) is a multiple of this.
 */
export function intermediateInterval(steps: number): number {
  return 1 | Math.floor(steps / 10);
}

/** The samplers of `GaussianDiffusion.run` (`@dif-fusion/diffusion/tfjs`). */
export const SAMPLERS = ['ancestral', 'ddim'] as const;
export type SamplerName = (typeof SAMPLERS)[number];

/**
 * The noise levels a batch trains on: SR3's continuous levels, except with `learned_range`,
 * whose bound term needs the posterior of a discrete step: every sample then sits at
 * sqrt(a_{t-1}) (= sqrt_alphas_cumprod_prev[t], the level the sampler evaluates step t at),
 * as Improved DDPM trains. The continuous draws are still made (and discarded), so the
 * training Rng stream is the same for every var_type.
 */
export function trainingLevels(
  schedule: NoiseSchedule,
  varType: VarType,
  t: number,
  levels: Float32Array,
): Float32Array {
  if (!learnsVariance(varType)) return levels;
  return new Float32Array(levels.length).fill(schedule.sqrtAlphasCumprodPrev[t]);
}
