/**
 * The diffusion maths of training, written once on `Ops` (so TensorFlow.js, the ONNX
 * training graphs and the exported fusion graph all run these definitions):
 *
 * - `qSample`: q(x_t | x_0) with SR3's continuous level (Ho et al. eq. 4 with
 *   sqrt(alpha_bar) = level): x_t = level x_0 + sqrt(1 - level^2) eps;
 * - `pLossTerms` / `pLosses`: SR3's p_losses (sum |target - f(x_t, level)|^p / denom) with
 *   the mean type's target (pytorch-ddpm's trainer: eps, x_0 or the posterior mean
 *   c1 x_0 + c2 x_t), and, for `var_type: learned_range`, Improved DDPM's hybrid loss
 *   L_simple + lambda T vb (eq. 16) with the bound term below;
 * - the bound term (Nichol & Dhariwal 2021, sec. 3.1), with chain index i = t - 1, the true
 *   posterior q(x_{i-1} | x_i, x_0) = N(m1, exp(lv1)) and the model's N(m2, exp(lv2)),
 *   lv2 = mid_i + half_i v (see `learnedRange`):
 *   i > 0: KL(q || p) = 0.5 (-1 + lv2 - lv1 + exp(lv1 - lv2) + (m1 - m2)^2 exp(-lv2));
 *   i = 0: -log p(x_0 | x_1), the discretized Gaussian decoder (Ho et al. eq. 13), bins 2/255
 *   wide, the edge bins open, Phi(u) ~ 0.5 (1 + tanh(sqrt(2/pi) (u + 0.044715 u^3))).
 *   vb = sum(L_i) / (denom ln 2) (bits per dimension); m2 comes from the mean output under a
 *   stop-gradient, so vb trains only v.
 *
 * The per-batch numbers (posterior and model-mean coefficients, the variance range, which
 * bound term applies) are one `[1, 9]` value, `lossCoefs`, so one ONNX graph serves every t.
 */
import type { Ops } from '@dif-fusion/nn';
import type { DiffusionLoss } from './options';
import {
  type ChainCoefficients,
  learnedRange,
  type MeanType,
  modelMeanCoefs,
} from './parameterisation';

/**
 * q(x_t | x_0): x_t = level * x0 + sqrt(1 - level^2) * noise. `level` is one number for the
 * batch or a per-sample value `[N, 1]`.
 */
export function qSample<T>(ops: Ops<T>, xStart: T, level: number | T, noise: T): T {
  if (typeof level === 'number')
    return ops.axpby(level, xStart, Math.sqrt(1 - level * level), noise);
  const sigma = ops.sqrt(ops.addScalar(ops.scale(ops.square(level), -1), 1));
  return ops.add(ops.mulSample(xStart, level), ops.mulSample(noise, sigma));
}

/**
 * The names of `lossCoefs`' entries, for chain index i = t - 1: the true posterior mean
 * c1 x_0 + c2 x_t (also x_prev's target), the model mean p x_t + q out (see
 * `modelMeanCoefs`), the model log variance mid + half v, the true log variance lv1, and the
 * weights of the KL (i > 0) and the decoder NLL (i = 0): 1 for the term of this i, 0 for the
 * other.
 */
export const LOSS_COEFS = ['c1', 'c2', 'p', 'q', 'mid', 'half', 'lv1', 'wKl', 'wNll'] as const;
export type LossCoef = (typeof LOSS_COEFS)[number];

/** The `[1, 9]` loss coefficients of time step t (1..T) of a chain for a mean type. */
export function lossCoefs(c: ChainCoefficients, meanType: MeanType, t: number): Float32Array {
  const i = t - 1;
  const [p, q] = modelMeanCoefs(c, meanType, i);
  const r = learnedRange(c, i);
  const v: Record<LossCoef, number> = {
    c1: c.posteriorMeanCoef1[i],
    c2: c.posteriorMeanCoef2[i],
    p,
    q,
    mid: r.mid,
    half: r.half,
    lv1: c.posteriorLogVarianceClipped[i],
    wKl: i > 0 ? 1 : 0,
    wNll: i > 0 ? 0 : 1,
  };
  return Float32Array.from(LOSS_COEFS, (k) => v[k]);
}

/** Whether a loss needs `lossCoefs` (x_prev's target, learned_range's bound). */
export const needsLossCoefs = (meanType: MeanType, learned: boolean): boolean =>
  learned || meanType === 'x_prev';

/** KL(N(m1, exp(lv1)) || N(m2, exp(lv2))) per element (improved-diffusion `normal_kl`). */
export function normalKl<T>(ops: Ops<T>, m1: T, lv1: T, m2: T, lv2: T): T {
  const a = ops.sub(lv2, ops.addScalar(lv1, 1));
  const b = ops.exp(ops.sub(lv1, lv2));
  const c = ops.mul(ops.square(ops.sub(m1, m2)), ops.exp(ops.scale(lv2, -1)));
  return ops.scale(ops.add(ops.add(a, b), c), 0.5);
}

/** Phi(x) ~ 0.5 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) (Page 1977). */
export function approxStandardNormalCdf<T>(ops: Ops<T>, x: T): T {
  const inner = ops.add(x, ops.scale(ops.mul(x, ops.square(x)), 0.044715));
  return ops.scale(ops.addScalar(ops.tanh(ops.scale(inner, Math.sqrt(2 / Math.PI))), 1), 0.5);
}

/**
 * log p(x) of data x in [-1, 1] (quantised to 256 levels) under the discretized Gaussian
 * N(means, exp(2 logScales)): log(Phi((x - m + 1/255) / s) - Phi((x - m - 1/255) / s)), the
 * first bin (x < -0.999) open to -inf, the last (x > 0.999) to +inf, every probability
 * clamped below at 1e-12 (improved-diffusion `discretized_gaussian_log_likelihood`). The
 * three cases are 0/1 masks of x (exactly one is 1 per element), so every realisation runs
 * the same element-wise ops.
 */
export function discretizedGaussianLogLikelihood<T>(ops: Ops<T>, x: T, means: T, logScales: T): T {
  const centered = ops.sub(x, means);
  const invStdv = ops.exp(ops.scale(logScales, -1));
  const cdfPlus = approxStandardNormalCdf(ops, ops.mul(invStdv, ops.addScalar(centered, 1 / 255)));
  const cdfMin = approxStandardNormalCdf(ops, ops.mul(invStdv, ops.addScalar(centered, -1 / 255)));
  const logCdfPlus = ops.log(ops.maxScalar(cdfPlus, 1e-12));
  const logOneMinusCdfMin = ops.log(ops.maxScalar(ops.addScalar(ops.scale(cdfMin, -1), 1), 1e-12));
  const logDelta = ops.log(ops.maxScalar(ops.sub(cdfPlus, cdfMin), 1e-12));
  const lo = ops.compareScalar(x, 'less', -0.999);
  const hi = ops.compareScalar(x, 'greater', 0.999);
  const inner = ops.addScalar(ops.scale(ops.add(lo, hi), -1), 1);
  return ops.add(
    ops.add(ops.mul(lo, logCdfPlus), ops.mul(hi, logOneMinusCdfMin)),
    ops.mul(inner, logDelta),
  );
}

/** What {@link vbTerm} reads. */
export interface VbInputs<T> {
  x0: T;
  /** The true posterior mean c1 x_0 + c2 x_t. */
  trueMean: T;
  /** The model's mean (from the stop-gradient output). */
  modelMean: T;
  /** The model's log variance mid + half v. */
  modelLogVariance: T;
  /** One of `lossCoefs`' entries broadcast to x0's shape. */
  coef: (name: LossCoef) => T;
}

/**
 * The per-element bound term in nats: wKl KL(q || p) + wNll (-log p(x_0 | x_1)), the weights
 * one-hot by i (sum it and divide by denom ln 2 for vb).
 */
export function vbTerm<T>(ops: Ops<T>, v: VbInputs<T>): T {
  const kl = normalKl(ops, v.trueMean, v.coef('lv1'), v.modelMean, v.modelLogVariance);
  const nll = ops.scale(
    discretizedGaussianLogLikelihood(ops, v.x0, v.modelMean, ops.scale(v.modelLogVariance, 0.5)),
    -1,
  );
  return ops.add(ops.mul(v.coef('wKl'), kl), ops.mul(v.coef('wNll'), nll));
}

/** What a training loss evaluation reads (one t per batch). */
export interface PLossArgs<T> {
  xStart: T;
  /** Standard normal noise, the shape of xStart. */
  noise: T;
  /** One continuous level per sample, `[N, 1]`. */
  level: T;
  /** The denoiser on (x_t, level) (a conditional model concatenates its condition inside). */
  denoise: (xNoisy: T, level: T) => T;
  loss: DiffusionLoss;
  meanType: MeanType;
  /** The data's channels C (learned_range: the denoiser outputs 2C, [mean output, v]). */
  channels: number;
  /** The loss's divisor (the element count of the whole batch). */
  denom: number;
  /** `lossCoefs` `[1, 9]` of the batch's t (see `needsLossCoefs`). */
  coefs?: T;
  /** learned_range: lambda T, the weight of vb in the loss; absent: a fixed variance. */
  vbWeight?: number;
}

/** The terms of a training loss: the loss, and (learned_range) the bound term vb in bits. */
export interface PLossTerms<T> {
  loss: T;
  vb?: T;
}

/** SR3's p_losses with the mean type's target and the learned-variance bound (see above). */
export function pLossTerms<T>(ops: Ops<T>, a: PLossArgs<T>): PLossTerms<T> {
  const learned = a.vbWeight !== undefined;
  if (needsLossCoefs(a.meanType, learned) && !a.coefs)
    throw new Error(`pLosses: mean_type ${a.meanType} / learned_range needs the loss coefficients`);
  const coefs = a.coefs as T;
  const coef = (name: LossCoef) => {
    const i = LOSS_COEFS.indexOf(name);
    return ops.broadcastLike(ops.sliceFeatures(coefs, i, i + 1), a.xStart);
  };
  const xNoisy = qSample(ops, a.xStart, a.level, a.noise);
  const raw = a.denoise(xNoisy, a.level);
  const out = learned ? ops.sliceChannels(raw, 0, a.channels) : raw;
  const posteriorMean = () => ops.add(ops.mul(coef('c1'), a.xStart), ops.mul(coef('c2'), xNoisy));
  const target =
    a.meanType === 'epsilon' ? a.noise : a.meanType === 'x_start' ? a.xStart : posteriorMean();
  const d = ops.sub(target, out);
  const per = a.loss === 'l1' ? ops.abs(d) : ops.square(d);
  const simple = ops.scale(ops.sumAll(per), 1 / a.denom);
  if (!learned) return { loss: simple };
  const v = ops.sliceChannels(raw, a.channels, 2 * a.channels);
  const term = vbTerm(ops, {
    x0: a.xStart,
    trueMean: posteriorMean(),
    modelMean: ops.add(ops.mul(coef('p'), xNoisy), ops.mul(coef('q'), ops.stopGradient(out))),
    modelLogVariance: ops.add(ops.mul(v, coef('half')), coef('mid')),
    coef,
  });
  const vb = ops.scale(ops.sumAll(term), 1 / (a.denom * Math.LN2));
  return { loss: ops.add(simple, ops.scale(vb, a.vbWeight!)), vb };
}

/** {@link pLossTerms}' loss. */
export function pLosses<T>(ops: Ops<T>, a: PLossArgs<T>): T {
  return pLossTerms(ops, a).loss;
}
