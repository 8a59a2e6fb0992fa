/**
 * Infrared/visible pair datasets: a folder with `ir/` and `vi/` (or `infrared/` and
 * `visible/`, any letter case) whose files are matched by file stem (`0001.png` ↔ `0001.jpg`).
 */
import { readdir, stat } from 'node:fs/promises';
import { extname, join } from 'node:path';
import { type FloatImage, floatToImage, imageToFloat } from './convert';
import { DifFusionError, fileError, fsError } from './errors';
import { resizeBilinear } from './geometry';
import { type Image, readImage, toChannels } from './image';
import { isImageFile } from './image-format';

export interface ImagePair {
  /** The shared file stem. */
  name: string;
  ir: string;
  vi: string;
}

export interface PairScan {
  root: string;
  irDir: string;
  viDir: string;
  /** Sorted by name. */
  pairs: ImagePair[];
  /** File names (not paths) with no partner. */
  unmatchedIr: string[];
  unmatchedVi: string[];
}

const IR_NAMES = ['ir', 'infrared'];
const VI_NAMES = ['vi', 'vis', 'visible'];

async function listDir(path: string): Promise<string[]> {
  try {
    return await readdir(path);
  } catch (err) {
    throw fsError(path, err, 'folder');
  }
}

async function findSub(root: string, entries: string[], names: string[]): Promise<string | null> {
  for (const want of names) {
    const hit = entries.find((e) => e.toLowerCase() === want);
    if (!hit) continue;
    // a broken link or unreadable entry is not a sub-folder
    const st = await stat(join(root, hit)).catch(() => null);
    if (st?.isDirectory()) return join(root, hit);
  }
  return null;
}

function stem(name: string): string {
  return name.slice(0, name.length - extname(name).length);
}

async function imagesByStem(dir: string): Promise<Map<string, string>> {
  // Hidden files are skipped: macOS leaves `._name.png` resource forks beside the images.
  const files = (await listDir(dir)).filter((f) => !f.startsWith('.') && isImageFile(f)).sort();
  const map = new Map<string, string>();
  for (const f of files) {
    const s = stem(f);
    const prev = map.get(s);
    if (prev) throw fileError(dir, `two images share the name '${s}': ${prev} and ${f}`);
    map.set(s, f);
  }
  return map;
}

/**
 * Find the pairs of a dataset folder. Unmatched files are returned by name (report them);
 * no pairs at all is an error.
 */
export async function scanPairs(root: string): Promise<PairScan> {
  const entries = await listDir(root);
  const irDir = await findSub(root, entries, IR_NAMES);
  const viDir = await findSub(root, entries, VI_NAMES);
  if (!irDir || !viDir) {
    throw fileError(
      root,
      `expected sub-folders ir/ and vi/ (or infrared/ and visible/); found ${irDir ? 'an IR folder but no visible folder' : viDir ? 'a visible folder but no IR folder' : 'neither'}`,
    );
  }
  const ir = await imagesByStem(irDir);
  const vi = await imagesByStem(viDir);
  const pairs: ImagePair[] = [];
  const unmatchedIr: string[] = [];
  for (const [s, f] of ir) {
    const v = vi.get(s);
    if (v) pairs.push({ name: s, ir: join(irDir, f), vi: join(viDir, v) });
    else unmatchedIr.push(f);
  }
  const unmatchedVi = [...vi].filter(([s]) => !ir.has(s)).map(([, f]) => f);
  pairs.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  if (pairs.length === 0) {
    throw fileError(
      root,
      `no infrared/visible pairs: ${ir.size} image(s) in ${irDir}, ${vi.size} in ${viDir}, none share a file name`,
    );
  }
  return { root, irDir, viDir, pairs, unmatchedIr, unmatchedVi };
}

/** One line per side listing unmatched files, or [] when everything paired. */
export function describeUnmatched(scan: PairScan, max = 10): string[] {
  const line = (dir: string, files: string[]) =>
    `${dir}: ${files.length} file(s) without a partner: ${files.slice(0, max).join(', ')}${files.length > max ? ', ...' : ''}`;
  const out: string[] = [];
  if (scan.unmatchedIr.length) out.push(line(scan.irDir, scan.unmatchedIr));
  if (scan.unmatchedVi.length) out.push(line(scan.viDir, scan.unmatchedVi));
  return out;
}

export interface PairImages {
  name: string;
  irPath: string;
  viPath: string;
  /** 1 channel. */
  ir: Image;
  /** 3 channels (a gray visible image is replicated). */
  vi: Image;
}

export interface LoadPairOptions {
  /** Resize the IR image to the visible image's size when they differ (default: error). */
  resize?: boolean;
}

/** Resize an integer image (bilinear, rounded). */
export function resizeImage(img: Image, width: number, height: number): Image {
  return floatToImage(resizeBilinear(imageToFloat(img), width, height), img.bitDepth);
}

/**
 * Read both images of a pair. A 3-channel IR whose channels are equal is taken as gray
 * (otherwise it is converted with MATLAB's rgb2gray); sizes must match unless `resize`.
 */
export async function readPair(
  pair: ImagePair,
  options: LoadPairOptions = {},
): Promise<PairImages> {
  const [irRaw, viRaw] = await Promise.all([readImage(pair.ir), readImage(pair.vi)]);
  let ir = toChannels(irRaw, 1); // equal channels are taken as they are, else rgb2gray
  const vi = toChannels(viRaw, 3);
  if (ir.width !== vi.width || ir.height !== vi.height) {
    if (!options.resize) {
      throw new DifFusionError(
        `size mismatch: ${pair.ir} is ${ir.width}x${ir.height} but ${pair.vi} is ${vi.width}x${vi.height} (resize opt-in: resize IR to the visible size)`,
        { path: pair.ir },
      );
    }
    ir = resizeImage(ir, vi.width, vi.height);
  }
  return { name: pair.name, irPath: pair.ir, viPath: pair.vi, ir, vi };
}

export interface FloatPair {
  name: string;
  /** [1, H, W] in [-1, 1]. */
  ir: FloatImage;
  /** [3, H, W] in [-1, 1]. */
  vi: FloatImage;
}

/** Pair images as planar floats in [-1, 1]. */
export function pairToFloat(p: PairImages): FloatPair {
  return { name: p.name, ir: imageToFloat(p.ir), vi: imageToFloat(p.vi) };
}

/** A scanned dataset that decodes pairs on demand (and keeps them when `cache`). */
export class PairDataset {
  readonly scan: PairScan;
  private readonly options: LoadPairOptions & { cache: boolean };
  private readonly cache = new Map<number, Promise<PairImages>>();

  private constructor(scan: PairScan, options: LoadPairOptions & { cache: boolean }) {
    this.scan = scan;
    this.options = options;
  }

  /** Scan `root` (see {@link scanPairs}). `cache` (default true) keeps decoded 8/16-bit images. */
  static async open(
    root: string,
    options: LoadPairOptions & { cache?: boolean } = {},
  ): Promise<PairDataset> {
    return new PairDataset(await scanPairs(root), { ...options, cache: options.cache ?? true });
  }

  get length(): number {
    return this.scan.pairs.length;
  }

  get pairs(): readonly ImagePair[] {
    return this.scan.pairs;
  }

  get(index: number): Promise<PairImages> {
    const pair = this.scan.pairs[index];
    if (!pair) throw new RangeError(`pair index ${index} outside 0..${this.length - 1}`);
    if (!this.options.cache) return readPair(pair, this.options);
    let p = this.cache.get(index);
    if (!p) {
      p = readPair(pair, this.options);
      p.catch(() => this.cache.delete(index));
      this.cache.set(index, p);
    }
    return p;
  }
}
