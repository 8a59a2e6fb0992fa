import {
  BETA_SCHEDULES,
  type BetaScheduleName,
  isBetaScheduleName,
  makeBetaSchedule,
} from './beta';
import type { Rng } from './rng';

/**
 * A schedule config exactly as the reference's `model.beta_schedule.train` / `.val`
 * (snake_case, so reference JSON configs load unchanged). `cosine_s` is optional (8e-3).
 */
export interface NoiseScheduleConfig {
  schedule: BetaScheduleName;
  n_timestep: number;
  linear_start: number;
  linear_end: number;
  cosine_s?: number;
}

/** The reference's defaults (config/ddpm_train.json). */
export const DEFAULT_SCHEDULE_CONFIG: Readonly<NoiseScheduleConfig> = Object.freeze({
  schedule: 'cosine',
  n_timestep: 2000,
  linear_start: 1e-6,
  linear_end: 1e-2,
});

/**
 * Names of the derived arrays as the reference registers them (PyTorch buffer names,
 * snake_case) mapped to the camelCase properties of {@link NoiseSchedule}.
 */
export const BUFFER_NAMES = {
  betas: 'betas',
  alphas_cumprod: 'alphasCumprod',
  alphas_cumprod_prev: 'alphasCumprodPrev',
  sqrt_alphas_cumprod: 'sqrtAlphasCumprod',
  sqrt_one_minus_alphas_cumprod: 'sqrtOneMinusAlphasCumprod',
  log_one_minus_alphas_cumprod: 'logOneMinusAlphasCumprod',
  sqrt_recip_alphas_cumprod: 'sqrtRecipAlphasCumprod',
  sqrt_recipm1_alphas_cumprod: 'sqrtRecipm1AlphasCumprod',
  posterior_variance: 'posteriorVariance',
  posterior_log_variance_clipped: 'posteriorLogVarianceClipped',
  posterior_mean_coef1: 'posteriorMeanCoef1',
  posterior_mean_coef2: 'posteriorMeanCoef2',
} as const;

export type BufferName = keyof typeof BUFFER_NAMES;

/** Validate (and normalise) a config read from JSON; throws a one-line RangeError. */
export function parseScheduleConfig(input: unknown): NoiseScheduleConfig {
  if (typeof input !== 'object' || input === null) {
    throw new RangeError('noise schedule config must be an object');
  }
  const c = input as Record<string, unknown>;
  if (!isBetaScheduleName(c.schedule)) {
    throw new RangeError(
      `noise schedule config: unknown schedule '${String(c.schedule)}' (expected one of ${BETA_SCHEDULES.join(', ')})`,
    );
  }
  const num = (key: string, positive: boolean): number => {
    const v = c[key];
    if (typeof v !== 'number' || !Number.isFinite(v) || (positive && v <= 0)) {
      throw new RangeError(
        `noise schedule config: ${key} must be a finite number, got ${String(v)}`,
      );
    }
    return v;
  };
  const n = num('n_timestep', true);
  if (!Number.isInteger(n)) {
    throw new RangeError(`noise schedule config: n_timestep must be an integer, got ${n}`);
  }
  const out: NoiseScheduleConfig = {
    schedule: c.schedule,
    n_timestep: n,
    linear_start: num('linear_start', false),
    linear_end: num('linear_end', false),
  };
  if (c.cosine_s !== undefined) out.cosine_s = num('cosine_s', false);
  return out;
}

/**
 * Every array GaussianDiffusion.set_new_noise_schedule derives from the betas, in float64.
 * Indexing follows the reference: arrays of length T are indexed by t = 0..T-1;
 * `sqrtAlphasCumprodPrev` has length T+1 and starts at 1 (index t = 0..T).
 * The reference stores all but `sqrt_alphas_cumprod_prev` as float32 buffers:
 * {@link NoiseSchedule.float32} gives those.
 *
 * Property ↔ reference name: see {@link BUFFER_NAMES} (plus `alphas` = 1 - betas and
 * `sqrtAlphasCumprodPrev` = `sqrt_alphas_cumprod_prev`).
 */
export class NoiseSchedule {
  readonly config: Readonly<NoiseScheduleConfig>;
  readonly numTimesteps: number;
  readonly betas: Float64Array;
  readonly alphas: Float64Array;
  readonly alphasCumprod: Float64Array;
  readonly alphasCumprodPrev: Float64Array;
  /** sqrt([1, alphas_cumprod...]), length T+1: SR3's continuous noise levels live between entries. */
  readonly sqrtAlphasCumprodPrev: Float64Array;
  readonly sqrtAlphasCumprod: Float64Array;
  readonly sqrtOneMinusAlphasCumprod: Float64Array;
  readonly logOneMinusAlphasCumprod: Float64Array;
  readonly sqrtRecipAlphasCumprod: Float64Array;
  readonly sqrtRecipm1AlphasCumprod: Float64Array;
  readonly posteriorVariance: Float64Array;
  /** log(max(posterior_variance, 1e-20)). */
  readonly posteriorLogVarianceClipped: Float64Array;
  readonly posteriorMeanCoef1: Float64Array;
  readonly posteriorMeanCoef2: Float64Array;

  constructor(config: NoiseScheduleConfig) {
    const cfg = parseScheduleConfig(config);
    this.config = Object.freeze(cfg);
    const betas = makeBetaSchedule(
      cfg.schedule,
      cfg.n_timestep,
      cfg.linear_start,
      cfg.linear_end,
      cfg.cosine_s ?? 8e-3,
    );
    const T = betas.length;
    this.numTimesteps = T;
    this.betas = betas;
    const f = () => new Float64Array(T);
    this.alphas = f();
    this.alphasCumprod = f();
    this.alphasCumprodPrev = f();
    this.sqrtAlphasCumprodPrev = new Float64Array(T + 1);
    this.sqrtAlphasCumprod = f();
    this.sqrtOneMinusAlphasCumprod = f();
    this.logOneMinusAlphasCumprod = f();
    this.sqrtRecipAlphasCumprod = f();
    this.sqrtRecipm1AlphasCumprod = f();
    this.posteriorVariance = f();
    this.posteriorLogVarianceClipped = f();
    this.posteriorMeanCoef1 = f();
    this.posteriorMeanCoef2 = f();

    let cum = 1;
    this.sqrtAlphasCumprodPrev[0] = 1;
    for (let t = 0; t < T; t++) {
      const alpha = 1 - betas[t];
      this.alphas[t] = alpha;
      const prev = cum;
      cum = t === 0 ? alpha : cum * alpha;
      this.alphasCumprod[t] = cum;
      this.alphasCumprodPrev[t] = prev;
      this.sqrtAlphasCumprodPrev[t + 1] = Math.sqrt(cum);
      this.sqrtAlphasCumprod[t] = Math.sqrt(cum);
      this.sqrtOneMinusAlphasCumprod[t] = Math.sqrt(1 - cum);
      this.logOneMinusAlphasCumprod[t] = Math.log(1 - cum);
      this.sqrtRecipAlphasCumprod[t] = Math.sqrt(1 / cum);
      this.sqrtRecipm1AlphasCumprod[t] = Math.sqrt(1 / cum - 1);
      const pv = (betas[t] * (1 - prev)) / (1 - cum);
      this.posteriorVariance[t] = pv;
      this.posteriorLogVarianceClipped[t] = Math.log(Math.max(pv, 1e-20));
      this.posteriorMeanCoef1[t] = (betas[t] * Math.sqrt(prev)) / (1 - cum);
      this.posteriorMeanCoef2[t] = ((1 - prev) * Math.sqrt(alpha)) / (1 - cum);
    }
  }

  /** Build from a config object or its JSON text. */
  static fromJSON(json: string | NoiseScheduleConfig): NoiseSchedule {
    return new NoiseSchedule(
      parseScheduleConfig(typeof json === 'string' ? JSON.parse(json) : json),
    );
  }

  /** The config (JSON.stringify(schedule) gives the snake_case config). */
  toJSON(): NoiseScheduleConfig {
    return { ...this.config };
  }

  /** A derived array by its reference (snake_case) name, as the float32 buffer PyTorch holds. */
  float32(name: BufferName): Float32Array {
    return Float32Array.from(this[BUFFER_NAMES[name]]);
  }

  private checkT(t: number): void {
    if (!Number.isInteger(t) || t < 1 || t > this.numTimesteps) {
      throw new RangeError(`timestep ${t} outside 1..${this.numTimesteps}`);
    }
  }

  /** A training timestep as the reference draws it: uniform integer in 1..T. */
  sampleTimestep(rng: Rng): number {
    return 1 + rng.int(this.numTimesteps);
  }

  /**
   * SR3's continuous noise level (sqrt of a continuous alpha_cumprod) for timestep
   * t in 1..T: uniform between sqrtAlphasCumprodPrev[t-1] and sqrtAlphasCumprodPrev[t]
   * (numpy's uniform(low, high) = low + (high - low) * u).
   */
  continuousNoiseLevel(t: number, rng: Rng): number {
    this.checkT(t);
    return rng.uniformRange(this.sqrtAlphasCumprodPrev[t - 1], this.sqrtAlphasCumprodPrev[t]);
  }

  /** `batch` independent continuous noise levels for timestep t (one per sample). */
  continuousNoiseLevels(t: number, batch: number, rng: Rng): Float32Array {
    this.checkT(t);
    const out = new Float32Array(batch);
    for (let i = 0; i < batch; i++) out[i] = this.continuousNoiseLevel(t, rng);
    return out;
  }

  /** The deterministic variant: midpoint of sqrtAlphasCumprodPrev[t-1] and [t] (t in 1..T). */
  midpointNoiseLevel(t: number): number {
    this.checkT(t);
    return (this.sqrtAlphasCumprodPrev[t - 1] + this.sqrtAlphasCumprodPrev[t]) / 2;
  }

  /**
   * The noise level the reference's sampler feeds the denoiser at step index t in 0..T-1
   * (p_mean_variance: sqrt_alphas_cumprod_prev[t + 1] = sqrt(alphas_cumprod[t])).
   */
  samplingNoiseLevel(t: number): number {
    if (!Number.isInteger(t) || t < 0 || t >= this.numTimesteps) {
      throw new RangeError(`timestep index ${t} outside 0..${this.numTimesteps - 1}`);
    }
    return this.sqrtAlphasCumprodPrev[t + 1];
  }

  /**
   * A schedule over a subsequence of timesteps (fast sampling, as improved-diffusion's
   * respacing): betas'[i] = 1 - acp[t_i] / acp[t_{i-1}] (acp[-1] = 1), so alphas_cumprod of
   * the result equals alphas_cumprod of this schedule at the kept steps.
   */
  respacedBetas(timesteps: ArrayLike<number>): Float64Array {
    const out = new Float64Array(timesteps.length);
    let last = 1;
    let lastT = -1;
    for (let i = 0; i < timesteps.length; i++) {
      const t = timesteps[i];
      if (!Number.isInteger(t) || t <= lastT || t >= this.numTimesteps) {
        throw new RangeError(
          `respaced timesteps must be strictly increasing integers in 0..${this.numTimesteps - 1}`,
        );
      }
      const acp = this.alphasCumprod[t];
      out[i] = 1 - acp / last;
      last = acp;
      lastT = t;
    }
    return out;
  }
}

/** How {@link stridedTimesteps} spreads the kept steps over 0..T-1. */
export type StrideMethod = 'linspace' | 'leading' | 'trailing' | 'quad';

/**
 * A strided subsequence of `steps` timestep indices out of 0..T-1, ascending, without
 * repeats (samplers walk it backwards):
 * (rounding is numpy's, half to even)
 * - `linspace` (default): round(i * (T-1) / (steps-1)), always keeps 0 and T-1
 * - `leading`: 0, k, 2k, ... with k = floor(T / steps) (DDIM's "uniform")
 * - `trailing`: round(T - i T/steps) - 1, reversed (diffusers' "trailing": ends at T-1)
 * - `quad`: floor((i * sqrt(0.8 T) / (steps-1))^2)-like spacing, denser near 0 (DDIM's "quad")
 */
export function stridedTimesteps(
  numTimesteps: number,
  steps: number,
  method: StrideMethod = 'linspace',
): number[] {
  if (!Number.isInteger(numTimesteps) || numTimesteps < 1) {
    throw new RangeError(`numTimesteps must be a positive integer, got ${numTimesteps}`);
  }
  if (!Number.isInteger(steps) || steps < 1 || steps > numTimesteps) {
    throw new RangeError(`steps must be an integer in 1..${numTimesteps}, got ${steps}`);
  }
  const T = numTimesteps;
  let out: number[];
  switch (method) {
    case 'linspace':
      out =
        steps === 1
          ? [T - 1]
          : Array.from({ length: steps }, (_, i) => roundHalfEven((i * (T - 1)) / (steps - 1)));
      break;
    case 'leading': {
      const k = Math.floor(T / steps);
      out = Array.from({ length: steps }, (_, i) => i * k);
      break;
    }
    case 'trailing': {
      const k = T / steps;
      out = Array.from({ length: steps }, (_, i) => roundHalfEven(T - i * k) - 1).reverse();
      break;
    }
    case 'quad': {
      const top = Math.sqrt(0.8 * T);
      out = Array.from({ length: steps }, (_, i) =>
        Math.floor((steps === 1 ? 0 : (i * top) / (steps - 1)) ** 2),
      );
      break;
    }
    default:
      throw new RangeError(`unknown stride method '${String(method)}'`);
  }
  // Make strictly increasing (rounding can collide when steps is close to T).
  for (let i = 1; i < out.length; i++) if (out[i] <= out[i - 1]) out[i] = out[i - 1] + 1;
  for (let i = out.length - 1; i >= 0 && out[i] > T - 1; i--) {
    out[i] = T - 1 - (out.length - 1 - i);
  }
  return out;
}

/** numpy.round / Python round: halves go to the even neighbour. */
function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}
