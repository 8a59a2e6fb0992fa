/**
 * Test helper: where the shared golden files and data live (../shared beside the repo,
 * or DIF_FUSION_SHARED). Tests that need them skip with a clear message when absent.
 */
import { existsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Rng } from '../packages/schedules/src/rng';

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const SHARED_DIR = process.env.DIF_FUSION_SHARED ?? resolve(REPO_ROOT, '..', 'shared');
export const GOLDEN_DIR = resolve(SHARED_DIR, 'golden');
export const DATA_DIR = resolve(SHARED_DIR, 'data');

export const hasGolden = existsSync(resolve(GOLDEN_DIR, 'README.md'));
export const hasData = existsSync(resolve(DATA_DIR, 'roadscene'));

export function golden(name: string): string {
  return resolve(GOLDEN_DIR, name);
}

/** Prints why a suite is skipped, once. Use: describe.skipIf(!hasGolden)(...); noteSkip(hasGolden, 'golden'). */
export function noteSkip(present: boolean, what: 'golden' | 'data'): void {
  if (!present)
    console.warn(
      `[skip] ${what === 'golden' ? GOLDEN_DIR : DATA_DIR} not found: tests needing ../shared/${what} are skipped (set DIF_FUSION_SHARED to point elsewhere)`,
    );
}

/** Max absolute error over max absolute reference value (the golden files' tolerance measure). */
export function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    num = Math.max(num, Math.abs(a[i] - b[i]));
    den = Math.max(den, Math.abs(b[i]));
  }
  return den === 0 ? num : num / den;
}

/** Seeded normal draws (schedules' Rng) of a shape, times `scale`: test inputs and weights. */
export function randn(shape: number[], seed: number, scale = 1): Float32Array {
  const rng = new Rng(seed);
  const n = shape.reduce((a, b) => a * b, 1);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = rng.normal() * scale;
  return out;
}
