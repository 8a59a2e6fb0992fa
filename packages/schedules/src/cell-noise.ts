/**
 * The fusion noise: one definition for every way of fusing (the library's
 * `loadFusionModel(dir).fuse({ seed })`, `dif-fuse` whole or tiled, video, queue, web page).
 *
 * The noise is a function of (seed, time step k, channel c, y, x) in the image's (padded)
 * frame: it is drawn in fixed 64x64 cells, each cell from its own 32-bit seed (a murmur3
 * mix of the seed and the cell's (k, cy, cx)), as `normalArray(cellSeed, channels*64*64)`.
 * So a pixel sees the same noise whether the image is fused whole or in tiles, and a window
 * of it costs only the cells it overlaps (no whole-frame array of K*4 floats per pixel).
 */
import { normalArray } from './fast-rng';

/** Edge of the square noise cells. */
export const NOISE_CELL = 64;

/** 32-bit mix of a seed and a cell's coordinates (murmur3 finaliser over a running hash). */
export function cellSeed(seed: number, k: number, cy: number, cx: number): number {
  let h = seed >>> 0;
  for (const v of [k, cy, cx]) {
    h = Math.imul(h ^ (v >>> 0), 0x9e3779b1) >>> 0;
    h ^= h >>> 16;
    h = Math.imul(h, 0x85ebca6b) >>> 0;
    h ^= h >>> 13;
    h = Math.imul(h, 0xc2b2ae35) >>> 0;
    h ^= h >>> 16;
  }
  return h >>> 0;
}

/**
 * Noise windows for a seed: `window(y0, x0, h, w)` returns the planes [steps, channels, h, w]
 * of that window of the frame. The value at (k, c, y, x) is element
 * `c*64*64 + (y%64)*64 + x%64` of cell (k, y/64, x/64)'s draw `normal(cellSeed, channels*64*64)`
 * (`normal` defaults to {@link normalArray}, the only generator used in practice).
 */
export function cellNoise(
  seed: number,
  steps: number,
  channels: number,
  normal: (seed32: number, count: number) => Float32Array = normalArray,
): (y0: number, x0: number, h: number, w: number) => Float32Array {
  const S = NOISE_CELL;
  const cellSize = channels * S * S;
  return (y0, x0, h, w) => {
    const hw = h * w;
    const out = new Float32Array(steps * channels * hw);
    for (let k = 0; k < steps; k++)
      for (let cy = Math.floor(y0 / S); cy * S < y0 + h; cy++)
        for (let cx = Math.floor(x0 / S); cx * S < x0 + w; cx++) {
          const cell = normal(cellSeed(seed, k, cy, cx), cellSize);
          const ya = Math.max(y0, cy * S);
          const yb = Math.min(y0 + h, (cy + 1) * S);
          const xa = Math.max(x0, cx * S);
          const xb = Math.min(x0 + w, (cx + 1) * S);
          for (let c = 0; c < channels; c++) {
            const o = (k * channels + c) * hw;
            for (let y = ya; y < yb; y++) {
              const src = c * S * S + (y - cy * S) * S - cx * S;
              const dst = o + (y - y0) * w - x0;
              out.set(cell.subarray(src + xa, src + xb), dst + xa);
            }
          }
        }
    return out;
  };
}

/**
 * The noise input of a fusion graph, `[k, n, channels, height, width]`, for a seed: every
 * image of the batch gets the frame's noise `cellNoise(seed, k, channels)(0, 0, height, width)`,
 * so fusing a batch gives the images that fusing each alone with that seed gives.
 */
export function imageNoise(
  seed: number,
  shape: { k: number; n: number; channels?: number; height: number; width: number },
): Float32Array {
  const { k, n, channels = 4, height, width } = shape;
  const one = cellNoise(seed, k, channels)(0, 0, height, width);
  if (n === 1) return one;
  const plane = channels * height * width;
  const out = new Float32Array(k * n * plane);
  for (let s = 0; s < k; s++)
    for (let i = 0; i < n; i++)
      out.set(one.subarray(s * plane, (s + 1) * plane), (s * n + i) * plane);
  return out;
}
