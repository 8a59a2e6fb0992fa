/**
 * Gaussian diffusion over the SR3 denoiser (Ho et al. 2020, "Denoising Diffusion
 * Probabilistic Models"; Saharia et al., SR3's continuous noise level), as Dif-Fusion's
 * `model/sr3_modules/diffusion.py`. Tensors here are TensorFlow.js, NHWC (the TfOps
 * layout); the schedule arrays come from the pure @dif-fusion/schedules.
 */
import type { Ops, TfOps } from '@dif-fusion/nn';
import {
  deriveSeed,
  fusionNoise,
  type NoiseSchedule,
  Rng,
  stridedTimesteps,
} from '@dif-fusion/schedules';

/** The fusion noise for a seed (defined in @dif-fusion/schedules, beside Rng). */
export { fusionNoise };

import type { UNet } from '@dif-fusion/unet';
import * as tf from '@tensorflow/tfjs-core';

export type DiffusionLoss = 'l1' | 'l2';

/** The loss of the reference configs (`model.diffusion.loss: "l2"`) and dif-train's default. */
export const DEFAULT_DIFFUSION_LOSS: DiffusionLoss = 'l2';

export interface GaussianDiffusionOptions {
  /**
   * Loss between the true and predicted noise (config `model.diffusion.loss`; default
   * {@link DEFAULT_DIFFUSION_LOSS}, the reference configs' l2).
   */
  loss?: DiffusionLoss;
}

/** Noise levels and noise per time step as the fusion stage feeds them (see `features`). */
export interface FeatureOptions {
  /** Seed of the deterministic noise (default 0); ignored when `noise` is given. */
  seed?: number;
  /** Explicit noise per time step, NHWC like x. */
  noise?: tf.Tensor[];
  /** Explicit noise level per time step (default: the midpoint of the step's interval). */
  levels?: number[];
  /** Draw each level uniformly in the step's interval from the seed, as the reference does. */
  random?: boolean;
  /** Stop the UNet's up path at this reversed decoder index (see UNet.features). */
  minDecoderIndex?: number;
}

export interface StepFeatures {
  t: number;
  level: number;
  /** Reversed decoder features (fd[0] = full resolution); entries below minDecoderIndex undefined. */
  fd: tf.Tensor[];
}

/**
 * q(x_t | x_0) with SR3's continuous level (eq. 4 of Ho et al. with sqrt(alpha_bar) = level):
 * x_t = level * x0 + sqrt(1 - level^2) * noise. Written on Ops so the ONNX export reuses it.
 */
export function qSampleOps<T>(ops: Ops<T>, xStart: T, level: number, noise: T): T {
  return ops.axpby(level, xStart, Math.sqrt(1 - level * level), noise);
}

/**
 * q(x_t | x_0) on tensors, one level per sample: x_t = level * x0 + sqrt(1 - level^2) * noise
 * (eq. 4 of Ho et al. with SR3's continuous level), `levels` `[N, 1]`, x0 and noise NHWC.
 */
export function qSample(xStart: tf.Tensor, levels: tf.Tensor, noise: tf.Tensor): tf.Tensor {
  return tf.tidy(() => {
    const l = tf.reshape(levels, [-1, 1, 1, 1]);
    return tf.add(tf.mul(xStart, l), tf.mul(noise, tf.sqrt(tf.sub(1, tf.square(l)))));
  });
}

/** The random inputs of a loss evaluation (see @dif-fusion/schedules drawDdpmStep). */
export interface LossDraws {
  /** One continuous noise level per sample. */
  levels: Float32Array;
  /** Standard normal noise, NHWC like x0. */
  noise: tf.Tensor;
}

export class GaussianDiffusion {
  readonly loss: DiffusionLoss;

  constructor(
    readonly denoiser: UNet,
    readonly schedule: NoiseSchedule,
    options: GaussianDiffusionOptions = {},
  ) {
    this.loss = options.loss ?? DEFAULT_DIFFUSION_LOSS;
  }

  get numTimesteps(): number {
    return this.schedule.numTimesteps;
  }

  /** x_t = level * x0 + sqrt(1 - level^2) * noise, levels `[N, 1]` (one per sample). */
  qSample(xStart: tf.Tensor, levels: tf.Tensor, noise: tf.Tensor): tf.Tensor {
    return qSample(xStart, levels, noise);
  }

  /**
   * The training loss (SR3 p_losses) for pre-drawn levels and noise (drawDdpmStep: one t
   * per batch, one continuous level per sample uniform in [sqrt_acp_prev[t], sqrt_acp_prev[t-1]),
   * noise ~ N(0, I)): sum(|eps - eps_theta(x_t, level)|) (l1) or of its square (l2), divided
   * by `denom` (default the element count of `xStart`; a data-parallel shard passes the whole
   * batch's, so the shards' losses and gradients add up to the batch's). Records no tidy of
   * its own: call it inside `tf.variableGrads` / `tf.tidy`.
   */
  pLosses(ops: TfOps, xStart: tf.Tensor, draws: LossDraws, denom = xStart.size): tf.Scalar {
    const n = xStart.shape[0];
    const level = tf.tensor2d(draws.levels, [n, 1]);
    const xNoisy = qSample(xStart, level, draws.noise);
    const eps = this.denoiser.forward(ops, xNoisy, level);
    const diff = tf.sub(draws.noise, eps);
    const per = this.loss === 'l1' ? tf.abs(diff) : tf.square(diff);
    return tf.div(tf.sum(per), denom) as tf.Scalar;
  }

  /** x0 = sqrt(1/acp[t]) x_t - sqrt(1/acp[t] - 1) eps (t an index 0..T-1, eq. 11 inverted). */
  predictStartFromNoise(xT: tf.Tensor, t: number, noise: tf.Tensor): tf.Tensor {
    const s = this.schedule;
    return tf.tidy(() =>
      tf.sub(tf.mul(xT, s.sqrtRecipAlphasCumprod[t]), tf.mul(noise, s.sqrtRecipm1AlphasCumprod[t])),
    );
  }

  /** Posterior q(x_{t-1} | x_t, x_0) (eq. 6-7): mean and clipped log variance. */
  qPosterior(
    xStart: tf.Tensor,
    xT: tf.Tensor,
    t: number,
  ): { mean: tf.Tensor; logVariance: number } {
    const s = this.schedule;
    const mean = tf.tidy(() =>
      tf.add(tf.mul(xStart, s.posteriorMeanCoef1[t]), tf.mul(xT, s.posteriorMeanCoef2[t])),
    );
    return { mean, logVariance: s.posteriorLogVarianceClipped[t] };
  }

  /** p(x_{t-1} | x_t): x0 predicted at level sqrt(acp[t]) and optionally clipped to [-1, 1]. */
  pMeanVariance(
    ops: TfOps,
    x: tf.Tensor,
    t: number,
    clipDenoised = true,
  ): { mean: tf.Tensor; logVariance: number; xStart: tf.Tensor } {
    const n = x.shape[0];
    const xStart = tf.tidy(() => {
      const level = tf.fill([n, 1], this.schedule.samplingNoiseLevel(t));
      const x0 = this.predictStartFromNoise(x, t, this.denoiser.forward(ops, x, level));
      return clipDenoised ? tf.clipByValue(x0, -1, 1) : x0;
    });
    const { mean, logVariance } = this.qPosterior(xStart, x, t);
    return { mean, logVariance, xStart };
  }

  /** One ancestral step: mean + exp(0.5 log var) z, no noise at t = 0. */
  pSample(ops: TfOps, x: tf.Tensor, t: number, rng: Rng, clipDenoised = true): tf.Tensor {
    const { mean, logVariance, xStart } = this.pMeanVariance(ops, x, t, clipDenoised);
    xStart.dispose();
    if (t === 0) return mean;
    const out = tf.tidy(() =>
      tf.add(
        mean,
        tf.mul(tf.tensor(rng.normalArray(x.size), x.shape), Math.exp(0.5 * logVariance)),
      ),
    );
    mean.dispose();
    return out;
  }

  /** The full ancestral sampling loop (T network passes): `shape` NHWC, returns x_0. */
  sample(ops: TfOps, shape: [number, number, number, number], rng: Rng): tf.Tensor {
    let x = tf.tensor(rng.normalArray(shape.reduce((a, b) => a * b, 1)), shape);
    for (let t = this.numTimesteps - 1; t >= 0; t--) {
      const next = this.pSample(ops, x, t, rng);
      x.dispose();
      x = next;
    }
    return x;
  }

  /**
   * A strided sampler for previews: `steps` timesteps spread over 0..T-1, the schedule
   * respaced so alphas_cumprod match at the kept steps (improved-diffusion's respacing),
   * the SR3 level sqrt(acp) fed to the UNet, x0 clipped. Returns x_0 NHWC in [-1, 1].
   */
  sampleStrided(
    ops: TfOps,
    shape: [number, number, number, number],
    steps: number,
    rng: Rng,
  ): tf.Tensor {
    const kept = stridedTimesteps(this.numTimesteps, Math.min(steps, this.numTimesteps));
    const betas = this.schedule.respacedBetas(kept);
    const acps: number[] = [];
    let acp = 1;
    for (const b of betas) {
      acp *= 1 - b;
      acps.push(acp);
    }
    const n = shape[0];
    let x = tf.tensor(rng.normalArray(shape.reduce((a, b) => a * b, 1)), shape);
    for (let i = kept.length - 1; i >= 0; i--) {
      const a = acps[i];
      const aPrev = i > 0 ? acps[i - 1] : 1;
      const beta = betas[i];
      const noise = i > 0 ? rng.normalArray(x.size) : null;
      const next = tf.tidy(() => {
        const eps = this.denoiser.forward(ops, x, tf.fill([n, 1], Math.sqrt(a)));
        const x0 = tf.clipByValue(
          tf.sub(tf.mul(x, Math.sqrt(1 / a)), tf.mul(eps, Math.sqrt(1 / a - 1))),
          -1,
          1,
        );
        const mean = tf.add(
          tf.mul(x0, (beta * Math.sqrt(aPrev)) / (1 - a)),
          tf.mul(x, ((1 - aPrev) * Math.sqrt(1 - beta)) / (1 - a)),
        );
        if (!noise) return mean;
        const variance = Math.max((beta * (1 - aPrev)) / (1 - a), 1e-20);
        return tf.add(mean, tf.mul(tf.tensor(noise, x.shape), Math.sqrt(variance)));
      });
      x.dispose();
      x = next;
    }
    return x;
  }

  /** The noise level for time step t (1..T): explicit, random (reference) or the midpoint. */
  featureLevels(timesteps: number[], options: FeatureOptions = {}): number[] {
    if (options.levels) {
      if (options.levels.length !== timesteps.length)
        throw new Error(
          `features: ${options.levels.length} levels for ${timesteps.length} time steps`,
        );
      return options.levels.slice();
    }
    if (options.random) {
      const rng = new Rng(deriveSeed(options.seed ?? 0, 'featureLevels'));
      return timesteps.map((t) => this.schedule.continuousNoiseLevel(t, rng));
    }
    return timesteps.map((t) => this.schedule.midpointNoiseLevel(t));
  }

  /**
   * Features for the fusion stage (Dif-Fusion's feature extraction, no sampling loop): for
   * each time step t, x_t = level x + sqrt(1 - level^2) noise and one UNet pass collecting
   * the reversed decoder features. Deterministic by default (seeded noise, see
   * `fusionNoise`; midpoint levels). x is NHWC `[N, H, W, 4]`.
   */
  features(
    ops: TfOps,
    x: tf.Tensor,
    timesteps: number[],
    options: FeatureOptions = {},
  ): StepFeatures[] {
    const levels = this.featureLevels(timesteps, options);
    const [n, h, w, c] = x.shape;
    let noise = options.noise;
    if (noise && noise.length !== timesteps.length)
      throw new Error(`features: ${noise.length} noise tensors for ${timesteps.length} time steps`);
    if (!noise) {
      const all = fusionNoise(options.seed ?? 0, {
        k: timesteps.length,
        n,
        channels: c,
        height: h,
        width: w,
      });
      const per = n * c * h * w;
      noise = timesteps.map((_, k) =>
        tf.tidy(() =>
          tf.transpose(tf.tensor(all.subarray(k * per, (k + 1) * per), [n, c, h, w]), [0, 2, 3, 1]),
        ),
      );
    }
    const out: StepFeatures[] = [];
    for (const [k, t] of timesteps.entries()) {
      const xNoisy = qSampleOps(ops, x, levels[k], noise[k]);
      const { fd } = this.denoiser.features(ops, xNoisy, tf.fill([n, 1], levels[k]), {
        minDecoderIndex: options.minDecoderIndex,
      });
      out.push({ t, level: levels[k], fd });
    }
    if (!options.noise) tf.dispose(noise);
    return out;
  }
}
