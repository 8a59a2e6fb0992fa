/** PNG output of the trainer: sample grids and the loss curve, through @dif-fusion/io. */
import { type FloatImage, floatToImage, makeGrid, saveGrid, writeImage } from '@dif-fusion/io';
import { Canvas, textHeight, textWidth } from './pixel-font';

/** A column of a grid: per sample `channels` planes of height x width, showing `pick`. */
export interface GridColumn {
  /** `[N, channels, height, width]` in [-1, 1]. */
  data: Float32Array;
  channels: number;
  /** Three channel indices (RGB) or one (gray). */
  pick: number[];
}

/** One image of an NCHW array. */
function cell(col: GridColumn, i: number, width: number, height = width): FloatImage {
  const plane = width * height;
  const out = new Float32Array(col.pick.length * plane);
  col.pick.forEach((c, k) => {
    const s = (i * col.channels + c) * plane;
    out.set(col.data.subarray(s, s + plane), k * plane);
  });
  return { width, height, channels: col.pick.length, data: out };
}

/** Save a grid: one row per sample, the columns side by side. */
export async function writeGrid(
  path: string,
  columns: GridColumn[],
  n: number,
  size: number,
): Promise<void> {
  const images: FloatImage[] = [];
  for (let i = 0; i < n; i++) for (const col of columns) images.push(cell(col, i, size));
  await saveGrid(path, images, columns.length, 2, { padValue: 1 });
}

/** Write an 8-bit RGB buffer as PNG. */
export async function writeRgb(
  path: string,
  img: { width: number; height: number; data: Uint8Array },
): Promise<void> {
  await writeImage(path, {
    width: img.width,
    height: img.height,
    channels: 3,
    bitDepth: 8,
    data: img.data,
  });
}

/** Tiles smaller than this are drawn zoomed (nearest neighbour) in labelled grids. */
export const MIN_LABELLED_TILE = 64;

/** `img` enlarged `z` times by pixel repetition. */
function zoom(img: FloatImage, z: number): FloatImage {
  if (z === 1) return img;
  const W = img.width * z;
  const H = img.height * z;
  const out = new Float32Array(img.channels * W * H);
  for (let c = 0; c < img.channels; c++)
    for (let y = 0; y < H; y++) {
      const src = (c * img.height + Math.floor(y / z)) * img.width;
      const dst = (c * H + y) * W;
      for (let x = 0; x < W; x++) out[dst + x] = img.data[src + Math.floor(x / z)];
    }
  return { width: W, height: H, channels: img.channels, data: out };
}

/**
 * A grid with a header row naming the columns (e.g. `RGB | IR`, in `@dif-fusion/io`'s 5x7
 * pixel font, so the bytes depend on nothing installed), one row per sample, as 8-bit RGB.
 * Tiles (`size` wide, `height` tall, default square) whose short side is under
 * {@link MIN_LABELLED_TILE} pixels are zoomed by an integer factor (nearest neighbour, no
 * new pixel values) so that the labels are readable: at least 2x the font (14 pixels
 * tall), up to 4x on large tiles.
 */
export function labelledGrid(
  columns: GridColumn[],
  labels: string[],
  n: number,
  size: number,
  height = size,
): { width: number; height: number; data: Uint8Array; zoom: number; scale: number } {
  const short = Math.min(size, height);
  const z = short < MIN_LABELLED_TILE ? Math.ceil(MIN_LABELLED_TILE / short) : 1;
  const tile = size * z;
  const images: FloatImage[] = [];
  for (let i = 0; i < n; i++)
    for (const col of columns) images.push(zoom(cell(col, i, size, height), z));
  const pad = 2;
  const grid = floatToImage(makeGrid(images, columns.length, pad, { padValue: 1 }), 8);
  const fit = Math.min(...labels.map((l) => Math.floor(tile / Math.max(1, textWidth(l, 1)))));
  const scale = Math.max(1, Math.min(fit, Math.max(2, Math.min(4, Math.floor(tile / 40)))));
  const header = textHeight(scale) + 3 * scale;
  const cv = new Canvas(grid.width, grid.height + header);
  const rgb = grid.channels === 3;
  for (let p = 0; p < grid.width * grid.height; p++)
    for (let k = 0; k < 3; k++)
      cv.data[header * grid.width * 3 + p * 3 + k] = grid.data[rgb ? p * 3 + k : p];
  labels.forEach((label, c) => {
    const x = pad + c * (tile + pad) + Math.floor((tile - textWidth(label, scale)) / 2);
    cv.text(Math.max(0, x), Math.round(1.5 * scale), label, [30, 30, 30], scale);
  });
  return { width: cv.width, height: cv.height, data: cv.data, zoom: z, scale };
}

/** Save {@link labelledGrid} as PNG, atomically. */
export async function writeLabelledGrid(
  path: string,
  columns: GridColumn[],
  labels: string[],
  n: number,
  size: number,
  height = size,
): Promise<void> {
  await writeRgb(path, labelledGrid(columns, labels, n, size, height));
}
