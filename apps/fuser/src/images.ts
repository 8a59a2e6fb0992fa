/**
 * Image files <-> the planar Float32 [-1,1] arrays the fusion methods take, through
 * @dif-fusion/io (decode with EXIF orientation, 8/16-bit, gray/RGB/palette, BMP; atomic
 * writes; one-line errors naming the file).
 */
import {
  CorruptImageError,
  checkPixelLimit,
  decodeImage,
  decodeImageHeader,
  drawPixelText,
  encodeImage,
  type FloatImage,
  floatToImage,
  formatFromPath,
  type Image,
  type ImageFormat,
  ImageTooLargeError,
  imageToFloat,
  writeImage as ioWriteImage,
  megapixels,
  pixelTextScaleToFit,
  pixelTextWidth,
  type ReadImageOptions,
  readImage,
  readImageHeader,
} from '@dif-fusion/io';
import { FuseError } from './errors';

/** Planar [C,H,W] Float32 in [-1,1] (the same layout as @dif-fusion/io's FloatImage). */
export type Planar = FloatImage;

/** Output formats by extension (lower case, no dot). */
export const OUTPUT_EXTENSIONS = ['png', 'jpg', 'jpeg', 'tif', 'tiff', 'webp', 'bmp'] as const;

/** Checks that a path's extension is a writable image format; one-line error otherwise. */
export function outputFormat(path: string): string {
  return formatFromPath(path);
}

/**
 * An input image: a file path, or bytes already read (stdin, for `--ir -`) with the name
 * errors give them.
 */
export type ImageSource = string | { name: string; bytes: Uint8Array };

export function sourceName(src: ImageSource): string {
  return typeof src === 'string' ? src : src.name;
}

function readSource(src: ImageSource, opts: ReadImageOptions): Promise<Image> {
  return typeof src === 'string' ? readImage(src, opts) : decodeImage(src.bytes, src.name, opts);
}

function readSourceHeader(src: ImageSource) {
  return typeof src === 'string'
    ? readImageHeader(src)
    : decodeImageHeader(src.bytes.subarray(0, 65536), src.name, src.bytes);
}

/**
 * Infrared: one channel in [-1,1]. RGB IR becomes gray (its channel when R = G = B, else
 * MATLAB's rgb2gray). 16-bit IR (raw thermal counts) is min-max normalised to the full
 * range, since raw counts rarely span 0..65535; 8-bit IR is used as is.
 */
export async function readInfrared(path: ImageSource, opts: ReadOptions = {}): Promise<Planar> {
  return infraredToPlanar(await readSource(path, { ...opts, channels: 1 }));
}

/** A decoded one-channel infrared image as planar [-1,1] (16-bit min-max normalised, see readInfrared). */
export function infraredToPlanar(img: Image): Planar {
  return img.bitDepth === 16 ? normalise16(img) : imageToFloat(img);
}

/** Visible: three channels in [-1,1]; gray input is replicated; 16-bit scaled by 65535. */
export async function readVisible(path: ImageSource, opts: ReadOptions = {}): Promise<Planar> {
  return imageToFloat(await readSource(path, { ...opts, channels: 3 }));
}

/** How input images are read: pixel limit and damaged data (see @dif-fusion/io's readImage). */
export type ReadOptions = Pick<ReadImageOptions, 'maxPixels' | 'allowCorrupt' | 'onWarning'>;

/**
 * Reads an infrared/visible pair: both headers first (sizes compared and checked against the
 * pixel limit before any pixel is decoded), then the images. The errors name the file and
 * the dif-fuse flag that lifts the refusal.
 */
export async function readPair(
  irSource: ImageSource,
  visSource: ImageSource,
  opts: ReadOptions = {},
): Promise<{ ir: Planar; vis: Planar }> {
  const irPath = sourceName(irSource);
  const visPath = sourceName(visSource);
  try {
    const [hi, hv] = await Promise.all([readSourceHeader(irSource), readSourceHeader(visSource)]);
    if (hi.width !== hv.width || hi.height !== hv.height)
      throw new FuseError(
        `${visPath}: size mismatch: ${irPath} is ${hi.width}x${hi.height} but ${visPath} is ${hv.width}x${hv.height} (a camera rig's pair: --align rig.json from dif-fuse align, or --align auto; the same field of view at another resolution: --resize)`,
      );
    checkPixelLimit(hi, irPath, opts.maxPixels);
    checkPixelLimit(hv, visPath, opts.maxPixels);
    const ir = await readInfrared(irSource, opts);
    const vis = await readVisible(visSource, opts);
    return { ir, vis };
  } catch (err) {
    if (err instanceof ImageTooLargeError)
      throw new FuseError(
        `${err.message} (--max-pixels ${megapixels(err.width * err.height)} reads it; large images are fused in tiles)`,
      );
    if (err instanceof CorruptImageError)
      throw new FuseError(`${err.message}; --allow-corrupt reads it anyway`);
    throw err;
  }
}

function normalise16(img: Image): Planar {
  const d = img.data;
  let lo = 65535;
  let hi = 0;
  for (let i = 0; i < d.length; i++) {
    const v = d[i];
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  const span = hi > lo ? hi - lo : 1;
  const out = new Float32Array(d.length);
  for (let i = 0; i < d.length; i++) out[i] = ((d[i] - lo) / span) * 2 - 1;
  return { width: img.width, height: img.height, channels: 1, data: out };
}

/** Writes a planar [-1,1] image as 8-bit, format from the extension, atomically. */
export async function writeImage(path: string, img: Planar): Promise<void> {
  await ioWriteImage(path, floatToImage(img, 8));
}

/** Encodes a planar [-1,1] image as 8-bit in a format (for `-o -`: the bytes go to stdout). */
export async function encodePlanar(img: Planar, format: ImageFormat): Promise<Buffer> {
  return encodeImage(floatToImage(img, 8), format);
}

/** The panel labels of {@link sideBySide}, longest first; the first set that fits is used. */
const PANEL_LABELS = [
  ['fused', 'visible', 'infrared'],
  ['fused', 'vis', 'ir'],
  ['f', 'v', 'ir'],
] as const;

/**
 * The label strip of {@link sideBySide} for panels `w` x `h`: the labels, the font scale (text
 * about 1/20 of the panel height, at least 2x the 5x7 font where it fits the panel width) and
 * the strip height (10 font pixels: the text with 1.5 above and below).
 */
export function sideBySideLabels(
  w: number,
  h: number,
): { labels: readonly string[]; scale: number; height: number } {
  const margin = 2;
  const labels =
    PANEL_LABELS.find((set) => set.every((l) => pixelTextWidth(l, 1) <= w - 2 * margin)) ??
    PANEL_LABELS[PANEL_LABELS.length - 1];
  const fit = Math.min(...labels.map((l) => pixelTextScaleToFit(l, w - 2 * margin)));
  const scale = Math.max(1, Math.min(fit, Math.max(2, Math.round(h / 140))));
  return { labels, scale, height: 10 * scale };
}

/**
 * fused | visible | infrared, side by side, as one planar RGB image, under a black strip that
 * names each panel in white (the 5x7 pixel font of `@dif-fusion/io`, scaled to the image's
 * size, so the bytes depend on nothing installed). `labels: false` leaves the strip out.
 */
export function sideBySide(
  fused: Planar,
  vis: Planar,
  ir: Planar,
  options: { labels?: boolean } = {},
): Planar {
  const { height: h, width: w } = fused;
  const strip = options.labels === false ? undefined : sideBySideLabels(w, h);
  const top = strip?.height ?? 0;
  const W = 3 * w;
  const H = h + top;
  const n = H * W;
  const out = new Float32Array(3 * n).fill(-1);
  const parts = [fused, vis, ir];
  for (let c = 0; c < 3; c++)
    for (let p = 0; p < 3; p++) {
      const src = parts[p];
      const plane = src.channels === 1 ? 0 : c;
      for (let y = 0; y < h; y++) {
        const so = (plane * h + y) * w;
        out.set(src.data.subarray(so, so + w), c * n + (top + y) * W + p * w);
      }
    }
  if (strip)
    strip.labels.forEach((label, p) => {
      const x0 = p * w + Math.max(0, Math.floor((w - pixelTextWidth(label, strip.scale)) / 2));
      drawPixelText(label, x0, Math.round(1.5 * strip.scale), strip.scale, (x, y) => {
        if (x < p * w || x >= (p + 1) * w || y >= top) return;
        for (let c = 0; c < 3; c++) out[c * n + y * W + x] = 1;
      });
    });
  return { width: W, height: H, channels: 3, data: out };
}
