/**
 * Image headers and the checks made on them before any pixel is decoded: the size an image
 * claims (a 14 KB JPEG may claim 65000x65000 and make a decoder allocate 12 GB) against a
 * pixel limit, and pair sizes compared before either image is decoded.
 */
import { open } from 'node:fs/promises';
import type { Metadata } from 'sharp';
import { DifFusionError, fileError, fsError } from './errors';
import { type ImageFormat, sniffFormat } from './image-format';
import { loadSharp } from './sharp-lazy';

/** What a header says: format and displayed size (EXIF orientation applied). */
export interface ImageHeader {
  format: ImageFormat;
  width: number;
  height: number;
}

/**
 * Default pixel limit of {@link readImage}: 50 MP (e.g. 8660x5773). Fusing a 50 MP pair holds
 * about 2.5 GB of image buffers besides the model; pass `maxPixels` (dif-fuse `--max-pixels`)
 * to read larger images, which the tiler fuses in bounded model memory.
 */
export const DEFAULT_MAX_PIXELS = 50_000_000;

/** An image larger than the pixel limit; `pixels` is what its header claims. */
export class ImageTooLargeError extends DifFusionError {
  constructor(
    path: string,
    readonly width: number,
    readonly height: number,
    readonly maxPixels: number,
  ) {
    super(
      `${path}: image is ${width}x${height} (${megapixels(width * height)} MP), above the limit of ${megapixels(maxPixels)} MP; not decoded`,
      { path },
    );
    this.name = 'ImageTooLargeError';
  }
}

/** A decoder found damaged data (corrupt JPEG scan, truncated TIFF/PNG). */
export class CorruptImageError extends DifFusionError {
  constructor(path: string, format: ImageFormat, detail: string, cause?: unknown) {
    super(`${path}: corrupt or truncated ${format} image (${detail})`, { path, cause });
    this.name = 'CorruptImageError';
  }
}

/** Megapixels, rounded up to a whole number above 10 and to one decimal below. */
export function megapixels(pixels: number): string {
  const mp = pixels / 1e6;
  return mp >= 10 ? String(Math.ceil(mp)) : String(Math.ceil(mp * 10) / 10);
}

/** Throws {@link ImageTooLargeError} when `header` has more than `maxPixels` pixels. */
export function checkPixelLimit(
  header: { width: number; height: number },
  source: string,
  maxPixels = DEFAULT_MAX_PIXELS,
): void {
  if (header.width * header.height > maxPixels)
    throw new ImageTooLargeError(source, header.width, header.height, maxPixels);
}

/** Width and height from a BMP's DIB header (BITMAPCOREHEADER or later), or null. */
function bmpSize(b: Uint8Array): { width: number; height: number } | null {
  if (b.length < 26) return null;
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const dib = v.getUint32(14, true);
  if (dib === 12) return { width: v.getUint16(18, true), height: v.getUint16(20, true) };
  return { width: Math.abs(v.getInt32(18, true)), height: Math.abs(v.getInt32(22, true)) };
}

/**
 * The header of encoded bytes (or of a file, when `input` is a path): format and displayed
 * size, without decoding pixels. One-line errors naming `source`.
 */
export async function decodeImageHeader(
  head: Uint8Array,
  source: string,
  input: Uint8Array | string = head,
): Promise<ImageHeader> {
  if (head.byteLength === 0) throw fileError(source, 'empty file, not an image');
  const format = sniffFormat(head);
  if (!format) {
    throw fileError(
      source,
      'unsupported or unrecognised image format (expected PNG, JPEG, TIFF, WebP or BMP)',
    );
  }
  if (format === 'bmp') {
    const size = bmpSize(head);
    if (!size) throw fileError(source, 'corrupt or truncated BMP image (header cut short)');
    return { format, ...size };
  }
  let meta: Metadata;
  try {
    // Header only: libvips opens images lazily, metadata() decodes no pixels.
    const sharp = await loadSharp();
    meta = await sharp(input, { limitInputPixels: false }).metadata();
  } catch (err) {
    const msg = (err instanceof Error ? err.message : String(err)).split('\n')[0].trim();
    throw fileError(source, `corrupt or truncated ${format} image (${msg})`, err);
  }
  const width = meta.autoOrient?.width ?? meta.width ?? 0;
  const height = meta.autoOrient?.height ?? meta.height ?? 0;
  return { format, width, height };
}

/** The header of an image file (reads its first 64 KB; sharp reads what else it needs). */
export async function readImageHeader(path: string): Promise<ImageHeader> {
  let head: Uint8Array;
  try {
    const fh = await open(path, 'r');
    try {
      const buf = Buffer.alloc(65536);
      const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
      head = buf.subarray(0, bytesRead);
    } finally {
      await fh.close();
    }
  } catch (err) {
    throw fsError(path, err);
  }
  return decodeImageHeader(head, path, path);
}
