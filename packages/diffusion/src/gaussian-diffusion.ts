/**
 * Gaussian diffusion over the SR3 denoiser (Ho et al. 2020, "Denoising Diffusion
 * Probabilistic Models"; Saharia et al., SR3's continuous noise level), as Dif-Fusion's
 * `model/sr3_modules/diffusion.py`. Tensors here are TensorFlow.js, NHWC (the TfOps
 * layout); the schedule arrays come from the pure @dif-fusion/schedules.
 */
import {
  deriveSeed,
  fusionNoise,
  imageNoise,
  type NoiseSchedule,
  Rng,
  type StrideMethod,
  stridedTimesteps,
} from '@dif-fusion/schedules';
import type { TfOps } from '@dif-fusion/tfjs';

/** The fusion noise for a seed (defined in @dif-fusion/schedules, beside Rng). */
export { fusionNoise, imageNoise };

import type { DenoiserNet } from '@dif-fusion/unet';
import * as tf from '@tensorflow/tfjs-core';

import { lossCoefs, needsLossCoefs, pLossTerms, qSample } from './losses';
import {
  DEFAULT_DIFFUSION_LOSS,
  DEFAULT_VLB_WEIGHT,
  type DiffusionConfig,
  type DiffusionLoss,
  type SamplerName,
  trainingLevels,
} from './options';
import {
  type ChainCoefficients,
  chainCoefficients,
  DEFAULT_MEAN_TYPE,
  DEFAULT_VAR_TYPE,
  type FixedVarType,
  learnsVariance,
  type MeanType,
  type VarType,
} from './parameterisation';
import {
  addStepNoise,
  ddimMean,
  ddimSigma,
  guided,
  learnedSd,
  modelOutputParts,
  posteriorMean,
  startAndMean,
} from './sampling';
import { stepFeatures } from './step-features';
import { tfMaths } from './tf-maths';

export interface SampleOptions {
  /**
   * Network passes: all T (default) walks the full chain; fewer keep `steps` timesteps
   * (`stride`, default linspace) and respace the betas so alphas_cumprod match at the kept
   * steps (improved-diffusion's respacing).
   */
  steps?: number;
  stride?: StrideMethod;
  /** `ancestral` (default, Ho et al. Algorithm 2) or `ddim` (Song et al. eq. 12). */
  sampler?: SamplerName;
  /** DDIM's eta: 0 (default) deterministic after x_T, 1 the ancestral variance. */
  eta?: number;
  /** Clip the predicted x_0 to [-1, 1] (default true). */
  clip?: boolean;
  /** The condition image (conditional models), NHWC with the batch of `shape`. */
  condition?: tf.Tensor;
  /**
   * Classifier-free guidance weight w (Ho & Salimans 2022, eq. 6):
   * out = (1 + w) f(x, c) - w f(x, 0), the zero condition being what condition dropout
   * trained. Default 0 (one pass, the conditional output).
   */
  guidance?: number;
  /** Called after each network step with (done, total). */
  onStep?: (done: number, total: number) => void;
  /**
   * Called with each state of the chain: x_T first (`i` = the number of steps), then the
   * state after the step at index `i` (steps - 1 down to 0, the last one being the result).
   * The tensor is disposed afterwards: read it synchronously. The official sampler's
   * `continous` output keeps x_T and the states whose index is a multiple of
   * `intermediateInterval` (@dif-fusion/diffusion).
   */
  onState?: (i: number, x: tf.Tensor) => void;
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

/** The random inputs of a loss evaluation (see @dif-fusion/schedules drawDdpmStep). */
export interface LossDraws {
  /** One continuous noise level per sample. */
  levels: Float32Array;
  /** Standard normal noise, NHWC like x0. */
  noise: tf.Tensor;
  /** The batch's time step 1..T (needed by mean_type `x_prev` and var_type `learned_range`). */
  t?: number;
  /** The condition image (conditional mode), NHWC; zeros where condition dropout dropped it. */
  condition?: tf.Tensor;
}

/** The terms of a training loss: the loss, and the bound term vb in bits (learned_range). */
export interface LossTerms {
  loss: tf.Scalar;
  /** vb (mean over the elements, / ln 2) before its weight lambda T; learned_range only. */
  vb?: tf.Scalar;
}

export class GaussianDiffusion {
  readonly loss: DiffusionLoss;
  readonly meanType: MeanType;
  readonly varType: VarType;
  readonly vlbWeight: number;
  readonly conditional: boolean;
  private fullChain: ChainCoefficients | null = null;

  constructor(
    readonly denoiser: DenoiserNet,
    readonly schedule: NoiseSchedule,
    config: DiffusionConfig = {},
  ) {
    this.loss = config.loss ?? DEFAULT_DIFFUSION_LOSS;
    this.meanType = config.mean_type ?? DEFAULT_MEAN_TYPE;
    this.varType = config.var_type ?? DEFAULT_VAR_TYPE;
    this.vlbWeight = config.vlb_weight ?? DEFAULT_VLB_WEIGHT;
    this.conditional = config.conditional ?? false;
  }

  get numTimesteps(): number {
    return this.schedule.numTimesteps;
  }

  /** x_t = level * x0 + sqrt(1 - level^2) * noise, levels `[N, 1]` (one per sample; see ./losses.ts). */
  qSample(xStart: tf.Tensor, levels: tf.Tensor, noise: tf.Tensor): tf.Tensor {
    return tf.tidy(() => qSample(tfMaths, xStart, levels, noise));
  }

  /** The denoiser on x (and, conditional, the condition concatenated before it). */
  denoise(ops: TfOps, x: tf.Tensor, level: tf.Tensor, condition?: tf.Tensor): tf.Tensor {
    if (!this.conditional) return this.denoiser.forward(ops, x, level);
    if (!condition) throw new Error('a conditional diffusion needs a condition image');
    return this.denoiser.forward(ops, tf.concat([condition, x], 3), level);
  }

  /**
   * The training loss (SR3 p_losses) for pre-drawn levels and noise (drawDdpmStep: one t
   * per batch, one continuous level per sample uniform in [sqrt_acp_prev[t], sqrt_acp_prev[t-1]),
   * noise ~ N(0, I)): sum(|target - f_theta(x_t, level)|) (l1) or of its square (l2), divided
   * by `denom` (default the element count of `xStart`; a data-parallel shard passes the whole
   * batch's, so the shards' losses and gradients add up to the batch's). The target is the
   * mean type's (pytorch-ddpm's trainer): eps, x_0, or the posterior mean
   * c1_{t-1} x_0 + c2_{t-1} x_t (see ./losses.ts, the one definition). Records no tidy of its own: call it
   * inside `tf.variableGrads` / `tf.tidy`.
   */
  pLosses(ops: TfOps, xStart: tf.Tensor, draws: LossDraws, denom = xStart.size): tf.Scalar {
    return this.pLossTerms(ops, xStart, draws, denom).loss;
  }

  /**
   * {@link pLosses} with its terms. `learned_range` (Improved DDPM eq. 16): the levels are
   * the discrete sqrt(a_{t-1}) (see {@link trainingLevels}), the denoiser's output splits into
   * the mean output (first C channels, trained by L_simple above) and v (last C), and
   * loss = L_simple + lambda T vb with vb = sum(L_{t-1}) / (denom ln 2) (see ./losses.ts),
   * the model mean taken from the mean output under a stop-gradient.
   */
  pLossTerms(ops: TfOps, xStart: tf.Tensor, draws: LossDraws, denom = xStart.size): LossTerms {
    const n = xStart.shape[0];
    const learned = learnsVariance(this.varType);
    const t = draws.t;
    if (needsLossCoefs(this.meanType, learned) && t === undefined)
      throw new Error(
        `pLosses: ${learned ? 'var_type learned_range' : `mean_type ${this.meanType}`} needs the draws of t`,
      );
    const levels = learned
      ? trainingLevels(this.schedule, this.varType, t!, draws.levels)
      : draws.levels;
    const r = pLossTerms(ops, {
      xStart,
      noise: draws.noise,
      level: tf.tensor2d(levels, [n, 1]),
      denoise: (x, level) => this.denoise(ops, x, level, draws.condition),
      loss: this.loss,
      meanType: this.meanType,
      channels: xStart.shape[3] as number,
      denom,
      coefs:
        t === undefined
          ? undefined
          : tf.tensor2d(lossCoefs(this.chain(), this.meanType, t), [1, 9]),
      vbWeight: learned ? this.vlbWeight * this.numTimesteps : undefined,
    });
    return r as LossTerms;
  }

  /** x0 = sqrt(1/acp[t]) x_t - sqrt(1/acp[t] - 1) eps (t an index 0..T-1, eq. 11 inverted). */
  predictStartFromNoise(xT: tf.Tensor, t: number, noise: tf.Tensor): tf.Tensor {
    return tf.tidy(
      () => startAndMean(tfMaths, this.chain(), 'epsilon', t, xT, noise, false).xStart,
    );
  }

  /** x0 = x_prev / c1[t] - (c2[t] / c1[t]) x_t (t an index 0..T-1; pytorch-ddpm's xprev). */
  predictStartFromPrev(xT: tf.Tensor, t: number, xPrev: tf.Tensor): tf.Tensor {
    return tf.tidy(() => startAndMean(tfMaths, this.chain(), 'x_prev', t, xT, xPrev, false).xStart);
  }

  /** Posterior q(x_{t-1} | x_t, x_0) (eq. 6-7): mean and clipped log variance. */
  qPosterior(
    xStart: tf.Tensor,
    xT: tf.Tensor,
    t: number,
  ): { mean: tf.Tensor; logVariance: number } {
    const c = this.chain();
    const mean = tf.tidy(() => posteriorMean(tfMaths, c, t, xStart, xT));
    return { mean, logVariance: c.logVariance.fixedsmall[t] };
  }

  /** The full schedule's chain coefficients (cached). */
  chain(): ChainCoefficients {
    this.fullChain ??= chainCoefficients(this.schedule.betas);
    return this.fullChain;
  }

  /**
   * p(x_{t-1} | x_t) on the full chain (t an index 0..T-1): x_0 predicted per mean type
   * (optionally clipped to [-1, 1]), the mean q_posterior(x_0, x_t) (x_prev: the output
   * itself, as pytorch-ddpm) and the var type's log variance.
   */
  pMeanVariance(
    ops: TfOps,
    x: tf.Tensor,
    t: number,
    clipDenoised = true,
    condition?: tf.Tensor,
  ): { mean: tf.Tensor; logVariance: number | tf.Tensor; xStart: tf.Tensor } {
    const c = this.chain();
    const level = Math.sqrt(c.alphasCumprod[t]);
    return tf.tidy(() => {
      const [out, logVariance] = this.splitOutput(
        c,
        t,
        this.denoise(ops, x, tf.fill([x.shape[0], 1], level), condition),
      );
      const { xStart, mean } = this.fromOutput(c, t, x, out, clipDenoised);
      return { mean, logVariance, xStart };
    }) as { mean: tf.Tensor; logVariance: number | tf.Tensor; xStart: tf.Tensor };
  }

  /**
   * The denoiser's output at chain index i as [mean output, log variance]: the fixed var
   * types' number, or learned_range's per-element mid_i + half_i v from the last C channels.
   */
  private splitOutput(
    c: ChainCoefficients,
    i: number,
    raw: tf.Tensor,
  ): [tf.Tensor, number | tf.Tensor] {
    // ./sampling.ts: the one definition (learned_range: the UNet outputs 2 C channels)
    const channels = (raw.shape as number[])[3] / (learnsVariance(this.varType) ? 2 : 1); // NHWC
    const { out, logVariance } = modelOutputParts(tfMaths, c, this.varType, i, raw, channels);
    return [out, logVariance];
  }

  /** x_0 and the posterior mean from the denoiser's output at chain index i. */
  private fromOutput(
    c: ChainCoefficients,
    i: number,
    x: tf.Tensor,
    out: tf.Tensor,
    clip: boolean,
  ): { xStart: tf.Tensor; mean: tf.Tensor } {
    return startAndMean(tfMaths, c, this.meanType, i, x, out, clip);
  }

  /** One ancestral step on the full chain: mean + exp(0.5 log var) z, no noise at t = 0. */
  pSample(ops: TfOps, x: tf.Tensor, t: number, rng: Rng, clipDenoised = true): tf.Tensor {
    const { mean, logVariance, xStart } = this.pMeanVariance(ops, x, t, clipDenoised);
    xStart.dispose();
    if (t === 0) {
      if (typeof logVariance !== 'number') logVariance.dispose();
      return mean;
    }
    const out = tf.tidy(() => {
      const sd =
        typeof logVariance === 'number'
          ? Math.exp(0.5 * logVariance)
          : learnedSd(tfMaths, logVariance);
      return addStepNoise(tfMaths, mean, tf.tensor(rng.normalArray(x.size), x.shape), sd);
    });
    tf.dispose([mean, logVariance as tf.Tensor]);
    return out;
  }

  /** The full ancestral sampling loop (T network passes): `shape` NHWC, returns x_0. */
  sample(ops: TfOps, shape: [number, number, number, number], rng: Rng): tf.Tensor {
    return this.run(ops, shape, rng);
  }

  /** Ancestral sampling over `steps` respaced timesteps (see {@link run}), for previews. */
  sampleStrided(
    ops: TfOps,
    shape: [number, number, number, number],
    steps: number,
    rng: Rng,
  ): tf.Tensor {
    return this.run(ops, shape, rng, { steps });
  }

  /**
   * The samplers: x_T ~ N(0, I) from `rng`, then for each kept step i (descending), the
   * denoiser at level sqrt(a_i) (SR3's level) and
   * - `ancestral` (Ho et al. Algorithm 2): x_{i-1} = mu(x_0, x_i) + exp(0.5 log var_i) z,
   *   mean and variance per mean_type / var_type (learned_range: per element,
   *   log var_i = mid_i + half_i v from the chain's own betas, so a respaced chain
   *   interpolates between its respaced beta_i and v~_i), no noise at i = 0;
   * - `ddim` (Song et al. 2021, eq. 12): x_{i-1} = sqrt(a_{i-1}) x_0
   *   + sqrt(1 - a_{i-1} - s_i^2) eps + s_i z, with
   *   s_i = eta sqrt((1 - a_{i-1}) / (1 - a_i)) sqrt(1 - a_i / a_{i-1}) and eps re-derived
   *   from the (clipped) x_0; z is drawn only where s_i > 0, so eta = 0 is deterministic given x_T.
   *   DDIM ignores a learned variance (it reads the mean output only).
   * Fewer `steps` than T respace the chain (the betas between kept steps merged so
   * alphas_cumprod match). Returns x_0 NHWC.
   */
  run(
    ops: TfOps,
    shape: [number, number, number, number],
    rng: Rng,
    options: SampleOptions = {},
  ): tf.Tensor {
    const T = this.numTimesteps;
    const steps = Math.min(options.steps ?? T, T);
    const c =
      steps >= T
        ? this.chain()
        : chainCoefficients(
            this.schedule.respacedBetas(stridedTimesteps(T, steps, options.stride)),
          );
    const sampler = options.sampler ?? 'ancestral';
    const eta = options.eta ?? 0;
    const clip = options.clip ?? true;
    const w = options.guidance ?? 0;
    const n = shape[0];
    let x = tf.tensor(rng.normalArray(shape.reduce((a, b) => a * b, 1)), shape);
    options.onState?.(c.betas.length, x);
    for (let i = c.betas.length - 1; i >= 0; i--) {
      const a = c.alphasCumprod[i];
      const learned = sampler === 'ancestral' && learnsVariance(this.varType);
      const sigma =
        sampler === 'ddim'
          ? ddimSigma(c, i, eta)
          : i > 0
            ? learned
              ? 1 // the per-element sigma comes from the network below
              : Math.exp(0.5 * c.logVariance[this.varType as FixedVarType][i])
            : 0;
      const z = sigma > 0 ? rng.normalArray(x.size) : null;
      const next = tf.tidy(() => {
        const level = tf.fill([n, 1], Math.sqrt(a));
        // learned_range: guidance mixes the mean outputs; v is the conditional pass's.
        const [cond, logVariance] = this.splitOutput(
          c,
          i,
          this.denoise(ops, x, level, options.condition),
        );
        let out = cond;
        if (w !== 0 && options.condition) {
          const [uncond] = this.splitOutput(
            c,
            i,
            this.denoise(ops, x, level, tf.zerosLike(options.condition)),
          );
          out = guided(tfMaths, cond, uncond, w);
        }
        const { xStart, mean } = this.fromOutput(c, i, x, out, clip);
        const y = sampler === 'ddim' ? ddimMean(tfMaths, c, i, x, xStart, sigma) : mean;
        if (!z) return y;
        const sd =
          learned && typeof logVariance !== 'number' ? learnedSd(tfMaths, logVariance) : sigma;
        return addStepNoise(tfMaths, y, tf.tensor(z, x.shape), sd);
      });
      x.dispose();
      x = next;
      options.onState?.(i, x);
      options.onStep?.(c.betas.length - i, c.betas.length);
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
   * `imageNoise`, the fusion noise of the ONNX runtime and `dif-fuse`; midpoint levels). x is
   * NHWC `[N, H, W, 4]`.
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
      const all = imageNoise(options.seed ?? 0, {
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
    // the one feature sequence (./step-features.ts), one UNet pass per step
    const fds = stepFeatures(ops, {
      x,
      levels,
      noise,
      features: (xNoisy, level) =>
        this.denoiser.features(ops, xNoisy, level, { minDecoderIndex: options.minDecoderIndex }).fd,
      stepLevel: (k) => tf.fill([n, 1], levels[k]),
    });
    const out: StepFeatures[] = timesteps.map((t, k) => ({
      t,
      level: levels[k],
      fd: fds[k] as tf.Tensor[],
    }));
    if (!options.noise) tf.dispose(noise);
    return out;
  }
}
