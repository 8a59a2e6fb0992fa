/**
 * The frozen DDPM as a feature extractor for the fusion head (official
 * `GaussianDiffusion.feats`): for each time step t of the head, q_sample at t's noise level
 * (eq. 4 of Ho et al. with SR3's continuous level) and one denoiser pass collecting the
 * reversed decoder features. Forward only: call it outside any gradient tape.
 */
import { drawFeatureNoise, type NoiseLevels, Rng } from '@dif-fusion/schedules';
import * as tf from '@tensorflow/tfjs-core';
import { stepFeatures } from './step-features';
import { tfMaths } from './tf-maths';

/**
 * The denoiser's feature pass: reversed decoder features (fd[0] = full resolution) of
 * `xNoisy` (NHWC `[N,H,W,C]`) at levels `level` (`[N,1]`). It may stop its up path once
 * fd[minIndex] exists and leave the entries below it undefined (UNet.features does).
 */
export type DenoiserFeatures = (
  xNoisy: tf.Tensor4D,
  level: tf.Tensor2D,
  minIndex: number,
) => (tf.Tensor | undefined)[];

/**
 * Features of `xStart` = cat(vis, ir) NHWC `[N,H,W,4]` in [-1, 1]: `feats[k][i]` is reversed
 * decoder feature `i` of time step `timeSteps[k]`; entries not in `indices` are null.
 * (The fusion head's HeadFeatureExtractor.)
 */
export type FeatureExtractor = (
  xStart: tf.Tensor4D,
  timeSteps: readonly number[],
  indices: readonly number[],
) => (tf.Tensor | null)[][];

export interface FeatureExtractorOptions {
  /**
   * - `fixed` (default): deterministic features: the midpoint noise level of each time step
   *   and the same seeded noise for every batch of the same shape (what inference does).
   * - `random`: as the official feats(): a uniformly drawn continuous level per sample and
   *   fresh Gaussian noise on every call (from a seeded stream, so runs still reproduce).
   */
  noise?: 'fixed' | 'random';
  /** Seed of the noise (default 0). */
  seed?: number;
}

/** A FeatureExtractor over `denoiser`; the draws come from @dif-fusion/schedules drawFeatureNoise. */
export function makeFeatureExtractor(
  denoiser: DenoiserFeatures,
  schedule: NoiseLevels,
  options: FeatureExtractorOptions = {},
): FeatureExtractor {
  const mode = options.noise ?? 'fixed';
  const seed = options.seed ?? 0;
  const stream = new Rng(seed);
  return (xStart, timeSteps, indices) => {
    const [n] = xStart.shape;
    const keep = new Set(indices);
    const minIndex = indices.length > 0 ? Math.min(...indices) : 0;
    // the draws in step order, as before: the stream's only reader
    const draws = timeSteps.map((t, k) =>
      drawFeatureNoise(schedule, t, k, n, xStart.size, { mode, seed, stream }),
    );
    // the one feature sequence (./step-features.ts), one UNet pass per step
    const fds = tf.tidy(() => {
      const levels = draws.map((d) => tf.tensor2d(d.levels, [n, 1]));
      return stepFeatures<tf.Tensor>(tfMaths, {
        x: xStart,
        levels,
        noise: draws.map((d) => tf.tensor(d.noise, xStart.shape)),
        features: (xNoisy, level) =>
          denoiser(xNoisy as tf.Tensor4D, level as tf.Tensor2D, minIndex),
        stepLevel: (k) => levels[k],
      }) as unknown as tf.Tensor[][];
    }) as unknown as (tf.Tensor | undefined)[][];
    return fds.map((fd) =>
      fd.map((f, i) => {
        if (f && keep.has(i)) return f;
        f?.dispose();
        return null;
      }),
    );
  };
}
