/**
 * Grids of images (torchvision make_grid style) and saving float images as PNG.
 */
import { type FloatImage, floatToImage } from './convert';
import { DifFusionError } from './errors';
import { writeImage } from './image';

export interface GridOptions {
  /** Value of the padding and of empty cells, in the images' range (default -1: black). */
  padValue?: number;
}

/**
 * Lay planar float images out in a grid of `cols` columns with `pad` pixels between and
 * around cells. Gray images are replicated to 3 channels when any image has 3; every cell
 * has the size of the largest image (smaller ones sit top-left).
 */
export function makeGrid(
  images: FloatImage[],
  cols = 8,
  pad = 2,
  options: GridOptions = {},
): FloatImage {
  if (images.length === 0) throw new DifFusionError('makeGrid needs at least one image');
  if (!Number.isInteger(cols) || cols < 1)
    throw new DifFusionError(`grid columns must be >= 1, got ${cols}`);
  if (!Number.isInteger(pad) || pad < 0)
    throw new DifFusionError(`grid padding must be >= 0, got ${pad}`);
  const channels = images.some((i) => i.channels === 3) ? 3 : 1;
  for (const im of images) {
    if (im.channels !== 1 && im.channels !== 3) {
      throw new DifFusionError(`makeGrid takes 1- or 3-channel images, got ${im.channels}`);
    }
  }
  const cw = Math.max(...images.map((i) => i.width));
  const ch = Math.max(...images.map((i) => i.height));
  const ncols = Math.min(cols, images.length);
  const nrows = Math.ceil(images.length / ncols);
  const W = ncols * (cw + pad) + pad;
  const H = nrows * (ch + pad) + pad;
  const out = new Float32Array(channels * W * H).fill(options.padValue ?? -1);
  images.forEach((im, k) => {
    const ox = pad + (k % ncols) * (cw + pad);
    const oy = pad + Math.floor(k / ncols) * (ch + pad);
    const hw = im.width * im.height;
    for (let c = 0; c < channels; c++) {
      const sc = im.channels === 1 ? 0 : c;
      for (let y = 0; y < im.height; y++) {
        const s = sc * hw + y * im.width;
        out.set(im.data.subarray(s, s + im.width), c * W * H + (oy + y) * W + ox);
      }
    }
  });
  return { width: W, height: H, channels, data: out };
}

/** Save a planar float image in [-1, 1] (1 or 3 channels) as an 8-bit image (PNG by default). */
export async function saveFloatImage(path: string, img: FloatImage): Promise<void> {
  await writeImage(path, floatToImage(img, 8));
}

/** makeGrid + saveFloatImage. */
export async function saveGrid(
  path: string,
  images: FloatImage[],
  cols = 8,
  pad = 2,
  options: GridOptions = {},
): Promise<void> {
  await saveFloatImage(path, makeGrid(images, cols, pad, options));
}
