/**
 * Test helper: where the shared golden files and data live (../shared beside the repo,
 * or DIF_FUSION_SHARED). Tests that need them skip with a clear message when absent.
 */
import { existsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

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
