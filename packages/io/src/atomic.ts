import { randomBytes } from 'node:crypto';
import {
  closeSync,
  fsyncSync,
  openSync,
  readdirSync,
  renameSync,
  rmSync,
  writeSync,
} from 'node:fs';
import { open, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { makeDirs, makeDirsSync } from './dirs';
import { DifFusionError, fsError } from './errors';

function tempPath(path: string): string {
  return join(
    dirname(path),
    `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`,
  );
}

type Data = Uint8Array | string | readonly Uint8Array[];

function chunks(data: Data): Uint8Array[] {
  if (typeof data === 'string') return [Buffer.from(data, 'utf8')];
  if (data instanceof Uint8Array) return [data];
  return [...data];
}

/**
 * Write a file atomically: the data goes to a temporary file beside `path`, is flushed
 * to disk, then renamed over `path`, so readers see the old file or the new one, never a
 * partial one. Creates the parent folder. `data` may be a list of chunks (no concatenation).
 */
export async function writeFileAtomic(path: string, data: Data): Promise<void> {
  const tmp = tempPath(path);
  try {
    await makeDirs(dirname(path));
    const fh = await open(tmp, 'w');
    try {
      for (const c of chunks(data)) {
        let off = 0;
        while (off < c.byteLength) {
          const { bytesWritten } = await fh.write(c, off, c.byteLength - off);
          off += bytesWritten;
        }
      }
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true }).catch(() => {});
    throw err instanceof DifFusionError ? err : fsError(path, err);
  }
}

/** Synchronous {@link writeFileAtomic}. */
export function writeFileAtomicSync(path: string, data: Data): void {
  const tmp = tempPath(path);
  try {
    makeDirsSync(dirname(path));
    const fd = openSync(tmp, 'w');
    try {
      for (const c of chunks(data)) {
        let off = 0;
        while (off < c.byteLength) off += writeSync(fd, c, off, c.byteLength - off);
      }
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err instanceof DifFusionError ? err : fsError(path, err);
  }
}

/** `.NAME.PID.RAND.tmp`, as {@link writeFileAtomic} names its temporary files. */
const TEMP_NAME = /^\.(.+)\.(\d+)\.([0-9a-f]{8})\.tmp$/;

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: it exists but belongs to someone else
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Removes the temporary files of atomic writes that were killed before their rename
 * (`.NAME.PID.RAND.tmp` whose process is gone) from `dir`, not recursively. Files of live
 * processes (another run writing into the same folder) are kept. Returns the removed paths;
 * a missing folder has none.
 */
export function removeStaleTempFiles(dir: string): string[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw fsError(dir, err, 'folder');
  }
  const removed: string[] = [];
  for (const name of names) {
    const m = TEMP_NAME.exec(name);
    if (!m) continue;
    const pid = Number(m[2]);
    if (pid === process.pid || processAlive(pid)) continue;
    const path = join(dir, name);
    try {
      rmSync(path, { force: true });
      removed.push(path);
    } catch {
      // not ours to remove (permissions): leave it
    }
  }
  return removed;
}
