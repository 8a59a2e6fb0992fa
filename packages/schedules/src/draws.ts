/**
 * The seeded draws of one training step, as plain Float32Arrays: any training backend
 * (tfjs, ONNX Runtime) that takes them from here draws exactly the same numbers, so losses
 * match across backends, resumes and data-parallel shards.
 */
import { normalArray } from './fast-rng';
import type { NoiseSchedule } from './noise-schedule';
import type { Rng } from './rng';
import { deriveSeed } from './seeds';

/** The random inputs of one DDPM step (SR3 p_losses), besides the data batch. */
export interface DdpmStepDraws {
  /** Time step 1..T shared by the batch. */
  t: number;
  /** One continuous noise level per sample, uniform in [sqrt_acp_prev[t], sqrt_acp_prev[t-1]). */
  levels: Float32Array;
  /** Standard normal noise, one value per element of the batch, in the batch's layout. */
  noise: Float32Array;
  /** Seed of the step's dropout masks (see mixSeed). */
  stepSeed: number;
}

/**
 * Draw a DDPM step from the training Rng, in the fixed order t, levels, noise, step seed
 * (the order every checkpoint's Rng state assumes): `batch` samples of `elements` values in all.
 */
export function drawDdpmStep(
  schedule: NoiseSchedule,
  rng: Rng,
  batch: number,
  elements: number,
): DdpmStepDraws {
  const t = schedule.sampleTimestep(rng);
  const levels = schedule.continuousNoiseLevels(t, batch, rng);
  const noise = rng.normalArray(elements);
  const stepSeed = rng.nextUint32();
  return { t, levels, noise, stepSeed };
}

/** Noise levels of time steps (the part of a NoiseSchedule the feature draws need). */
export interface NoiseLevels {
  /** Deterministic level for timestep t: midpoint of sqrt_alphas_cumprod_prev[t-1..t]. */
  midpointNoiseLevel(t: number): number;
  /** Official feats(): `batch` levels uniform in [sqrt_alphas_cumprod_prev[t-1], [t]). */
  continuousNoiseLevels(t: number, batch: number, rng: Rng): Float32Array;
}

/**
 * The noise of the frozen DDPM's features at time step `t` (index `k` of the head's time
 * steps) for a batch of `n` samples of `elements` values in all:
 * - `fixed`: the midpoint level and the `featureNoise` stream of `seed` for index `k`,
 *   restarted every call (identical noise for every batch of the same shape);
 * - `random` (the official feats()): levels and noise drawn from the running `stream`.
 */
export function drawFeatureNoise(
  schedule: NoiseLevels,
  t: number,
  k: number,
  n: number,
  elements: number,
  options: { mode: 'fixed' | 'random'; seed: number; stream: Rng },
): { levels: Float32Array; noise: Float32Array } {
  if (options.mode === 'fixed')
    return {
      levels: new Float32Array(n).fill(schedule.midpointNoiseLevel(t)),
      noise: normalArray(deriveSeed(options.seed, 'featureNoise', k), elements),
    };
  const levels = schedule.continuousNoiseLevels(t, n, options.stream);
  return { levels, noise: options.stream.normalArray(elements) };
}
