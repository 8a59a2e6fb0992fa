/**
 * Creating a folder and its missing parents, one level at a time. Node's own
 * `mkdir(..., { recursive: true })` never returns for a path whose parent cannot hold folders
 * but answers ENOENT (`/proc/forbidden/x`: it retries the parent for ever); here every level
 * is one plain mkdir, and the first failure ends it.
 */
import { mkdirSync, statSync } from 'node:fs';
import { mkdir, stat } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { fileError } from './errors';

function folderError(dir: string, err: unknown): Error {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return fileError(dir, `cannot create the folder (${code ?? String(err)})`, err);
}

/** The folders to create, outermost first (empty when `dir` exists). */
function missing(dir: string, exists: (d: string) => boolean | 'file'): string[] {
  const out: string[] = [];
  let d = resolve(dir);
  for (;;) {
    const e = exists(d);
    if (e === 'file') throw fileError(d, 'not a folder (a file is in the way)');
    if (e) break;
    out.push(d);
    const parent = dirname(d);
    if (parent === d) break;
    d = parent;
  }
  return out.reverse();
}

/** `mkdir -p` that ends: creates `dir` and its missing parents, or throws one clear error. */
export function makeDirsSync(dir: string): void {
  const todo = missing(dir, (d) => {
    try {
      return statSync(d).isDirectory() || 'file';
    } catch {
      return false;
    }
  });
  for (const d of todo)
    try {
      mkdirSync(d);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw folderError(d, err);
    }
}

/** Asynchronous {@link makeDirsSync}. */
export async function makeDirs(dir: string): Promise<void> {
  const seen = new Map<string, boolean | 'file'>();
  // stat each level first (async), then walk them as makeDirsSync does
  let d = resolve(dir);
  for (;;) {
    const e = await stat(d).then(
      (s) => s.isDirectory() || ('file' as const),
      () => false,
    );
    seen.set(d, e);
    if (e) break;
    const parent = dirname(d);
    if (parent === d) break;
    d = parent;
  }
  for (const m of missing(dir, (x) => seen.get(x) ?? false))
    try {
      await mkdir(m);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw folderError(m, err);
    }
}
