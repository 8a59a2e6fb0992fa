/**
 * What the denoiser predicts (`model.diffusion.mean_type`) and which fixed reverse variance
 * the sampler uses (`model.diffusion.var_type`), as Ho et al. 2020 and the pytorch-ddpm port
 * (`GaussianDiffusionSampler`) define them, over the coefficients of a (possibly respaced)
 * chain of betas. Pure numbers: the tfjs sampler and both training backends share them (the
 * training target and loss on `Ops`: ./losses.ts).
 *
 * Notation (index i = 0..T-1 of the chain, a_i = alphas_cumprod[i], a_{-1} = 1):
 * - posterior q(x_{i-1} | x_i, x_0) = N(c1_i x_0 + c2_i x_i, v_i) with
 *   c1_i = beta_i sqrt(a_{i-1}) / (1 - a_i), c2_i = (1 - a_{i-1}) sqrt(1 - beta_i) / (1 - a_i),
 *   v_i = beta_i (1 - a_{i-1}) / (1 - a_i)                                  (Ho et al. eq. 6-7)
 * - `fixedsmall`: log var_i = log(max(v_i, 1e-20)) (sigma^2 = beta~, the posterior variance)
 * - `fixedlarge`: log var_i = log([v_1, beta_1, ..., beta_{T-1}]_i) (sigma^2 = beta, with the
 *   first entry v_1 as pytorch-ddpm / improved-diffusion, so log var_0 is finite)
 * - `learned_range` (Nichol & Dhariwal 2021, "Improved DDPM", eq. 15): the denoiser also
 *   outputs v (as many channels as the data) and
 *   log var_i = f log(beta_i) + (1 - f) log(v~_i), f = (v + 1) / 2, with
 *   v~ = [v_1, v_1, v_2, ..., v_{T-1}] (improved-diffusion's `posterior_log_variance_clipped`).
 *   See ./losses.ts for its loss.
 */

/** The denoiser's output (config `model.diffusion.mean_type`). */
export const MEAN_TYPES = ['epsilon', 'x_start', 'x_prev'] as const;
export type MeanType = (typeof MEAN_TYPES)[number];

/** The reverse-process variance (config `model.diffusion.var_type`). */
export const VAR_TYPES = ['fixedsmall', 'fixedlarge', 'learned_range'] as const;
export type VarType = (typeof VAR_TYPES)[number];
/** The var types whose variance is a number per step (no network output). */
export type FixedVarType = Exclude<VarType, 'learned_range'>;

/**
 * Whether the denoiser outputs the variance interpolation v besides its mean output (then
 * it has twice the data's channels: [mean output, v], improved-diffusion's `learn_sigma`).
 */
export const learnsVariance = (varType: VarType | undefined): boolean =>
  varType === 'learned_range';

/** The defaults: Dif-Fusion's (and Ho et al.'s) epsilon prediction, posterior variance. */
export const DEFAULT_MEAN_TYPE: MeanType = 'epsilon';
export const DEFAULT_VAR_TYPE: VarType = 'fixedsmall';

/** Per-step coefficients of a chain of betas (see the module comment for the formulas). */
export interface ChainCoefficients {
  betas: Float64Array;
  alphasCumprod: Float64Array;
  /** a_{i-1} (1 for i = 0). */
  alphasCumprodPrev: Float64Array;
  posteriorVariance: Float64Array;
  posteriorMeanCoef1: Float64Array;
  posteriorMeanCoef2: Float64Array;
  /** log var_i per fixed var_type. */
  logVariance: Record<FixedVarType, Float64Array>;
  /**
   * log v~_i with v~_0 := v~_1 (improved-diffusion's `posterior_log_variance_clipped`): the
   * lower end of `learned_range` (the upper end is log beta_i).
   */
  posteriorLogVarianceClipped: Float64Array;
}

/**
 * The coefficients of a chain (the full schedule's betas, or respaced ones from
 * `NoiseSchedule.respacedBetas`): alphas_cumprod is the running product of 1 - beta, in the
 * same order of operations as NoiseSchedule, so the full chain reproduces its numbers.
 */
export function chainCoefficients(betas: ArrayLike<number>): ChainCoefficients {
  const T = betas.length;
  const f = () => new Float64Array(T);
  const c: ChainCoefficients = {
    betas: Float64Array.from(betas),
    alphasCumprod: f(),
    alphasCumprodPrev: f(),
    posteriorVariance: f(),
    posteriorMeanCoef1: f(),
    posteriorMeanCoef2: f(),
    logVariance: { fixedsmall: f(), fixedlarge: f() },
    posteriorLogVarianceClipped: f(),
  };
  let cum = 1;
  for (let i = 0; i < T; i++) {
    const beta = betas[i];
    const prev = cum;
    cum = i === 0 ? 1 - beta : cum * (1 - beta);
    c.alphasCumprod[i] = cum;
    c.alphasCumprodPrev[i] = prev;
    const pv = (beta * (1 - prev)) / (1 - cum);
    c.posteriorVariance[i] = pv;
    c.posteriorMeanCoef1[i] = (beta * Math.sqrt(prev)) / (1 - cum);
    c.posteriorMeanCoef2[i] = ((1 - prev) * Math.sqrt(1 - beta)) / (1 - cum);
    c.logVariance.fixedsmall[i] = Math.log(Math.max(pv, 1e-20));
  }
  for (let i = 0; i < T; i++) {
    c.logVariance.fixedlarge[i] = Math.log(
      i === 0 ? (T > 1 ? c.posteriorVariance[1] : c.betas[0]) : c.betas[i],
    );
    const pv = i === 0 && T > 1 ? c.posteriorVariance[1] : c.posteriorVariance[i];
    c.posteriorLogVarianceClipped[i] = Math.log(Math.max(pv, 1e-20));
  }
  return c;
}

/**
 * The `learned_range` log variance at chain index i as an affine map of the network's v:
 * log var = f max + (1 - f) min with f = (v + 1) / 2, min = log v~_i, max = log beta_i, i.e.
 * log var = mid + half v with mid = (max + min) / 2, half = (max - min) / 2 (Improved DDPM
 * eq. 15). Returns { min, max, mid, half }.
 */
export function learnedRange(
  c: ChainCoefficients,
  i: number,
): { min: number; max: number; mid: number; half: number } {
  const min = c.posteriorLogVarianceClipped[i];
  const max = Math.log(c.betas[i]);
  return { min, max, mid: (max + min) / 2, half: (max - min) / 2 };
}

/**
 * The posterior mean of p(x_{i-1} | x_i) as p x_i + q out for the denoiser's (mean) output
 * `out` at chain index i, x_0 not clipped (training): epsilon: x_0 = a x_i + b eps, mean
 * c1 x_0 + c2 x_i; x_start: c1 out + c2 x_i; x_prev: out itself. Returns [p, q].
 */
export function modelMeanCoefs(
  c: ChainCoefficients,
  meanType: MeanType,
  i: number,
): [number, number] {
  const c1 = c.posteriorMeanCoef1[i];
  const c2 = c.posteriorMeanCoef2[i];
  if (meanType === 'x_prev') return [0, 1];
  if (meanType === 'x_start') return [c2, c1];
  const [a, b] = startFromNoiseCoefs(c, i);
  return [c1 * a + c2, c1 * b];
}

/**
 * x_0 from the predicted noise (Ho et al. eq. 4 inverted; pytorch-ddpm
 * `predict_xstart_from_eps`): x_0 = sqrt(1/a_i) x_i - sqrt(1/a_i - 1) eps. Returns the two
 * factors [on x_i, on eps].
 */
export function startFromNoiseCoefs(c: ChainCoefficients, i: number): [number, number] {
  const a = c.alphasCumprod[i];
  return [Math.sqrt(1 / a), -Math.sqrt(1 / a - 1)];
}

/**
 * x_0 from the predicted posterior mean (pytorch-ddpm `predict_xstart_from_xprev`):
 * x_0 = x_prev / c1_i - (c2_i / c1_i) x_i. Returns the two factors [on x_i, on x_prev].
 */
export function startFromPrevCoefs(c: ChainCoefficients, i: number): [number, number] {
  const c1 = c.posteriorMeanCoef1[i];
  return [-c.posteriorMeanCoef2[i] / c1, 1 / c1];
}

/**
 * eps from x_0 (improved-diffusion `_predict_eps_from_xstart`, used by DDIM):
 * eps = (sqrt(1/a_i) x_i - x_0) / sqrt(1/a_i - 1). Returns [on x_i, on x_0].
 */
export function noiseFromStartCoefs(c: ChainCoefficients, i: number): [number, number] {
  const a = c.alphasCumprod[i];
  const d = Math.sqrt(1 / a - 1);
  return [Math.sqrt(1 / a) / d, -1 / d];
}
