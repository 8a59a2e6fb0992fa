/**
 * Tiling a large image into overlapping tiles and blending the processed tiles back.
 * Weights are separable linear ramps across each overlap (1 elsewhere, also at the image
 * border); the blender divides by the summed weight, so the weights applied to every pixel
 * sum to 1 and an identity "process" reproduces the image exactly (up to float rounding).
 */
import { checkFloat, type FloatImage } from './convert';
import { DifFusionError } from './errors';
import { cropFloat } from './geometry';

export interface Tile {
  /** Index in the plan (row-major). */
  index: number;
  x: number;
  y: number;
  width: number;
  height: number;
  /** Overlap with the neighbour on each side (0 at the image border). */
  overlap: { left: number; top: number; right: number; bottom: number };
}

function starts(size: number, tile: number, overlap: number): number[] {
  if (size <= tile) return [0];
  const stride = tile - overlap;
  const n = Math.ceil((size - tile) / stride) + 1;
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push(Math.min(i * stride, size - tile));
  return out;
}

/**
 * Tiles of `tile` x `tile` pixels (smaller when the image is) covering a width x height
 * image, neighbours overlapping by at least `overlap` pixels; the last row/column is aligned
 * to the image edge (so its overlap may be larger). Row-major order.
 */
export function planTiles(width: number, height: number, tile: number, overlap: number): Tile[] {
  if (!(Number.isInteger(width) && Number.isInteger(height) && width > 0 && height > 0)) {
    throw new DifFusionError(`cannot tile a ${width}x${height} image`);
  }
  if (!Number.isInteger(tile) || tile < 1)
    throw new DifFusionError(`tile size must be a positive integer, got ${tile}`);
  if (!Number.isInteger(overlap) || overlap < 0 || overlap >= tile) {
    throw new DifFusionError(`tile overlap must be an integer in 0..${tile - 1}, got ${overlap}`);
  }
  const xs = starts(width, tile, overlap);
  const ys = starts(height, tile, overlap);
  const tw = Math.min(tile, width);
  const th = Math.min(tile, height);
  const tiles: Tile[] = [];
  for (let j = 0; j < ys.length; j++) {
    for (let i = 0; i < xs.length; i++) {
      tiles.push({
        index: tiles.length,
        x: xs[i],
        y: ys[j],
        width: tw,
        height: th,
        overlap: {
          left: i > 0 ? xs[i - 1] + tw - xs[i] : 0,
          right: i < xs.length - 1 ? xs[i] + tw - xs[i + 1] : 0,
          top: j > 0 ? ys[j - 1] + th - ys[j] : 0,
          bottom: j < ys.length - 1 ? ys[j] + th - ys[j + 1] : 0,
        },
      });
    }
  }
  return tiles;
}

/** Cut one tile out of an image (any channel count). */
export function extractTile(img: FloatImage, t: Tile): FloatImage {
  return cropFloat(img, t.x, t.y, t.width, t.height);
}

/** 1-D blend weights of a tile side: ramps (k+1)/(o+1) over each overlap, else 1. */
export function rampWeights(size: number, before: number, after: number): Float32Array {
  const w = new Float32Array(size).fill(1);
  for (let k = 0; k < before && k < size; k++) w[k] = Math.min(w[k], (k + 1) / (before + 1));
  for (let k = 0; k < after && k < size; k++) {
    const i = size - 1 - k;
    w[i] = Math.min(w[i], (k + 1) / (after + 1));
  }
  return w;
}

/**
 * Accumulates processed float tiles (planar CHW, `channels` each) into a full image.
 * `add(tile, data)` for every tile of the plan, then `result()`.
 */
export class TileBlender {
  readonly width: number;
  readonly height: number;
  readonly channels: number;
  private readonly acc: Float64Array;
  private readonly wsum: Float64Array;

  constructor(width: number, height: number, channels: number) {
    this.width = width;
    this.height = height;
    this.channels = channels;
    this.acc = new Float64Array(width * height * channels);
    this.wsum = new Float64Array(width * height);
  }

  add(t: Tile, tile: FloatImage | Float32Array): void {
    const data = tile instanceof Float32Array ? tile : tile.data;
    if (!(tile instanceof Float32Array)) {
      checkFloat(tile);
      if (tile.width !== t.width || tile.height !== t.height) {
        throw new DifFusionError(
          `tile ${t.index} is ${tile.width}x${tile.height}, expected ${t.width}x${t.height}`,
        );
      }
    }
    const thw = t.width * t.height;
    if (data.length !== thw * this.channels) {
      throw new DifFusionError(
        `tile ${t.index} has ${data.length} values, expected ${thw * this.channels}`,
      );
    }
    const wx = rampWeights(t.width, t.overlap.left, t.overlap.right);
    const wy = rampWeights(t.height, t.overlap.top, t.overlap.bottom);
    const hw = this.width * this.height;
    for (let y = 0; y < t.height; y++) {
      const row = (t.y + y) * this.width + t.x;
      for (let x = 0; x < t.width; x++) {
        const w = wx[x] * wy[y];
        this.wsum[row + x] += w;
        for (let c = 0; c < this.channels; c++) {
          this.acc[c * hw + row + x] += w * data[c * thw + y * t.width + x];
        }
      }
    }
  }

  /** The blended image; throws if some pixel was covered by no tile. */
  result(): FloatImage {
    const hw = this.width * this.height;
    const out = new Float32Array(hw * this.channels);
    for (let i = 0; i < hw; i++) {
      const w = this.wsum[i];
      if (w === 0)
        throw new DifFusionError(
          `pixel (${i % this.width}, ${Math.floor(i / this.width)}) is covered by no tile`,
        );
      for (let c = 0; c < this.channels; c++) out[c * hw + i] = this.acc[c * hw + i] / w;
    }
    return { width: this.width, height: this.height, channels: this.channels, data: out };
  }
}
