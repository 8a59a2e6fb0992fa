/**
 * The fusion pipeline shared by every method: reflect-pad to the model's multiple and crop
 * back, or, for large images, overlapping tiles blended back with linear ramps
 * (@dif-fusion/io's planTiles / TileBlender), so memory stays bounded by the tile size.
 *
 * Noise for the model is a function of (seed, time step, channel, y, x) in the padded frame
 * (`cellNoise` of @dif-fusion/schedules, the same definition as the library's
 * `loadFusionModel(dir).fuse({ seed })`): it is drawn in fixed 64x64 cells, each from its own
 * seeded generator, and a tile takes the cells it overlaps. So a pixel sees the same noise whether the image is tiled or not, the
 * output depends only on the inputs and the seed, and memory stays bounded by the tile size
 * (no whole-frame noise array, which would be K*4 floats per pixel).
 */
import { totalmem } from 'node:os';
import {
  cropFloat,
  type FloatImage,
  planTiles as ioPlanTiles,
  padReflect,
  type Tile,
  TileBlender,
} from '@dif-fusion/io';
import { FuseError } from './errors';
import { gb, memoryBudget } from './memory';

export interface Fuser {
  /** H and W given to `run` are multiples of this. */
  multiple: number;
  /**
   * Noise per pixel: `steps` x `channels` planes (K x 4 for Dif-Fusion); absent for baselines.
   * `window(y0, x0, h, w)` returns the planes [K,1,C,h,w] of that window of the padded frame.
   */
  noise?: {
    steps: number;
    channels: number;
    window(y0: number, x0: number, h: number, w: number): Float32Array;
  };
  /** Working memory in bytes of one `run` at h x w (padded), for 'auto' tiling; absent: cheap. */
  memory?(h: number, w: number): number;
  /** ir [1,h,w], vis [3,h,w], noise [K,1,C,h,w] or null -> fused [3,h,w], all in [-1,1]. */
  run(
    ir: Float32Array,
    vis: Float32Array,
    noise: Float32Array | null,
    h: number,
    w: number,
  ): Promise<Float32Array>;
}

export interface TilingOptions {
  /** Tile edge in pixels (a multiple of the fuser's multiple), 'auto' (default) or 'off'. */
  tile?: number | 'auto' | 'off';
  /** Overlap between neighbouring tiles in pixels (default 64). */
  overlap?: number;
  /** With tile 'auto' and no memory estimate: images above this many pixels are tiled. */
  autoTilePixels?: number;
  /** Tile edge used when 'auto' decides to tile (without a memory estimate). */
  autoTileSize?: number;
  /**
   * With tile 'auto' and a fuser that estimates its memory (the model): the whole image is
   * fused at once when its estimate fits this many bytes, else in the largest square tiles
   * that fit. Default: a share of the memory available now, under the cgroup limit if any
   * ({@link memoryBudget}).
   */
  memoryBudget?: number;
  /**
   * With tile 'off' and a fuser that estimates its memory: a whole-image run estimated above
   * this many bytes is refused before it starts (default: the machine's memory, os.totalmem).
   */
  machineMemory?: number;
  /** Where `memoryBudget` comes from, for the tiling reason ("--memory 1500"). */
  memorySource?: string;
  /** Called once when 'auto' decides to tile, with the reason in words. */
  onTiling?: (why: string) => void;
  onProgress?: (done: number, total: number) => void;
}

export const DEFAULT_TILE = 512;
export const DEFAULT_OVERLAP = 64;
/** Above about 1 MP an untiled UNet pass needs several GB; tile beyond that. */
export const AUTO_TILE_PIXELS = 1024 * 1024;
/**
 * The fixed budget 'auto' tiling used before it read the available memory (1.5 GB); kept for
 * the API. The default is now {@link memoryBudget}.
 */
export const DEFAULT_MEMORY_BUDGET = 1.5e9;
/** 'auto' never picks a tile smaller than this (smaller tiles waste most work on overlap). */
export const MIN_AUTO_TILE = 128;

/**
 * The tile edge 'auto' picks: 'off' when the fuser has no memory estimate and the image is
 * at most `autoTilePixels`, or when its estimate for the whole padded image fits the budget;
 * otherwise the largest multiple of `multiple` (at least MIN_AUTO_TILE) whose square tile fits.
 */
export function autoTile(
  height: number,
  width: number,
  multiple: number,
  memory: ((h: number, w: number) => number) | undefined,
  opts: TilingOptions = {},
): number | 'off' {
  if (!memory)
    return height * width > (opts.autoTilePixels ?? AUTO_TILE_PIXELS)
      ? (opts.autoTileSize ?? DEFAULT_TILE)
      : 'off';
  const budget = opts.memoryBudget ?? memoryBudget().bytes;
  if (memory(ceilTo(height, multiple), ceilTo(width, multiple)) <= budget) return 'off';
  const floor = ceilTo(MIN_AUTO_TILE, multiple);
  let t = ceilTo(Math.max(height, width), multiple);
  while (t > floor && memory(t, t) > budget) t -= multiple;
  return Math.max(t, floor);
}

export const ceilTo = (v: number, m: number) => Math.ceil(v / m) * m;

/** Reflect-pads [C,h,w] to [C,H,W] (H >= h, W >= w) at the bottom and right (numpy 'reflect'). */
export function reflectPad(
  src: Float32Array,
  c: number,
  h: number,
  w: number,
  H: number,
  W: number,
): Float32Array {
  if (H === h && W === w) return src;
  return padReflect(
    { width: w, height: h, channels: c, data: src },
    { top: 0, left: 0, bottom: H - h, right: W - w },
  ).data;
}

/** Copies the window [y0,y0+h) x [x0,x0+w) of every plane of [P,H,W]. */
export function cropPlanes(
  src: Float32Array,
  planes: number,
  H: number,
  W: number,
  y0: number,
  x0: number,
  h: number,
  w: number,
): Float32Array {
  if (y0 === 0 && x0 === 0 && h === H && w === W) return src;
  return cropFloat({ width: W, height: H, channels: planes, data: src }, x0, y0, w, h).data;
}

/** The tiles an image is fused in; a single whole-image tile when tiling is off or not needed. */
export function planTiles(
  height: number,
  width: number,
  multiple: number,
  opts: TilingOptions = {},
  memory?: (h: number, w: number) => number,
): Tile[] {
  let tile = opts.tile ?? 'auto';
  if (tile === 'auto') {
    let o = opts;
    if (memory && o.memoryBudget === undefined) {
      const b = memoryBudget();
      o = { ...opts, memoryBudget: b.bytes, memorySource: b.source };
    }
    tile = autoTile(height, width, multiple, memory, o);
    if (memory && tile !== 'off' && (height > tile || width > tile))
      opts.onTiling?.(
        `the whole ${width}x${height} image needs ~${gb(memory(ceilTo(height, multiple), ceilTo(width, multiple)))}, more than ${gb(o.memoryBudget!)} (${o.memorySource ?? 'the memory budget'}): ${tile} px tiles`,
      );
  }
  // Default overlap: 64 px, at most a quarter of the tile, rounded down to the model's
  // multiple (a whole number of pixels for any multiple: 194 px tiles at multiple 2 get 48).
  const overlap =
    opts.overlap ??
    (typeof tile === 'number'
      ? Math.floor(Math.min(DEFAULT_OVERLAP, tile / 4) / multiple) * multiple
      : 0);
  if (tile === 'off' && memory) {
    // A whole-image run that cannot fit the machine would take all of it, then be killed.
    const need = memory(ceilTo(height, multiple), ceilTo(width, multiple));
    const have = opts.machineMemory ?? totalmem();
    if (need > have)
      throw new FuseError(
        `--tile off: fusing ${width}x${height} whole needs about ${gb(need)} of working memory (estimated from the model's config.json), more than this machine's ${gb(have)}; use --tile auto or a tile size`,
      );
  }
  if (tile === 'off' || (height <= tile && width <= tile))
    return ioPlanTiles(width, height, Math.max(width, height), 0);
  if (tile % multiple !== 0)
    throw new FuseError(`tile size ${tile} is not a multiple of ${multiple}`);
  if (!Number.isInteger(overlap) || overlap < 0 || 2 * overlap >= tile)
    throw new FuseError(
      `overlap ${overlap} must be at least 0 and less than half the tile size ${tile}`,
    );
  return ioPlanTiles(width, height, tile, overlap);
}

/**
 * Fuses one pair of planar images ([1,H,W] IR and [3,H,W] visible, [-1,1]) of any size with
 * a fuser: pads every tile to the fuser's multiple, crops back, blends the tiles.
 */
export async function fusePlanar(
  ir: FloatImage,
  vis: FloatImage,
  fuser: Fuser,
  opts: TilingOptions = {},
): Promise<FloatImage> {
  const { height: H, width: W } = ir;
  if (vis.height !== H || vis.width !== W)
    throw new FuseError('fusePlanar: ir and vis sizes differ');
  if (ir.channels !== 1 || vis.channels !== 3)
    throw new FuseError('fusePlanar: expects 1-channel ir and 3-channel vis');
  const m = fuser.multiple;
  const tiles = planTiles(H, W, m, opts, fuser.memory?.bind(fuser));

  const runTile = async (t: Tile): Promise<Float32Array> => {
    const th = t.height;
    const tw = t.width;
    // A tile is smaller than its padded size only when it spans a whole unaligned axis, so
    // its window in the padded noise frame is [t.y, t.y + thp) x [t.x, t.x + twp) either way.
    const thp = ceilTo(th, m);
    const twp = ceilTo(tw, m);
    const irT = reflectPad(cropPlanes(ir.data, 1, H, W, t.y, t.x, th, tw), 1, th, tw, thp, twp);
    const visT = reflectPad(cropPlanes(vis.data, 3, H, W, t.y, t.x, th, tw), 3, th, tw, thp, twp);
    const noiseT = fuser.noise ? fuser.noise.window(t.y, t.x, thp, twp) : null;
    const out = await fuser.run(irT, visT, noiseT, thp, twp);
    return cropPlanes(out, 3, thp, twp, 0, 0, th, tw);
  };

  if (tiles.length === 1) {
    const data = await runTile(tiles[0]);
    opts.onProgress?.(1, 1);
    return { width: W, height: H, channels: 3, data };
  }
  const blender = new TileBlender(W, H, 3);
  let done = 0;
  for (const t of tiles) {
    blender.add(t, await runTile(t));
    opts.onProgress?.(++done, tiles.length);
  }
  return blender.result();
}

/**
 * The one noise definition (64x64 cells, see the module comment) lives in
 * @dif-fusion/schedules beside the generator; re-exported here for the fuser's API.
 */
export { cellNoise, NOISE_CELL } from '@dif-fusion/schedules';
