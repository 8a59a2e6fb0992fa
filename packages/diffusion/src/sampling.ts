/**
 * The samplers' maths, written once on `Ops` (the tfjs sampling loop of
 * `GaussianDiffusion.run`/`pSample` calls it; any realisation can): what the denoiser's
 * output means at chain index i (its mean output and log variance per var type), x_0 and
 * the posterior mean per mean type (Ho et al. eq. 6-7, 11; pytorch-ddpm), DDIM's update
 * (Song et al. 2021, eq. 12) and the noise of an ancestral step. The chain's numbers are
 * ./parameterisation.ts's pure functions.
 */
import type { Ops } from '@dif-fusion/nn';
import {
  type ChainCoefficients,
  type FixedVarType,
  learnedRange,
  type MeanType,
  noiseFromStartCoefs,
  startFromNoiseCoefs,
  startFromPrevCoefs,
  type VarType,
} from './parameterisation';

/**
 * The denoiser's output `raw` at chain index i as its mean output and log variance: the
 * fixed var types' number, or learned_range's per-element mid_i + half_i v from the last
 * `channels` channels (Improved DDPM eq. 15; `raw` has 2 `channels`).
 */
export function modelOutputParts<T>(
  ops: Ops<T>,
  c: ChainCoefficients,
  varType: VarType,
  i: number,
  raw: T,
  channels: number,
): { out: T; logVariance: number | T } {
  if (varType !== 'learned_range')
    return { out: raw, logVariance: c.logVariance[varType as FixedVarType][i] };
  const r = learnedRange(c, i);
  const v = ops.sliceChannels(raw, channels, 2 * channels);
  return {
    out: ops.sliceChannels(raw, 0, channels),
    logVariance: ops.addScalar(ops.scale(v, r.half), r.mid),
  };
}

/** min(max(x, -1), 1), as max and negation (exact: the same values as a clip). */
export function clipUnit<T>(ops: Ops<T>, x: T): T {
  return ops.scale(ops.maxScalar(ops.scale(ops.maxScalar(x, -1), -1), -1), -1);
}

/**
 * x_0 and the posterior mean q(x_{i-1} | x_i, x_0) from the denoiser's mean output `out` at
 * chain index i: x_0 from eps (epsilon), the output itself (x_start) or from x_prev
 * (optionally clipped to [-1, 1]); the mean c1 x_0 + c2 x_i, or the output itself (x_prev,
 * as pytorch-ddpm).
 */
export function startAndMean<T>(
  ops: Ops<T>,
  c: ChainCoefficients,
  meanType: MeanType,
  i: number,
  x: T,
  out: T,
  clip: boolean,
): { xStart: T; mean: T } {
  let x0: T;
  if (meanType === 'epsilon') {
    const [a, b] = startFromNoiseCoefs(c, i);
    x0 = ops.axpby(a, x, b, out);
  } else if (meanType === 'x_start') x0 = out;
  else {
    const [a, b] = startFromPrevCoefs(c, i);
    x0 = ops.axpby(a, x, b, out);
  }
  const xStart = clip ? clipUnit(ops, x0) : x0;
  const mean = meanType === 'x_prev' ? out : posteriorMean(ops, c, i, xStart, x);
  return { xStart, mean };
}

/** The mean of the posterior q(x_{i-1} | x_i, x_0): c1_i x_0 + c2_i x_i (eq. 7). */
export function posteriorMean<T>(ops: Ops<T>, c: ChainCoefficients, i: number, xStart: T, x: T): T {
  return ops.axpby(c.posteriorMeanCoef1[i], xStart, c.posteriorMeanCoef2[i], x);
}

/**
 * DDIM's sigma at chain index i: eta sqrt((1 - a_{i-1}) / (1 - a_i)) sqrt(1 - a_i / a_{i-1}).
 */
export function ddimSigma(c: ChainCoefficients, i: number, eta: number): number {
  const a = c.alphasCumprod[i];
  const aPrev = c.alphasCumprodPrev[i];
  return eta * Math.sqrt((1 - aPrev) / (1 - a)) * Math.sqrt(1 - a / aPrev);
}

/**
 * DDIM's mean of x_{i-1} (before the noise sigma z): sqrt(a_{i-1}) x_0
 * + sqrt(1 - a_{i-1} - sigma^2) eps, eps re-derived from the (clipped) x_0.
 */
export function ddimMean<T>(
  ops: Ops<T>,
  c: ChainCoefficients,
  i: number,
  x: T,
  xStart: T,
  sigma: number,
): T {
  const aPrev = c.alphasCumprodPrev[i];
  const [ea, eb] = noiseFromStartCoefs(c, i);
  const eps = ops.axpby(ea, x, eb, xStart);
  return ops.axpby(Math.sqrt(aPrev), xStart, Math.sqrt(Math.max(1 - aPrev - sigma ** 2, 0)), eps);
}

/**
 * y + sd z: a step's noise, sd a number (exp(0.5 log var) of a fixed variance, DDIM's sigma)
 * or, for a learned log variance `lv`, pass `learnedSd(ops, lv)`.
 */
export function addStepNoise<T>(ops: Ops<T>, y: T, z: T, sd: number | T): T {
  return ops.add(y, typeof sd === 'number' ? ops.scale(z, sd) : ops.mul(z, sd));
}

/** exp(0.5 log var), per element. */
export function learnedSd<T>(ops: Ops<T>, logVariance: T): T {
  return ops.exp(ops.scale(logVariance, 0.5));
}

/** Classifier-free guidance: (1 + w) cond - w uncond of the mean outputs. */
export function guided<T>(ops: Ops<T>, cond: T, uncond: T, w: number): T {
  return ops.axpby(1 + w, cond, -w, uncond);
}
