import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encode as encodeBmpTs } from 'bmp-ts';
import sharp from 'sharp';
import { afterAll, describe, expect, it } from 'vitest';
import { DifFusionError } from './errors';
import {
  channelsEqual,
  decodeImage,
  encodeBmp,
  encodeImage,
  type Image,
  readImage,
  toChannels,
  writeImage,
} from './image';
import { formatFromPath, sniffFormat } from './image-format';

const dir = mkdtempSync(join(tmpdir(), 'dif-io-img-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Deterministic test image: every pixel and channel different (W, H small, values < 256). */
function rgb8(width: number, height: number): Image {
  const data = new Uint8Array(width * height * 3);
  for (let i = 0; i < data.length; i++) data[i] = (i * 37 + 11) % 256;
  return { width, height, channels: 3, bitDepth: 8, data };
}

function gray8(width: number, height: number): Image {
  const data = new Uint8Array(width * height);
  for (let i = 0; i < data.length; i++) data[i] = (i * 53 + 7) % 256;
  return { width, height, channels: 1, bitDepth: 8, data };
}

function gray16(width: number, height: number): Image {
  const data = new Uint16Array(width * height);
  for (let i = 0; i < data.length; i++) data[i] = (i * 4099 + 257) % 65536;
  return { width, height, channels: 1, bitDepth: 16, data };
}

function rgb16(width: number, height: number): Image {
  const data = new Uint16Array(width * height * 3);
  for (let i = 0; i < data.length; i++) data[i] = (i * 7919 + 3) % 65536;
  return { width, height, channels: 3, bitDepth: 16, data };
}

/** Smooth image, for lossy codecs. */
function smoothRgb(width: number, height: number): Image {
  const data = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const p = (y * width + x) * 3;
      data[p] = Math.round((255 * x) / (width - 1));
      data[p + 1] = Math.round((255 * y) / (height - 1));
      data[p + 2] = 128;
    }
  }
  return { width, height, channels: 3, bitDepth: 8, data };
}

function expectSame(got: Image, want: Image): void {
  expect({ w: got.width, h: got.height, c: got.channels, d: got.bitDepth }).toEqual({
    w: want.width,
    h: want.height,
    c: want.channels,
    d: want.bitDepth,
  });
  expect(got.data.constructor).toBe(want.data.constructor);
  expect(Array.from(got.data)).toEqual(Array.from(want.data));
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** A minimal little-endian 1-row gray TIFF with 32-bit float samples (SampleFormat 3). */
function floatTiff(values: number[]): Buffer {
  const dataAt = 8 + 2 + 10 * 12 + 4;
  const entries: [number, number, number][] = [
    [256, 3, values.length], // ImageWidth
    [257, 3, 1], // ImageLength
    [258, 3, 32], // BitsPerSample
    [259, 3, 1], // Compression: none
    [262, 3, 1], // Photometric: black is zero
    [273, 4, dataAt], // StripOffsets
    [277, 3, 1], // SamplesPerPixel
    [278, 3, 1], // RowsPerStrip
    [279, 4, values.length * 4], // StripByteCounts
    [339, 3, 3], // SampleFormat: IEEE float
  ];
  const b = Buffer.alloc(dataAt + values.length * 4);
  b.write('II', 0, 'ascii');
  b.writeUInt16LE(42, 2);
  b.writeUInt32LE(8, 4);
  b.writeUInt16LE(entries.length, 8);
  entries.forEach(([tag, type, value], i) => {
    const o = 10 + i * 12;
    b.writeUInt16LE(tag, o);
    b.writeUInt16LE(type, o + 2);
    b.writeUInt32LE(1, o + 4);
    if (type === 3) b.writeUInt16LE(value, o + 8);
    else b.writeUInt32LE(value, o + 8);
  });
  values.forEach((v, i) => {
    b.writeFloatLE(v, dataAt + i * 4);
  });
  return b;
}

/** The one-line DifFusionError a promise/function fails with. */
async function errorOf(fn: () => unknown): Promise<DifFusionError> {
  try {
    await fn();
  } catch (err) {
    expect(err).toBeInstanceOf(DifFusionError);
    const msg = (err as Error).message;
    expect(msg).not.toContain('\n');
    return err as DifFusionError;
  }
  throw new Error('expected an error');
}

describe('lossless round trips (encode, then decode)', () => {
  it.each([
    ['png', 'rgb 8-bit', rgb8(7, 5)],
    ['png', 'gray 8-bit', gray8(7, 5)],
    ['png', 'gray 16-bit', gray16(6, 4)],
    ['png', 'rgb 16-bit', rgb16(5, 3)],
    ['tiff', 'rgb 8-bit', rgb8(7, 5)],
    ['tiff', 'gray 8-bit', gray8(7, 5)],
    ['tiff', 'gray 16-bit (thermal camera)', gray16(9, 7)],
    ['tiff', 'rgb 16-bit', rgb16(5, 3)],
    ['webp', 'rgb 8-bit (lossless)', rgb8(7, 5)],
    ['bmp', 'rgb 8-bit (odd width: padded rows)', rgb8(7, 5)],
    ['bmp', 'gray 8-bit (palette)', gray8(5, 3)],
  ] as const)('%s %s', async (format, _what, img) => {
    const buf = await encodeImage(img, format);
    expect(sniffFormat(buf)).toBe(format);
    expectSame(await decodeImage(buf, `x.${format}`), img);
  });

  it('webp has no gray mode: gray comes back as equal RGB, channels: 1 restores it', async () => {
    const img = gray8(6, 4);
    const buf = await encodeImage(img, 'webp');
    const back = await decodeImage(buf);
    expect(back.channels).toBe(3);
    expect(channelsEqual(back)).toBe(true);
    expectSame(await decodeImage(buf, 'g.webp', { channels: 1 }), img);
  });

  it('16-bit TIFF keeps values above 255 (as thermal cameras write them)', async () => {
    const img: Image = {
      width: 3,
      height: 1,
      channels: 1,
      bitDepth: 16,
      data: Uint16Array.from([0, 30000, 65535]),
    };
    const back = await decodeImage(await encodeImage(img, 'tiff'));
    expect(back.bitDepth).toBe(16);
    expect(Array.from(back.data)).toEqual([0, 30000, 65535]);
  });

  it('16-bit images cannot be written as JPEG, WebP or BMP', async () => {
    for (const f of ['jpeg', 'webp', 'bmp'] as const) {
      const err = await errorOf(() => encodeImage(gray16(2, 2), f));
      expect(err.message).toMatch(/16-bit images can be written as PNG or TIFF only/);
    }
  });
});

describe('JPEG (lossy: within a tolerance)', () => {
  it('RGB round trip at quality 95 stays within a few levels', async () => {
    const img = smoothRgb(32, 24);
    const back = await decodeImage(await encodeImage(img, 'jpeg'));
    expect(back.channels).toBe(3);
    expect([back.width, back.height]).toEqual([32, 24]);
    expect(maxAbsDiff(back.data, img.data)).toBeLessThanOrEqual(6);
  });

  it('gray JPEG decodes as one channel', async () => {
    const img: Image = { ...gray8(16, 16), data: new Uint8Array(256).fill(90) };
    const back = await decodeImage(await encodeImage(img, 'jpeg'));
    expect(back.channels).toBe(1);
    expect(maxAbsDiff(back.data, img.data)).toBeLessThanOrEqual(1);
  });
});

describe('what decoding leaves out is said (onWarning)', () => {
  it('an animated GIF: the first frame, with the frame count; an RGBA PNG: alpha dropped', async () => {
    const frame = (v: number) =>
      sharp(Buffer.alloc(6 * 4 * 3, v), { raw: { width: 6, height: 4, channels: 3 } })
        .png()
        .toBuffer();
    const gif = await sharp([await frame(10), await frame(200), await frame(90)], {
      join: { animated: true },
    })
      .gif()
      .toBuffer();
    const notes: string[] = [];
    const img = await decodeImage(gif, 'anim.gif', { onWarning: (w) => notes.push(w) });
    expect([img.width, img.height]).toEqual([6, 4]);
    expect(notes).toEqual(['anim.gif: animated gif with 3 frames: only the first is used']);
    const rgba = await sharp(Buffer.alloc(5 * 3 * 4, 128), {
      raw: { width: 5, height: 3, channels: 4 },
    })
      .png()
      .toBuffer();
    const alpha: string[] = [];
    const a = await decodeImage(rgba, 'rgba.png', { onWarning: (w) => alpha.push(w) });
    expect([a.width, a.height, a.channels]).toEqual([5, 3, 3]);
    expect(alpha).toEqual([
      'rgba.png: the alpha channel is dropped (transparent pixels keep their stored colour)',
    ]);
    // A plain RGB PNG: nothing to say.
    const none: string[] = [];
    await decodeImage(await frame(5), 'rgb.png', { onWarning: (w) => none.push(w) });
    expect(none).toEqual([]);
  });
});

describe('BMP through bmp-ts (a maintained decoder: sharp cannot read BMP)', () => {
  // bmp-ts' encoder takes ABGR bytes per pixel
  function abgr(img: Image, alpha = 255): Buffer {
    const n = img.width * img.height;
    const b = Buffer.alloc(n * 4);
    for (let i = 0; i < n; i++) {
      b[i * 4] = alpha;
      b[i * 4 + 1] = img.data[i * 3 + 2];
      b[i * 4 + 2] = img.data[i * 3 + 1];
      b[i * 4 + 3] = img.data[i * 3];
    }
    return b;
  }

  it('reads a 24-bit BMP written by another encoder', async () => {
    const img = rgb8(5, 3);
    const bmp = encodeBmpTs({ width: 5, height: 3, bitPP: 24, data: abgr(img) }).data;
    expectSame(await decodeImage(bmp, 'a.bmp'), img);
  });

  it('reads a 32-bit BMP and drops its alpha', async () => {
    const img = rgb8(4, 2);
    const bmp = encodeBmpTs({ width: 4, height: 2, bitPP: 32, data: abgr(img, 17) }).data;
    expectSame(await decodeImage(bmp, 'a.bmp'), img);
  });

  it('reads an 8-bit colour-palette BMP (bmp-ts ignores toRGBA there: a fixed bug)', async () => {
    const img = rgb8(3, 2);
    // an 8-bit BMP whose pixels are indices 0..5, then a colour palette (B, G, R, 0 entries)
    const bmp = encodeBmp({ ...gray8(3, 2), data: Uint8Array.from([0, 1, 2, 3, 4, 5]) });
    for (let i = 0; i < 6; i++) {
      bmp[54 + i * 4] = img.data[i * 3 + 2];
      bmp[54 + i * 4 + 1] = img.data[i * 3 + 1];
      bmp[54 + i * 4 + 2] = img.data[i * 3];
    }
    expectSame(await decodeImage(bmp, 'p8.bmp'), img);
  });

  it('a truncated BMP is one line saying so, without Node internals', async () => {
    const img = rgb8(16, 16);
    const bmp = encodeBmpTs({ width: 16, height: 16, bitPP: 24, data: abgr(img) }).data;
    const cut = bmp.subarray(0, 154);
    const err = await errorOf(() => decodeImage(cut, 'cut.bmp'));
    expect(err.message).toBe(
      'cut.bmp: corrupt or unsupported BMP image (truncated or inconsistent: the header says 16x16 at 24 bits per pixel, the file holds 154 bytes)',
    );
    expect(err.message).not.toMatch(/out of range|offset|Received/);
  });

  it('refuses RLE-compressed BMP (bmp-ts scrambles it) with one line', async () => {
    const bmp = encodeBmp(gray8(4, 2));
    bmp.writeUInt32LE(1, 30); // BI_RLE8
    const err = await errorOf(() => decodeImage(bmp, 'rle.bmp'));
    expect(err.message).toMatch(/^rle\.bmp: (unsupported BMP|corrupt)/);
  });

  it('our 8-bit gray BMP has a gray palette and bottom-up rows', () => {
    const bmp = encodeBmp({
      width: 2,
      height: 2,
      channels: 1,
      bitDepth: 8,
      data: Uint8Array.from([1, 2, 3, 4]),
    });
    expect(bmp.readUInt16LE(28)).toBe(8); // bits per pixel
    const offset = bmp.readUInt32LE(10);
    expect(offset).toBe(14 + 40 + 1024);
    expect([...bmp.subarray(54 + 200 * 4, 54 + 200 * 4 + 3)]).toEqual([200, 200, 200]);
    // rows padded to 4 bytes, bottom row first
    expect([...bmp.subarray(offset, offset + 8)]).toEqual([3, 4, 0, 0, 1, 2, 0, 0]);
  });
});

describe('alpha, palette and EXIF orientation', () => {
  it('RGBA: alpha is dropped, colours kept as stored', async () => {
    const rgba = Buffer.from([10, 20, 30, 0, 40, 50, 60, 128, 70, 80, 90, 255, 1, 2, 3, 7]);
    const png = await sharp(rgba, { raw: { width: 2, height: 2, channels: 4 } })
      .png()
      .toBuffer();
    const img = await decodeImage(png, 'rgba.png');
    expect(img.channels).toBe(3);
    expect(Array.from(img.data)).toEqual([10, 20, 30, 40, 50, 60, 70, 80, 90, 1, 2, 3]);
  });

  it('gray + alpha: one channel', async () => {
    const ga = Buffer.from([5, 0, 100, 255, 200, 9]);
    const png = await sharp(ga, { raw: { width: 3, height: 1, channels: 2 } })
      .toColourspace('b-w')
      .png()
      .toBuffer();
    expect((await sharp(png).metadata()).channels).toBe(2);
    const img = await decodeImage(png, 'ga.png');
    expect(img.channels).toBe(1);
    expect(Array.from(img.data)).toEqual([5, 100, 200]);
  });

  it('palette PNG is expanded to its RGB colours', async () => {
    const colours = [
      [255, 0, 0],
      [0, 255, 0],
      [0, 0, 255],
      [255, 255, 255],
    ];
    const raw = Buffer.from(
      Array.from({ length: 16 }, (_, i) => colours[(i + (i >> 2)) % 4]).flat(),
    );
    const png = await sharp(raw, { raw: { width: 4, height: 4, channels: 3 } })
      .png({ palette: true, colours: 4, dither: 0 })
      .toBuffer();
    expect((await sharp(png).metadata()).isPalette).toBe(true);
    const img = await decodeImage(png, 'pal.png');
    expect(img.channels).toBe(3);
    expect(Array.from(img.data)).toEqual([...raw]);
  });

  it('EXIF orientation 6 (rotate 90° clockwise) is applied', async () => {
    // 16x8, left half red, right half blue; displayed it is 8x16, top half red
    const w = 16;
    const h = 8;
    const raw = Buffer.alloc(w * h * 3);
    for (let i = 0; i < w * h; i++) raw.set(i % w < 8 ? [255, 0, 0] : [0, 0, 255], i * 3);
    const jpg = await sharp(raw, { raw: { width: w, height: h, channels: 3 } })
      .jpeg({ quality: 95 })
      .withMetadata({ orientation: 6 })
      .toBuffer();
    expect((await sharp(jpg).metadata()).orientation).toBe(6);
    const img = await decodeImage(jpg, 'rot.jpg');
    expect([img.width, img.height]).toEqual([8, 16]);
    const px = (x: number, y: number) =>
      Array.from(img.data.subarray((y * 8 + x) * 3, (y * 8 + x) * 3 + 3));
    expect(maxAbsDiff(px(4, 3), [255, 0, 0])).toBeLessThan(10);
    expect(maxAbsDiff(px(4, 12), [0, 0, 255])).toBeLessThan(10);
  });
});

describe('channel conversion', () => {
  it('gray → RGB replicates; equal RGB → gray takes the channel; RGB → gray is rgb2gray', () => {
    const g: Image = {
      width: 2,
      height: 1,
      channels: 1,
      bitDepth: 8,
      data: Uint8Array.from([7, 250]),
    };
    const c = toChannels(g, 3);
    expect(Array.from(c.data)).toEqual([7, 7, 7, 250, 250, 250]);
    expect(Array.from(toChannels(c, 1).data)).toEqual([7, 250]);
    // 0.298936021293775*255 = 76.2287 -> 76; 0.587043074451121*255 = 149.696 -> 150
    const rgb: Image = {
      width: 2,
      height: 1,
      channels: 3,
      bitDepth: 8,
      data: Uint8Array.from([255, 0, 0, 0, 255, 0]),
    };
    expect(Array.from(toChannels(rgb, 1).data)).toEqual([76, 150]);
  });

  it('readImage(channels) converts as it decodes', async () => {
    const p = join(dir, 'conv.png');
    await writeImage(p, gray8(3, 2));
    const img = await readImage(p, { channels: 3 });
    expect(img.channels).toBe(3);
    expect(Array.from(img.data.subarray(0, 6))).toEqual([7, 7, 7, 60, 60, 60]);
  });
});

describe('writeImage', () => {
  it('picks the format from the extension, writes atomically, replaces the target', async () => {
    const sub = join(dir, 'w');
    const p = join(sub, 'out.tif');
    await writeImage(p, gray8(4, 4));
    await writeImage(p, gray16(4, 4));
    expect(sniffFormat(readFileSync(p))).toBe('tiff');
    expectSame(await readImage(p), gray16(4, 4));
    expect(readdirSync(sub)).toEqual(['out.tif']);
    for (const [name, f] of [
      ['a.PNG', 'png'],
      ['a.jpeg', 'jpeg'],
      ['a.jpg', 'jpeg'],
      ['a.tiff', 'tiff'],
      ['a.webp', 'webp'],
      ['a.bmp', 'bmp'],
    ] as const) {
      expect(formatFromPath(name)).toBe(f);
    }
  });
});

describe('errors are one line naming the file', () => {
  it('missing file', async () => {
    const p = join(dir, 'nope.png');
    const err = await errorOf(() => readImage(p));
    expect(err.message).toBe(`${p}: no such file`);
  });

  it('empty file', async () => {
    const p = join(dir, 'empty.png');
    writeFileSync(p, '');
    expect((await errorOf(() => readImage(p))).message).toBe(`${p}: empty file, not an image`);
  });

  it('unsupported format (content and extension)', async () => {
    const p = join(dir, 'notes.png');
    writeFileSync(p, 'hello, this is text\nsecond line');
    const err = await errorOf(() => readImage(p));
    expect(err.message).toMatch(new RegExp(`^${p}: unsupported or unrecognised image format`));
    const q = join(dir, 'out.xyz');
    const werr = await errorOf(() => writeImage(q, gray8(2, 2)));
    expect(werr.message).toMatch(new RegExp(`^${q}: unsupported image format '.xyz'`));
  });

  it.each(['png', 'jpeg', 'tiff', 'webp'] as const)('truncated %s', async (format) => {
    const img = format === 'jpeg' ? smoothRgb(64, 64) : rgb8(64, 64);
    const buf = await encodeImage(img, format);
    const p = join(dir, `trunc.${format}`);
    writeFileSync(p, buf.subarray(0, Math.floor(buf.length * 0.6)));
    const err = await errorOf(() => readImage(p));
    expect(err.message).toMatch(new RegExp(`^${p}: corrupt or truncated ${format} image`));
  });

  it('float TIFF (radiometric thermal) is refused instead of silently clipped to 8 bits', async () => {
    const tif = floatTiff([290.5, 300.25, 0.5]);
    expect((await sharp(tif).metadata()).depth).toBe('float');
    const err = await errorOf(() => decodeImage(tif, 'therm.tif'));
    expect(err.message).toBe(
      'therm.tif: unsupported tiff with 32-bit float samples (8- or 16-bit integer images only)',
    );
  });

  it('corrupt BMP', async () => {
    const p = join(dir, 'bad.bmp');
    writeFileSync(p, encodeBmp(rgb8(8, 8)).subarray(0, 40));
    const err = await errorOf(() => readImage(p));
    expect(err.message).toMatch(new RegExp(`^${p}: corrupt`));
  });

  it('zero-size image', async () => {
    // a BMP header that says 0x4
    const bmp = encodeBmp(rgb8(1, 4));
    bmp.writeInt32LE(0, 18);
    const p = join(dir, 'zero.bmp');
    writeFileSync(p, bmp);
    const err = await errorOf(() => readImage(p));
    expect(err.message).toBe(`${p}: zero-size image (0x4)`);
    const q = join(dir, 'zero.png');
    const werr = await errorOf(() =>
      writeImage(q, { width: 0, height: 3, channels: 1, bitDepth: 8, data: new Uint8Array(0) }),
    );
    expect(werr.message).toMatch(new RegExp(`^${q}: zero-size or invalid image size 0x3`));
  });
});
