/** PNG output of the trainer: sample grids and the loss curve, through @dif-fusion/io. */
import { type FloatImage, saveGrid, writeImage } from '@dif-fusion/io';

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
