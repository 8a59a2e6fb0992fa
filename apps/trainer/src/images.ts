/** PNG output of the trainer: sample grids and the loss curve, through @dif-fusion/io. */
import { type FloatImage, floatToImage, makeGrid, saveGrid, writeImage } from '@dif-fusion/io';
import { Canvas, textWidth } from './pixel-font';

/** A column of a grid: per sample `channels` planes of `size` x `size`, showing `pick`. */
export interface GridColumn {
  /** `[N, channels, size, size]` in [-1, 1]. */
  data: Float32Array;
  channels: number;
  /** Three channel indices (RGB) or one (gray). */
  pick: number[];
}

/** One image of an NCHW array. */
function cell(col: GridColumn, i: number, size: number): FloatImage {
  const plane = size * size;
  const out = new Float32Array(col.pick.length * plane);
  col.pick.forEach((c, k) => {
    const s = (i * col.channels + c) * plane;
    out.set(col.data.subarray(s, s + plane), k * plane);
  });
  return { width: size, height: size, channels: col.pick.length, data: out };
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

/**
 * Save a grid with a header row naming the columns (e.g. `RGB | IR`, in the plotter's
 * built-in pixel font, so the bytes depend on nothing installed): one row per sample,
 * written atomically.
 */
export async function writeLabelledGrid(
  path: string,
  columns: GridColumn[],
  labels: string[],
  n: number,
  size: number,
): Promise<void> {
  const images: FloatImage[] = [];
  for (let i = 0; i < n; i++) for (const col of columns) images.push(cell(col, i, size));
  const pad = 2;
  const grid = floatToImage(makeGrid(images, columns.length, pad, { padValue: 1 }), 8);
  const header = 16;
  const cv = new Canvas(grid.width, grid.height + header);
  const rgb = grid.channels === 3;
  for (let p = 0; p < grid.width * grid.height; p++)
    for (let k = 0; k < 3; k++)
      cv.data[header * grid.width * 3 + p * 3 + k] = grid.data[rgb ? p * 3 + k : p];
  labels.forEach((label, c) => {
    const scale = textWidth(label, 2) <= size ? 2 : 1;
    const x = pad + c * (size + pad) + Math.floor((size - textWidth(label, scale)) / 2);
    cv.text(Math.max(0, x), 3, label, [30, 30, 30], scale);
  });
  await writeRgb(path, cv);
}
