/**
 * The page's files, read once into memory from the build output (<package>/dist/public). The
 * server answers only these names, from this table: no request path ever reaches the file
 * system, so no path can lead outside the assets.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface Asset {
  type: string;
  body: Buffer;
}

/** URL path -> file in the public folder, and its content type. */
const FILES: Record<string, [string, string]> = {
  '/': ['index.html', 'text/html; charset=utf-8'],
  '/app.js': ['app.js', 'text/javascript; charset=utf-8'],
  '/style.css': ['style.css', 'text/css; charset=utf-8'],
  '/favicon.svg': ['favicon.svg', 'image/svg+xml'],
  '/samples/ir.png': ['samples/ir.png', 'image/png'],
  '/samples/vi.png': ['samples/vi.png', 'image/png'],
};

/** <package>/dist/public, from dist/cli.js (built) or src/serve/assets.ts (tests on sources). */
export function publicDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) break;
    dir = up;
  }
  return join(dir, 'dist', 'public');
}

/** The page's files; throws one line when the build output is missing. */
export function loadAssets(dir = publicDir()): Map<string, Asset> {
  const out = new Map<string, Asset>();
  for (const [url, [file, type]] of Object.entries(FILES)) {
    const path = join(dir, file);
    if (!existsSync(path))
      throw new Error(`${path}: the page's files are missing; build the fuser (pnpm build)`);
    out.set(url, { type, body: readFileSync(path) });
  }
  return out;
}
