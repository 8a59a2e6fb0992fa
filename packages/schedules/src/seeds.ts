/**
 * Named seed streams: every random draw of the project comes from an `Rng` seeded with the
 * run's seed, or with a seed derived from it for one purpose. The constants are the ones the
 * project has always used, so existing checkpoints resume with the same draws and the
 * shipped model fuses with the same noise.
 */
import { normalArray } from './fast-rng';

/** What a derived seed is for. */
export type SeedStream =
  /** The training data sampler (random crops, epoch order). */
  | 'sampler'
  /** The sampler whose crops fill the head-training feature cache. */
  | 'featureCache'
  /** The order of the cached feature batches in epoch `index`. */
  | 'cacheOrder'
  /** Fixed feature noise of head training, time step index `index` (restarted every batch). */
  | 'featureNoise'
  /** Random feature noise levels (GaussianDiffusion.featureLevels with `random`). */
  | 'featureLevels'
  /** The start noise of the DDPM's validation sample grids (the same every validation). */
  | 'sampleGrid';

const XOR: Record<Exclude<SeedStream, 'cacheOrder' | 'featureNoise'>, number> = {
  sampler: 0x2545f491,
  featureCache: 0x68e31da4,
  featureLevels: 0x5eed1e7e,
  sampleGrid: 0x5a3c9e1d,
};

/** The seed of stream `name` (and its `index`: epoch, time step) for a run seeded `seed`. */
export function deriveSeed(seed: number, name: SeedStream, index = 0): number {
  switch (name) {
    case 'cacheOrder':
      return (Math.imul(seed ^ 0x1b873593, 0x9e3779b1) + index) >>> 0;
    case 'featureNoise':
      return (seed ^ Math.imul(0x9e3779b1, index + 1)) >>> 0;
    default:
      return (seed ^ XOR[name]) >>> 0;
  }
}

/**
 * 32-bit mix of three integers (murmur3-style finaliser): the seed of one dropout mask,
 * keyed by (step seed, dropout call index, sample index in the whole batch), so that a
 * resumed run, data-parallel shards and any training backend draw the same masks.
 */
export function mixSeed(a: number, b: number, c: number): number {
  let h =
    Math.imul(a >>> 0, 0x9e3779b1) ^
    Math.imul(b >>> 0, 0x85ebca6b) ^
    Math.imul(c >>> 0, 0xc2b2ae35);
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/**
 * The fusion noise for a seed: `[k, n, channels, height, width]` standard normal values
 * (channels 4: visible RGB + infrared), row-major, `new Rng(seed).normalArray(...)`. The one
 * definition behind the ONNX runtime's `noise` input, the export's checks and
 * GaussianDiffusion.features, so tfjs and ONNX Runtime fuse identically for a seed.
 */
export function fusionNoise(
  seed: number,
  shape: { k: number; n: number; channels?: number; height: number; width: number },
): Float32Array {
  const { k, n, channels = 4, height, width } = shape;
  return normalArray(seed, k * n * channels * height * width);
}
