/**
 * The variational-bound term of `var_type: learned_range` (Nichol & Dhariwal 2021,
 * "Improved Denoising Diffusion Probabilistic Models", sec. 3.1), on TensorFlow.js tensors.
 * The ONNX training graph writes the same maths on GradOps (@dif-fusion/onnx/train
 * ddpm-graph.ts); tests hold both to the values of a PyTorch reference
 * (scripts/learned-variance-reference.py).
 *
 * With chain index i = t - 1, the true posterior q(x_{i-1} | x_i, x_0) = N(m1, exp(lv1)),
 * the model's p(x_{i-1} | x_i) = N(m2, exp(lv2)), lv2 = mid_i + half_i v (see learnedRange):
 * - i > 0: L_i = KL(q || p) = 0.5 (-1 + lv2 - lv1 + exp(lv1 - lv2) + (m1 - m2)^2 exp(-lv2))
 * - i = 0: L_0 = -log p(x_0 | x_1), the discretized Gaussian decoder (Ho et al. eq. 13) with
 *   bins of width 2/255 and the edge bins open, Phi approximated as
 *   0.5 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
 * vb = mean over the elements of L_i / ln 2 (bits per dimension). The hybrid loss is
 * L_simple + lambda T vb (eq. 16; improved-diffusion's vb * T / 1000 is lambda = 0.001).
 * m2 comes from the mean output under a stop-gradient, so vb trains only v.
 */
import * as tf from '@tensorflow/tfjs-core';

/** KL(N(m1, exp(lv1)) || N(m2, exp(lv2))) per element (improved-diffusion `normal_kl`). */
export function normalKl(
  m1: tf.Tensor,
  lv1: tf.Tensor | number,
  m2: tf.Tensor,
  lv2: tf.Tensor | number,
): tf.Tensor {
  return tf.tidy(() => {
    const a = tf.sub(lv2, lv1);
    const b = tf.exp(tf.sub(lv1, lv2));
    const c = tf.mul(tf.square(tf.sub(m1, m2)), tf.exp(tf.neg(lv2)));
    return tf.mul(0.5, tf.add(tf.add(tf.add(-1, a), b), c));
  });
}

/** Phi(x) ~ 0.5 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) (Page 1977). */
export function approxStandardNormalCdf(x: tf.Tensor): tf.Tensor {
  return tf.tidy(() => {
    const inner = tf.mul(
      Math.sqrt(2 / Math.PI),
      tf.add(x, tf.mul(0.044715, tf.mul(x, tf.square(x)))),
    );
    return tf.mul(0.5, tf.add(1, tf.tanh(inner)));
  });
}

/**
 * log p(x) of data x in [-1, 1] (quantised to 256 levels) under the discretized Gaussian
 * N(means, exp(2 logScales)): log(Phi((x - m + 1/255) / s) - Phi((x - m - 1/255) / s)), the
 * first bin (x < -0.999) open to -inf, the last (x > 0.999) to +inf, every probability
 * clamped below at 1e-12 (improved-diffusion `discretized_gaussian_log_likelihood`).
 */
export function discretizedGaussianLogLikelihood(
  x: tf.Tensor,
  means: tf.Tensor,
  logScales: tf.Tensor,
): tf.Tensor {
  return tf.tidy(() => {
    const centered = tf.sub(x, means);
    const invStdv = tf.exp(tf.neg(logScales));
    const cdfPlus = approxStandardNormalCdf(tf.mul(invStdv, tf.add(centered, 1 / 255)));
    const cdfMin = approxStandardNormalCdf(tf.mul(invStdv, tf.sub(centered, 1 / 255)));
    const logCdfPlus = tf.log(tf.maximum(cdfPlus, 1e-12));
    const logOneMinusCdfMin = tf.log(tf.maximum(tf.sub(1, cdfMin), 1e-12));
    const logDelta = tf.log(tf.maximum(tf.sub(cdfPlus, cdfMin), 1e-12));
    return tf.where(
      tf.less(x, -0.999),
      logCdfPlus,
      tf.where(tf.greater(x, 0.999), logOneMinusCdfMin, logDelta),
    );
  });
}

/** y = x forward, no gradient backward (PyTorch's `detach`). */
export const stopGradient: (x: tf.Tensor) => tf.Tensor = tf.customGrad(
  (...args: (tf.Tensor | tf.GradSaveFunc)[]) => ({
    value: tf.clone(args[0] as tf.Tensor),
    gradFunc: (dy: tf.Tensor) => tf.zerosLike(dy),
  }),
) as (x: tf.Tensor) => tf.Tensor;

/** What {@link vbTerm} reads at one chain index i (one time step per batch). */
export interface VbInputs {
  /** Chain index i = t - 1 (0: the decoder term). */
  i: number;
  x0: tf.Tensor;
  /** The true posterior mean c1_i x_0 + c2_i x_i. */
  trueMean: tf.Tensor;
  /** log v~_i of the true posterior (used for i > 0). */
  trueLogVariance: number;
  /** The model's mean (from the stop-gradient output). */
  modelMean: tf.Tensor;
  /** The model's log variance mid_i + half_i v. */
  modelLogVariance: tf.Tensor;
}

/**
 * The per-element bound term in bits: KL(q || p) / ln 2 for i > 0, the decoder's
 * -log p(x_0 | x_1) / ln 2 for i = 0 (sum it and divide by the element count for vb).
 */
export function vbTerm(v: VbInputs): tf.Tensor {
  return tf.tidy(() => {
    const nats =
      v.i > 0
        ? normalKl(v.trueMean, v.trueLogVariance, v.modelMean, v.modelLogVariance)
        : tf.neg(
            discretizedGaussianLogLikelihood(v.x0, v.modelMean, tf.mul(0.5, v.modelLogVariance)),
          );
    return tf.div(nats, Math.LN2);
  });
}
