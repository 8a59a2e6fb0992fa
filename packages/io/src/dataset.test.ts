import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  describeUnmatched,
  PairDataset,
  pairToFloat,
  readPair,
  resizeImage,
  scanPairs,
} from './dataset';
import { DifFusionError } from './errors';
import { type Image, writeImage } from './image';

const root = mkdtempSync(join(tmpdir(), 'dif-io-ds-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

function gray(width: number, height: number, seed = 0): Image {
  const data = new Uint8Array(width * height);
  for (let i = 0; i < data.length; i++) data[i] = (i * 29 + seed) % 256;
  return { width, height, channels: 1, bitDepth: 8, data };
}

function rgb(width: number, height: number, seed = 0): Image {
  const data = new Uint8Array(width * height * 3);
  for (let i = 0; i < data.length; i++) data[i] = (i * 41 + seed) % 256;
  return { width, height, channels: 3, bitDepth: 8, data };
}

/** Gray image stored as 3 equal channels (what many IR datasets ship). */
function grayAsRgb(g: Image): Image {
  const data = new Uint8Array(g.data.length * 3);
  for (let i = 0; i < g.data.length; i++)
    data[i * 3] = data[i * 3 + 1] = data[i * 3 + 2] = g.data[i];
  return { ...g, channels: 3, data };
}

async function errorOf(fn: () => unknown): Promise<string> {
  try {
    await fn();
  } catch (err) {
    expect(err).toBeInstanceOf(DifFusionError);
    const msg = (err as Error).message;
    expect(msg).not.toContain('\n');
    return msg;
  }
  throw new Error('expected an error');
}

const A = join(root, 'a'); // ir/ + vi/
const B = join(root, 'b'); // Infrared/ + Visible/

beforeAll(async () => {
  await writeImage(join(A, 'ir', '0001.png'), grayAsRgb(gray(6, 4, 1))); // 3 equal channels
  await writeImage(join(A, 'vi', '0001.jpg'), rgb(6, 4, 2));
  await writeImage(join(A, 'ir', '0002.png'), rgb(5, 3, 3)); // real colour IR → rgb2gray
  await writeImage(join(A, 'vi', '0002.png'), gray(5, 3, 4)); // gray visible → replicated
  await writeImage(join(A, 'ir', 'only-ir.png'), gray(2, 2));
  await writeImage(join(A, 'vi', 'only-vi.bmp'), rgb(2, 2));
  await writeImage(join(A, 'ir', '0003.tif'), gray(4, 4, 5));
  await writeImage(join(A, 'vi', '0003.webp'), rgb(4, 4, 6));
  writeFileSync(join(A, 'ir', 'notes.txt'), 'not an image');
  writeFileSync(join(A, 'ir', '._0001.png'), 'macOS resource fork'); // hidden: skipped
  writeFileSync(join(A, 'vi', '._0001.png'), 'macOS resource fork');
  await writeImage(join(B, 'Infrared', 'x.png'), gray(3, 3));
  await writeImage(join(B, 'Visible', 'x.png'), rgb(3, 3));
});

describe('scanPairs', () => {
  it('matches ir/ and vi/ by file stem and reports unmatched files by name', async () => {
    const scan = await scanPairs(A);
    expect(scan.irDir).toBe(join(A, 'ir'));
    expect(scan.viDir).toBe(join(A, 'vi'));
    expect(scan.pairs).toEqual([
      { name: '0001', ir: join(A, 'ir', '0001.png'), vi: join(A, 'vi', '0001.jpg') },
      { name: '0002', ir: join(A, 'ir', '0002.png'), vi: join(A, 'vi', '0002.png') },
      { name: '0003', ir: join(A, 'ir', '0003.tif'), vi: join(A, 'vi', '0003.webp') },
    ]);
    expect(scan.unmatchedIr).toEqual(['only-ir.png']); // notes.txt, ._0001.png skipped
    expect(scan.unmatchedVi).toEqual(['only-vi.bmp']);
    expect(describeUnmatched(scan)).toEqual([
      `${join(A, 'ir')}: 1 file(s) without a partner: only-ir.png`,
      `${join(A, 'vi')}: 1 file(s) without a partner: only-vi.bmp`,
    ]);
  });

  it('accepts infrared/ and visible/ in any letter case', async () => {
    const scan = await scanPairs(B);
    expect(scan.pairs.map((p) => p.name)).toEqual(['x']);
    expect(scan.irDir).toBe(join(B, 'Infrared'));
    expect(describeUnmatched(scan)).toEqual([]);
  });

  it('a folder with no pairs is a one-line error naming it', async () => {
    const c = join(root, 'nopairs');
    await writeImage(join(c, 'ir', 'a.png'), gray(2, 2));
    await writeImage(join(c, 'vi', 'b.png'), gray(2, 2));
    const msg = await errorOf(() => scanPairs(c));
    expect(msg).toBe(
      `${c}: no infrared/visible pairs: 1 image(s) in ${join(c, 'ir')}, 1 in ${join(c, 'vi')}, none share a file name`,
    );
  });

  it('missing folders and sub-folders, duplicate stems', async () => {
    const missing = join(root, 'missing');
    expect(await errorOf(() => scanPairs(missing))).toBe(`${missing}: no such folder`);
    const onlyIr = join(root, 'only-ir');
    mkdirSync(join(onlyIr, 'ir'), { recursive: true });
    expect(await errorOf(() => scanPairs(onlyIr))).toMatch(
      new RegExp(`^${onlyIr}: expected sub-folders ir/ and vi/ .*an IR folder but no visible`),
    );
    const dup = join(root, 'dup');
    await writeImage(join(dup, 'ir', 'a.png'), gray(2, 2));
    await writeImage(join(dup, 'ir', 'a.jpg'), gray(2, 2));
    await writeImage(join(dup, 'vi', 'a.png'), gray(2, 2));
    expect(await errorOf(() => scanPairs(dup))).toBe(
      `${join(dup, 'ir')}: two images share the name 'a': a.jpg and a.png`,
    );
  });
});

describe('readPair', () => {
  it('IR with 3 equal channels is gray (values unchanged); visible is RGB', async () => {
    const scan = await scanPairs(A);
    const p = await readPair(scan.pairs[0]);
    expect(p.ir.channels).toBe(1);
    expect(Array.from(p.ir.data)).toEqual(Array.from(gray(6, 4, 1).data));
    expect(p.vi.channels).toBe(3);
    expect([p.vi.width, p.vi.height]).toEqual([6, 4]);
  });

  it("colour IR goes through MATLAB's rgb2gray; a gray visible image is replicated", async () => {
    const scan = await scanPairs(A);
    const p = await readPair(scan.pairs[1]);
    const src = rgb(5, 3, 3).data;
    const w = [0.298936021293775, 0.587043074451121, 0.114020904255103];
    const want = Array.from({ length: 15 }, (_, i) =>
      Math.round(w[0] * src[i * 3] + w[1] * src[i * 3 + 1] + w[2] * src[i * 3 + 2]),
    );
    expect(Array.from(p.ir.data)).toEqual(want);
    const g = gray(5, 3, 4).data;
    expect(Array.from(p.vi.data.subarray(0, 6))).toEqual([g[0], g[0], g[0], g[1], g[1], g[1]]);
    const f = pairToFloat(p);
    expect([f.ir.channels, f.vi.channels]).toEqual([1, 3]);
    expect(f.ir.data[0]).toBeCloseTo((want[0] / 255) * 2 - 1, 6);
  });

  it('a size mismatch names both files and sizes; resize is opt-in', async () => {
    const c = join(root, 'mismatch');
    const ir = join(c, 'ir', 'm.png');
    const vi = join(c, 'vi', 'm.png');
    await writeImage(ir, {
      width: 2,
      height: 1,
      channels: 1,
      bitDepth: 8,
      data: Uint8Array.of(0, 255),
    });
    await writeImage(vi, rgb(4, 1));
    const [pair] = (await scanPairs(c)).pairs;
    const msg = await errorOf(() => readPair(pair));
    expect(msg).toBe(
      `size mismatch: ${ir} is 2x1 but ${vi} is 4x1 (resize opt-in: resize IR to the visible size)`,
    );
    const r = await readPair(pair, { resize: true });
    // bilinear, half-pixel centres: sample points -0.25 (clamped), 0.25, 0.75, 1.25 (clamped)
    expect(Array.from(r.ir.data)).toEqual([0, 64, 191, 255]);
    expect([r.ir.width, r.ir.height]).toEqual([4, 1]);
  });
});

describe('resizeImage', () => {
  it('keeps constant images and bit depth', () => {
    const img: Image = {
      width: 3,
      height: 2,
      channels: 1,
      bitDepth: 16,
      data: new Uint16Array(6).fill(40000),
    };
    const r = resizeImage(img, 5, 7);
    expect(r.bitDepth).toBe(16);
    expect(Array.from(r.data)).toEqual(new Array(35).fill(40000));
  });
});

describe('PairDataset', () => {
  it('opens, counts, decodes on demand and caches', async () => {
    const ds = await PairDataset.open(A);
    expect(ds.length).toBe(3);
    expect(ds.pairs.map((p) => p.name)).toEqual(['0001', '0002', '0003']);
    const a = await ds.get(2);
    expect(a.name).toBe('0003');
    expect(Array.from(a.ir.data)).toEqual(Array.from(gray(4, 4, 5).data)); // TIFF, lossless
    expect(Array.from(a.vi.data)).toEqual(Array.from(rgb(4, 4, 6).data)); // lossless WebP
    expect(await ds.get(2)).toBe(a);
    expect(() => ds.get(3)).toThrow(RangeError);
    const nc = await PairDataset.open(A, { cache: false });
    expect(await nc.get(0)).not.toBe(await nc.get(0));
  });
});
