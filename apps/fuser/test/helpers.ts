import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';

export const APP_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const CLI = join(APP_DIR, 'dist', 'cli.js');
export const REPO = resolve(APP_DIR, '..', '..');

export function tmp(prefix = 'dif-fuse-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the BUILT binary (turbo builds before test). */
export function dif(args: string[], env: Record<string, string | undefined> = {}): Run {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run pnpm build first`);
  const r = spawnSync(process.execPath, [CLI, ...args], {
    encoding: 'utf8',
    env: { ...process.env, DIF_FUSION_DEBUG: '', ...env },
    timeout: 300_000,
  });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** Small seeded generator for test images. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Writes a random-ish smooth image (gradient + noise) and returns its interleaved pixels. */
export async function writeTestImage(
  path: string,
  width: number,
  height: number,
  channels: 1 | 3,
  seed = 1,
  depth: 8 | 16 = 8,
): Promise<Uint8Array | Uint16Array> {
  const r = rng(seed);
  const max = depth === 16 ? 65535 : 255;
  const n = width * height * channels;
  const data = depth === 16 ? new Uint16Array(n) : new Uint8Array(n);
  for (let y = 0; y < height; y++)
    for (let x = 0; x < width; x++)
      for (let c = 0; c < channels; c++) {
        const v = 0.5 * ((x + y * (c + 1)) / (width + height * 3)) + 0.5 * r();
        data[(y * width + x) * channels + c] = Math.round(Math.min(1, v) * max);
      }
  let s = sharp(Buffer.from(data.buffer, data.byteOffset, data.byteLength), {
    raw: { width, height, channels },
  });
  if (depth === 16) s = s.toColourspace(channels === 1 ? 'grey16' : 'rgb16');
  else if (channels === 1) s = s.toColourspace('b-w');
  const ext = path.split('.').pop();
  if (ext === 'jpg') await s.jpeg({ quality: 95 }).toFile(path);
  else if (ext === 'tif') await s.tiff().toFile(path);
  else await s.png().toFile(path);
  return data;
}

/** Decodes an 8-bit output to interleaved RGB. */
export async function readRgb(
  path: string,
): Promise<{ data: Uint8Array; width: number; height: number; channels: number }> {
  const { data, info } = await sharp(path).raw().toBuffer({ resolveWithObject: true });
  return {
    data: new Uint8Array(data),
    width: info.width,
    height: info.height,
    channels: info.channels,
  };
}

/** A one-line error: exit code non-zero, exactly one stderr line starting `error: `, no stack. */
export function expectOneLineError(r: Run, pattern: RegExp, expect: any): void {
  expect(r.code).not.toBe(0);
  const lines = r.stderr.split('\n').filter((l) => l.trim() !== '');
  expect(lines, r.stderr).toHaveLength(1);
  expect(lines[0]).toMatch(/^error: /);
  expect(lines[0]).toMatch(pattern);
  expect(r.stderr).not.toMatch(/\n\s+at /);
}

/** A smooth scene of blurred rectangles on infrared coordinates (u, v), 0..1. */
export function scene(u: number, v: number, modality: 'ir' | 'vis'): number {
  const edge = (t: number) => 1 / (1 + Math.exp(-t / 1.2));
  const box = (x0: number, y0: number, x1: number, y1: number) =>
    edge(u - x0) * edge(x1 - u) * edge(v - y0) * edge(y1 - v);
  const a = box(30, 20, 70, 60);
  const b = box(85, 30, 125, 45);
  const c = box(50, 70, 110, 100);
  const d = box(100, 55, 115, 95);
  return modality === 'ir'
    ? 0.1 + 0.7 * a + 0.4 * b + 0.2 * c + 0.5 * d
    : 0.8 - 0.5 * a + 0.3 * b - 0.4 * c + 0.15 * d;
}

export async function writeGray(
  path: string,
  w: number,
  h: number,
  f: (x: number, y: number) => number,
) {
  const data = new Uint8Array(w * h);
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++)
      data[y * w + x] = Math.round(255 * Math.min(1, Math.max(0, f(x, y))));
  await sharp(data, { raw: { width: w, height: h, channels: 1 } })
    .png()
    .toFile(path);
}

/**
 * A rig's pair of the scene: a 160x128 infrared image and a 240x200 visible one at twice its
 * resolution (other contrasts), visible (x, y) -> infrared (x / 2 + 20, y / 2 + 14).
 */
export async function writeScenePair(ir: string, vis: string): Promise<void> {
  await writeGray(ir, 160, 128, (x, y) => scene(x, y, 'ir'));
  await writeGray(vis, 240, 200, (x, y) => scene(x / 2 + 20, y / 2 + 14, 'vis'));
}

/** The ground truth of writeScenePair. */
export const SCENE_VIS_TO_IR = [0.5, 0, 20, 0, 0.5, 14, 0, 0, 1];

/** RMS distance between where two vis -> ir transforms put the corners of a w x h footprint. */
export function cornerRms(a: number[], b: number[], w: number, h: number): number {
  let se = 0;
  for (const [x, y] of [
    [-0.5, -0.5],
    [w - 0.5, -0.5],
    [w - 0.5, h - 0.5],
    [-0.5, h - 0.5],
  ]) {
    const p = (m: number[]) => {
      const d = m[6] * x + m[7] * y + m[8];
      return [(m[0] * x + m[1] * y + m[2]) / d, (m[3] * x + m[4] * y + m[5]) / d];
    };
    const [u, v] = p(a);
    const [U, V] = p(b);
    se += (u - U) ** 2 + (v - V) ** 2;
  }
  return Math.sqrt(se / 4);
}
