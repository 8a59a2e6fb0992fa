/**
 * Hostile and damaged images, made here by hand: decompression bombs refused from their header
 * before any pixel is decoded, corrupt data refused (or read with a warning when allowed).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, describe, expect, it } from 'vitest';
import { decodeImage, readImage } from './image';
import {
  CorruptImageError,
  DEFAULT_MAX_PIXELS,
  ImageTooLargeError,
  readImageHeader,
} from './image-header';

const dir = mkdtempSync(join(tmpdir(), 'dif-io-limits-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A smooth 8-bit RGB image as raw bytes. */
function smooth(width: number, height: number): Buffer {
  const b = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y++)
    for (let x = 0; x < width; x++) {
      const p = (y * width + x) * 3;
      b[p] = (x * 4) & 255;
      b[p + 1] = (y * 4) & 255;
      b[p + 2] = ((x + y) * 2) & 255;
    }
  return b;
}

const raw = (w: number, h: number) => ({ raw: { width: w, height: h, channels: 3 as const } });

/** Offset of the JPEG segment with marker `m` (0xC0 SOF0, 0xDA SOS). */
function segment(jpg: Buffer, m: number): number {
  for (let i = 2; i < jpg.length; ) {
    if (jpg[i + 1] === m) return i;
    i += 2 + jpg.readUInt16BE(i + 2);
  }
  throw new Error(`no marker ${m.toString(16)}`);
}

/** CRC-32 (PNG's polynomial), bitwise: the test needs it for one 13-byte chunk. */
function crc32(b: Uint8Array): number {
  let c = ~0;
  for (const v of b) {
    c ^= v;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0xedb88320 : c >>> 1;
  }
  return ~c >>> 0;
}

/** Minimal baseline TIFF with its IFD before the pixels (as cameras write): 8-bit gray, one strip. */
function tiffIfdFirst(w: number, h: number, extraTag?: [number, number]): Buffer {
  const tags: [number, number, number][] = [
    [256, 3, w],
    [257, 3, h],
    [258, 3, 8],
    [259, 3, 1],
    [262, 3, 1],
    [273, 4, 0],
    [277, 3, 1],
    [278, 3, h],
    [279, 4, w * h],
  ];
  if (extraTag) tags.push([extraTag[0], 3, extraTag[1]]);
  const dataOff = 8 + 2 + tags.length * 12 + 4;
  const b = Buffer.alloc(dataOff + w * h);
  b.write('II', 0, 'ascii');
  b.writeUInt16LE(42, 2);
  b.writeUInt32LE(8, 4);
  b.writeUInt16LE(tags.length, 8);
  tags.forEach(([tag, type, val], i) => {
    const o = 10 + i * 12;
    b.writeUInt16LE(tag, o);
    b.writeUInt16LE(type, o + 2);
    b.writeUInt32LE(1, o + 4);
    const v = tag === 273 ? dataOff : val;
    if (type === 3) b.writeUInt16LE(v, o + 8);
    else b.writeUInt32LE(v, o + 8);
  });
  for (let i = 0; i < w * h; i++) b[dataOff + i] = (i * 7) & 255;
  return b;
}

describe('decompression bombs are refused from the header', () => {
  it('a 14 KB JPEG claiming 65000x65000: one line, nothing decoded', async () => {
    const jpg = Buffer.from(await sharp(smooth(128, 128), raw(128, 128)).jpeg().toBuffer());
    const sof = segment(jpg, 0xc0);
    jpg.writeUInt16BE(65000, sof + 5);
    jpg.writeUInt16BE(65000, sof + 7);
    const p = join(dir, 'bomb.jpg');
    writeFileSync(p, jpg);
    expect(await readImageHeader(p)).toEqual({ format: 'jpeg', width: 65000, height: 65000 });
    const err = await readImage(p).catch((e) => e);
    expect(err).toBeInstanceOf(ImageTooLargeError);
    expect(err.message).toBe(
      `${p}: image is 65000x65000 (4225 MP), above the limit of 50 MP; not decoded`,
    );
    // The buffer path checks the same header.
    await expect(decodeImage(jpg, 'bytes.jpg')).rejects.toThrow(/^bytes\.jpg: image is 65000x/);
  });

  it('a PNG whose IHDR claims 20000x20000 is refused before inflating', async () => {
    const png = Buffer.from(await sharp(smooth(16, 16), raw(16, 16)).png().toBuffer());
    png.writeUInt32BE(20000, 16);
    png.writeUInt32BE(20000, 20);
    png.writeUInt32BE(crc32(png.subarray(12, 29)), 29);
    const p = join(dir, 'bomb.png');
    writeFileSync(p, png);
    expect(await readImageHeader(p)).toMatchObject({ width: 20000, height: 20000 });
    await expect(readImage(p)).rejects.toThrow(
      `${p}: image is 20000x20000 (400 MP), above the limit of 50 MP; not decoded`,
    );
  });

  it('maxPixels moves the limit both ways', async () => {
    const p = join(dir, 'ok.png');
    await sharp(smooth(100, 80), raw(100, 80)).png().toFile(p);
    await expect(readImage(p, { maxPixels: 7999 })).rejects.toThrow(
      'image is 100x80 (0.1 MP), above the limit of 0.1 MP',
    );
    expect((await readImage(p, { maxPixels: 8000 })).width).toBe(100);
    expect(DEFAULT_MAX_PIXELS).toBe(50e6);
  });

  it('headers report the displayed size (EXIF orientation 6 swaps width and height)', async () => {
    const p = join(dir, 'rot.jpg');
    await sharp(smooth(30, 20), raw(30, 20)).jpeg().withMetadata({ orientation: 6 }).toFile(p);
    expect(await readImageHeader(p)).toEqual({ format: 'jpeg', width: 20, height: 30 });
    const bmp = join(dir, 'h.bmp');
    const { encodeBmp } = await import('./image');
    writeFileSync(
      bmp,
      encodeBmp({ width: 7, height: 5, channels: 1, bitDepth: 8, data: new Uint8Array(35) }),
    );
    expect(await readImageHeader(bmp)).toEqual({ format: 'bmp', width: 7, height: 5 });
  });
});

describe('corrupt images are errors naming the file, or warnings when allowed', () => {
  /** A JPEG with 300 bytes of its scan data overwritten, among them a stray marker (FF 17). */
  async function corruptJpeg(): Promise<Buffer> {
    const jpg = Buffer.from(
      await sharp(smooth(128, 128), raw(128, 128)).jpeg({ quality: 90 }).toBuffer(),
    );
    const scan = segment(jpg, 0xda) + 2 + jpg.readUInt16BE(segment(jpg, 0xda) + 2);
    let s = 12345;
    for (let k = 0; k < 300; k++) {
      s = (s * 1103515245 + 12345) % 2 ** 31;
      jpg[scan + 200 + k] = (s >>> 16) & 0xfe; // never 0xFF except where placed below
    }
    jpg[scan + 350] = 0xff;
    jpg[scan + 351] = 0x17;
    return jpg;
  }

  it('JPEG with random bytes in its scan data', async () => {
    const p = join(dir, 'corrupt.jpg');
    writeFileSync(p, await corruptJpeg());
    const err = await readImage(p).catch((e) => e);
    expect(err).toBeInstanceOf(CorruptImageError);
    expect(err.message).toBe(
      `${p}: corrupt or truncated jpeg image (Corrupt JPEG data: premature end of data segment)`,
    );
    const warnings: string[] = [];
    const img = await readImage(p, { allowCorrupt: true, onWarning: (w) => warnings.push(w) });
    expect([img.width, img.height, img.channels]).toEqual([128, 128, 3]);
    expect(warnings).toEqual([`${err.message}; read anyway (allow corrupt)`]);
  });

  it('TIFF cut in half (IFD first, pixels missing)', async () => {
    const full = tiffIfdFirst(64, 64);
    const whole = await decodeImage(full, 'whole.tif');
    expect(whole.data[100]).toBe((100 * 7) & 255);
    const p = join(dir, 'half.tif');
    writeFileSync(p, full.subarray(0, full.length >> 1));
    await expect(readImage(p)).rejects.toThrow(
      new RegExp(`^${p}: corrupt or truncated tiff image \\(.*Read error`),
    );
    const warnings: string[] = [];
    const img = await readImage(p, { allowCorrupt: true, onWarning: (w) => warnings.push(w) });
    expect([img.width, img.height]).toEqual([64, 64]);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(new RegExp(`^${p}: corrupt or truncated tiff image`));
  });

  it('metadata warnings (an unknown private TIFF tag) are not corruption', async () => {
    const warnings: string[] = [];
    const img = await decodeImage(tiffIfdFirst(8, 8, [65000, 3]), 'tagged.tif', {
      onWarning: (w) => warnings.push(w),
    });
    expect(img.data[9]).toBe(63);
    expect(warnings).toEqual([]);
  });
});
