/**
 * Image decode/encode. Layout of an {@link Image}: interleaved HWC, row-major, top row first:
 * the value of channel c at (x, y) is `data[(y * width + x) * channels + c]`. 8-bit images use
 * Uint8Array, 16-bit images (thermal TIFF/PNG) Uint16Array. Alpha is always dropped; palette
 * images are expanded; EXIF orientation is applied, so width/height are as displayed.
 */
import { readFile } from 'node:fs/promises';
import { decode as decodeBmpTs } from 'bmp-ts';
import { writeFileAtomic } from './atomic';
import { DifFusionError, fileError, fsError } from './errors';
import { formatFromPath, type ImageFormat } from './image-format';
import {
  CorruptImageError,
  checkPixelLimit,
  decodeImageHeader,
  readImageHeader,
} from './image-header';
import { loadSharp } from './sharp-lazy';

export interface Image {
  width: number;
  height: number;
  /** 1 (gray) or 3 (RGB). */
  channels: 1 | 3;
  bitDepth: 8 | 16;
  /** Interleaved HWC, length width * height * channels. */
  data: Uint8Array | Uint16Array;
}

export interface ReadImageOptions {
  /**
   * 1: gray (RGB is converted with MATLAB's rgb2gray weights, or taken as-is when its
   * channels are equal); 3: RGB (gray is replicated). Default: as stored (1 or 3).
   */
  channels?: 1 | 3;
  /**
   * Refuse images with more pixels than this, from the header, before decoding anything
   * (default DEFAULT_MAX_PIXELS, 50 MP; Infinity: no limit).
   */
  maxPixels?: number;
  /**
   * Damaged data (a corrupt JPEG scan, a truncated TIFF or PNG) is an error
   * ({@link CorruptImageError}) unless this is true: then the image is decoded as far as the
   * decoder can recover it and `onWarning` gets the one-line problem.
   */
  allowCorrupt?: boolean;
  /** Receives one line (naming the file) per image read with `allowCorrupt` despite damage. */
  onWarning?: (message: string) => void;
}

/** Read and decode an image file. Errors are one line naming the file. */
export async function readImage(path: string, options: ReadImageOptions = {}): Promise<Image> {
  // The header first, so an oversized image is refused without reading the whole file.
  checkPixelLimit(await readImageHeader(path), path, options.maxPixels);
  let buf: Buffer;
  try {
    buf = await readFile(path);
  } catch (err) {
    throw fsError(path, err);
  }
  return decodeImage(buf, path, options);
}

/**
 * Decode an encoded image (PNG, JPEG, TIFF 8/16-bit, WebP, BMP, GIF first frame).
 * `source` names the file in error messages. The header is checked against
 * `options.maxPixels` before any pixel is decoded.
 */
export async function decodeImage(
  buf: Uint8Array,
  source = '<buffer>',
  options: ReadImageOptions = {},
): Promise<Image> {
  const { format, ...size } = await decodeImageHeader(buf, source);
  if (size.width === 0 || size.height === 0)
    throw fileError(source, `zero-size image (${size.width}x${size.height})`);
  checkPixelLimit(size, source, options.maxPixels);
  let img: Image;
  if (format === 'bmp') img = decodeBmp(buf, source);
  else {
    const notes: string[] = [];
    try {
      img = await decodeWithSharp(buf, source, format, false, notes);
    } catch (err) {
      if (!(err instanceof CorruptImageError) || !options.allowCorrupt) throw err;
      // Decode again as far as the decoder can recover: the damaged part comes out gray or
      // smeared, which the user asked to accept.
      img = await decodeWithSharp(buf, source, format, true);
      options.onWarning?.(`${err.message}; read anyway (allow corrupt)`);
    }
    for (const n of notes) options.onWarning?.(n);
  }
  if (img.width === 0 || img.height === 0) {
    throw fileError(source, `zero-size image (${img.width}x${img.height})`);
  }
  return options.channels ? toChannels(img, options.channels) : img;
}

const SAMPLE_KINDS: Record<string, string> = {
  uint: '32-bit integer',
  int: '32-bit integer',
  float: '32-bit float',
  double: '64-bit float',
  complex: 'complex',
  dpcomplex: 'complex',
};

/**
 * Decoder warnings that mean damaged pixel data (libjpeg "Corrupt JPEG data: ...", "premature
 * end of JPEG image"; libtiff/libpng truncation). Other warnings (unknown TIFF tags, an
 * incorrect sRGB profile) are about metadata and are ignored: failing on every warning
 * (sharp's failOn 'warning') would refuse many valid thermal-camera TIFFs.
 */
const CORRUPT_WARNING = /corrupt|premature end|truncat|read error/i;

/**
 * Decodes with sharp. Strict (`lenient` false): decoder errors and corruption warnings throw
 * {@link CorruptImageError}. Lenient: failOn 'none', whatever the decoder recovers.
 * Note: a corrupt JPEG scan is detectable only where it breaks the entropy code's structure
 * (a stray marker, a code longer than 16 bits); random bytes that happen to form valid
 * Huffman codes decode without any warning, in every JPEG decoder.
 */
async function decodeWithSharp(
  buf: Uint8Array,
  source: string,
  format: ImageFormat,
  lenient: boolean,
  notes: string[] = [],
): Promise<Image> {
  const failOn = lenient ? 'none' : 'error';
  const warnings: string[] = [];
  const sharp = await loadSharp();
  try {
    const input = sharp(buf, { failOn, limitInputPixels: false });
    const meta = await input.metadata();
    if (!meta.width || !meta.height) {
      throw fileError(source, `zero-size image (${meta.width ?? 0}x${meta.height ?? 0})`);
    }
    // What is silently left out: say it (the caller's onWarning).
    if ((meta.pages ?? 1) > 1)
      notes.push(`${source}: animated ${format} with ${meta.pages} frames: only the first is used`);
    else if (format === 'png' && isAnimatedPng(buf))
      notes.push(`${source}: animated PNG: only the first frame is used`);
    // (a GIF always decodes with an alpha channel: only a non-opaque one is worth a word)
    if (
      meta.hasAlpha &&
      !(await sharp(buf, { failOn: 'none', limitInputPixels: meta.width * meta.height }).stats())
        .isOpaque
    )
      notes.push(
        `${source}: the alpha channel is dropped (transparent pixels keep their stored colour)`,
      );
    const sixteen = meta.depth === 'ushort' || meta.depth === 'short';
    if (!sixteen && meta.depth !== undefined && meta.depth !== 'uchar' && meta.depth !== 'char') {
      // e.g. radiometric 32-bit float TIFF: casting to 8 bits would silently clip it
      const kind = SAMPLE_KINDS[meta.depth] ?? meta.depth;
      throw fileError(
        source,
        `unsupported ${format} with ${kind} samples (8- or 16-bit integer images only)`,
      );
    }
    const gray =
      meta.space === 'b-w' ||
      meta.space === 'grey16' ||
      (!meta.isPalette && (meta.channels ?? 3) <= 2);
    const space = gray ? (sixteen ? 'grey16' : 'b-w') : sixteen ? 'rgb16' : 'srgb';
    // The header was checked against the caller's limit; this bounds what the decoder may
    // allocate should the header have lied.
    const decoder = sharp(buf, { failOn, limitInputPixels: meta.width * meta.height });
    decoder.on('warning', (w: string) => warnings.push(String(w).trim()));
    const { data, info } = await decoder
      .autoOrient()
      .removeAlpha()
      .toColourspace(space)
      .raw({ depth: sixteen ? 'ushort' : 'uchar' })
      .toBuffer({ resolveWithObject: true });
    const damage = warnings.find((w) => CORRUPT_WARNING.test(w));
    if (damage && !lenient)
      throw new CorruptImageError(source, format, damage.replace(/^Vips\w+:\s*/, ''));
    const channels = info.channels === 1 ? 1 : 3;
    let pixels: Uint8Array | Uint16Array;
    if (sixteen) {
      pixels = new Uint16Array(data.byteLength / 2);
      new Uint8Array(pixels.buffer).set(data);
    } else {
      pixels = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    }
    if (info.channels !== 1 && info.channels !== 3) {
      // e.g. CMYK JPEG: sharp converts to sRGB above, so this is unexpected
      throw fileError(source, `unsupported ${format} with ${info.channels} channels`);
    }
    return {
      width: info.width,
      height: info.height,
      channels,
      bitDepth: sixteen ? 16 : 8,
      data: pixels,
    };
  } catch (err) {
    if (err instanceof DifFusionError) throw err;
    const msg = (err instanceof Error ? err.message : String(err)).split('\n')[0].trim();
    throw new CorruptImageError(source, format, msg.replace(/^Vips\w+:\s*/, ''), err);
  }
}

/** An APNG: an `acTL` chunk before the first `IDAT` (sharp decodes only the first frame). */
function isAnimatedPng(buf: Uint8Array): boolean {
  const v = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  for (let p = 8; p + 8 <= buf.byteLength; ) {
    const len = v.getUint32(p);
    const type = String.fromCharCode(buf[p + 4], buf[p + 5], buf[p + 6], buf[p + 7]);
    if (type === 'acTL') return true;
    if (type === 'IDAT') return false;
    p += 12 + len;
  }
  return false;
}

/** What a BMP header promises against the file's length, for a truncated file. */
function bmpTruncated(buf: Uint8Array): string {
  if (buf.byteLength < 30) return `truncated: ${buf.byteLength} bytes, shorter than a BMP header`;
  const v = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const w = v.getInt32(18, true);
  const h = Math.abs(v.getInt32(22, true));
  const bpp = v.getUint16(28, true);
  return `truncated or inconsistent: the header says ${w}x${h} at ${bpp} bits per pixel, the file holds ${buf.byteLength} bytes`;
}

function decodeBmp(buf: Uint8Array, source: string): Image {
  let dec: {
    width: number;
    height: number;
    data: Uint8Array;
    bitPP?: number;
    compression?: number;
  };
  try {
    // bmp-ts's native pixel order is ABGR. Its `toRGBA` option is not honoured by the 4- and
    // 8-bit palette paths (they always write ABGR), so we ask for ABGR and reorder ourselves.
    dec = decodeBmpTs(Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength), { toRGBA: false });
  } catch (err) {
    const code = (err as { code?: string }).code;
    // Node's buffer range errors ("The value of "offset" is out of range...") mean the file
    // ends before what its header describes: say that, not Node's words.
    const msg =
      err instanceof RangeError ||
      code === 'ERR_OUT_OF_RANGE' ||
      code === 'ERR_BUFFER_OUT_OF_BOUNDS'
        ? bmpTruncated(buf)
        : (err instanceof Error ? err.message : String(err)).split('\n')[0];
    throw fileError(source, `corrupt or unsupported BMP image (${msg})`, err);
  }
  const { width, height } = dec;
  if (!width || !height) throw fileError(source, `zero-size image (${width}x${height})`);
  // bmp-ts mis-places RLE-decoded pixels: refuse rather than return a scrambled image.
  if (dec.compression === 1 || dec.compression === 2) {
    throw fileError(source, 'unsupported BMP: RLE-compressed BMP files are not supported');
  }
  const n = width * height;
  if (!dec.data || dec.data.length < n * 4)
    throw fileError(source, 'corrupt or truncated BMP image');
  const rgb = new Uint8Array(n * 3);
  let gray = true;
  for (let i = 0; i < n; i++) {
    const r = dec.data[i * 4 + 3];
    const g = dec.data[i * 4 + 2];
    const b = dec.data[i * 4 + 1];
    rgb[i * 3] = r;
    rgb[i * 3 + 1] = g;
    rgb[i * 3 + 2] = b;
    if (r !== g || g !== b) gray = false;
  }
  // 8-bit and lower BMPs with a gray palette are gray images.
  if (gray && (dec.bitPP ?? 24) <= 8) {
    const g = new Uint8Array(n);
    for (let i = 0; i < n; i++) g[i] = rgb[i * 3];
    return { width, height, channels: 1, bitDepth: 8, data: g };
  }
  return { width, height, channels: 3, bitDepth: 8, data: rgb };
}

/** True when a 3-channel image has R = G = B everywhere. */
export function channelsEqual(img: Image): boolean {
  if (img.channels === 1) return true;
  const d = img.data;
  for (let i = 0; i < d.length; i += 3) if (d[i] !== d[i + 1] || d[i] !== d[i + 2]) return false;
  return true;
}

/** MATLAB rgb2gray weights. */
export const RGB2GRAY_WEIGHTS = [0.298936021293775, 0.587043074451121, 0.114020904255103] as const;

/**
 * Convert to 1 or 3 channels: gray → RGB replicates; RGB → gray takes one channel when all
 * are equal, otherwise MATLAB's rgb2gray (weights {@link RGB2GRAY_WEIGHTS}, rounded).
 */
export function toChannels(img: Image, channels: 1 | 3): Image {
  if (img.channels === channels) return img;
  const n = img.width * img.height;
  const out = img.bitDepth === 16 ? new Uint16Array(n * channels) : new Uint8Array(n * channels);
  const d = img.data;
  if (channels === 3) {
    for (let i = 0; i < n; i++) out[i * 3] = out[i * 3 + 1] = out[i * 3 + 2] = d[i];
  } else {
    const [wr, wg, wb] = RGB2GRAY_WEIGHTS;
    const max = img.bitDepth === 16 ? 65535 : 255;
    for (let i = 0; i < n; i++) {
      const r = d[i * 3];
      const g = d[i * 3 + 1];
      const b = d[i * 3 + 2];
      out[i] = r === g && g === b ? r : Math.min(max, Math.round(wr * r + wg * g + wb * b));
    }
  }
  return { ...img, channels, data: out };
}

export interface WriteImageOptions {
  /** JPEG/WebP quality 1..100 (default 95; WebP is lossless unless quality is given). */
  quality?: number;
  /** Force a format instead of the file extension's. */
  format?: ImageFormat;
}

/**
 * Encode an image. PNG and TIFF (deflate, lossless) keep 16-bit images; JPEG, WebP and BMP
 * are 8-bit only.
 */
export async function encodeImage(
  img: Image,
  format: ImageFormat,
  options: WriteImageOptions = {},
): Promise<Buffer> {
  validateImage(img);
  if (img.bitDepth === 16 && format !== 'png' && format !== 'tiff') {
    throw new DifFusionError(`16-bit images can be written as PNG or TIFF only, not ${format}`);
  }
  if (format === 'bmp') return encodeBmp(img);
  const raw = img.data;
  const sharp = await loadSharp();
  let s = sharp(raw, {
    raw: { width: img.width, height: img.height, channels: img.channels },
  });
  if (img.bitDepth === 16) s = s.toColourspace(img.channels === 1 ? 'grey16' : 'rgb16');
  else if (img.channels === 1) s = s.toColourspace('b-w');
  switch (format) {
    case 'png':
      return s.png({ compressionLevel: 6 }).toBuffer();
    case 'jpeg':
      return s.jpeg({ quality: options.quality ?? 95, chromaSubsampling: '4:4:4' }).toBuffer();
    case 'tiff':
      return s.tiff({ compression: 'deflate' }).toBuffer();
    case 'webp':
      return options.quality === undefined
        ? s.webp({ lossless: true }).toBuffer()
        : s.webp({ quality: options.quality }).toBuffer();
    case 'gif':
      return s.gif().toBuffer();
  }
}

/** Encode and write atomically; the format comes from the extension (or options.format). */
export async function writeImage(
  path: string,
  img: Image,
  options: WriteImageOptions = {},
): Promise<void> {
  const format = options.format ?? formatFromPath(path);
  let buf: Buffer;
  try {
    buf = await encodeImage(img, format, options);
  } catch (err) {
    if (err instanceof DifFusionError) throw fileError(path, err.message, err);
    throw fileError(path, `cannot encode ${format}: ${(err as Error).message}`, err);
  }
  await writeFileAtomic(path, buf);
}

export function validateImage(img: Image): void {
  const { width, height, channels, bitDepth, data } = img;
  if (!Number.isInteger(width) || !Number.isInteger(height) || width <= 0 || height <= 0) {
    throw new DifFusionError(`zero-size or invalid image size ${width}x${height}`);
  }
  if (channels !== 1 && channels !== 3)
    throw new DifFusionError(`images have 1 or 3 channels, not ${channels}`);
  if (bitDepth === 8 ? !(data instanceof Uint8Array) : !(data instanceof Uint16Array)) {
    throw new DifFusionError(
      `${bitDepth}-bit image needs ${bitDepth === 8 ? 'Uint8Array' : 'Uint16Array'} data`,
    );
  }
  if (data.length !== width * height * channels) {
    throw new DifFusionError(
      `image data has ${data.length} values, ${width}x${height}x${channels} needs ${width * height * channels}`,
    );
  }
}

/**
 * Minimal BMP writer: 24-bit BGR for RGB, 8-bit with a gray palette for gray
 * (BITMAPINFOHEADER, bottom-up rows padded to 4 bytes).
 */
export function encodeBmp(img: Image): Buffer {
  validateImage(img);
  if (img.bitDepth !== 8) throw new DifFusionError('BMP output is 8-bit only');
  const { width, height, channels, data } = img;
  const bpp = channels === 3 ? 24 : 8;
  const rowBytes = Math.ceil((width * bpp) / 32) * 4;
  const paletteBytes = channels === 1 ? 256 * 4 : 0;
  const offset = 14 + 40 + paletteBytes;
  const size = offset + rowBytes * height;
  const b = Buffer.alloc(size);
  b.write('BM', 0, 'ascii');
  b.writeUInt32LE(size, 2);
  b.writeUInt32LE(offset, 10);
  b.writeUInt32LE(40, 14);
  b.writeInt32LE(width, 18);
  b.writeInt32LE(height, 22);
  b.writeUInt16LE(1, 26);
  b.writeUInt16LE(bpp, 28);
  b.writeUInt32LE(0, 30);
  b.writeUInt32LE(rowBytes * height, 34);
  b.writeInt32LE(2835, 38);
  b.writeInt32LE(2835, 42);
  b.writeUInt32LE(channels === 1 ? 256 : 0, 46);
  if (channels === 1) {
    for (let i = 0; i < 256; i++) {
      b[54 + i * 4] = i;
      b[54 + i * 4 + 1] = i;
      b[54 + i * 4 + 2] = i;
    }
  }
  for (let y = 0; y < height; y++) {
    const row = offset + (height - 1 - y) * rowBytes;
    for (let x = 0; x < width; x++) {
      const p = y * width + x;
      if (channels === 3) {
        b[row + x * 3] = data[p * 3 + 2];
        b[row + x * 3 + 1] = data[p * 3 + 1];
        b[row + x * 3 + 2] = data[p * 3];
      } else {
        b[row + x] = data[p];
      }
    }
  }
  return b;
}
