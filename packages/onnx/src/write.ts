/**
 * Writing model folders: each file goes to a temporary name in the same folder, is flushed,
 * and is renamed into place; config.json comes last, so a folder with a config.json is complete.
 */
import { createHash } from 'node:crypto';
import {
  closeSync,
  existsSync,
  fsyncSync,
  mkdirSync,
  openSync,
  renameSync,
  rmSync,
  writeSync,
} from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import type { SerializedModel } from './graph';

/**
 * mkdir -p one level at a time: Node's recursive mkdir never returns for a parent that
 * answers ENOENT to mkdir (`/proc/x/y`); here the first failing level throws.
 */
export function makeDirs(dir: string): void {
  const todo: string[] = [];
  for (let d = resolve(dir); !existsSync(d); d = dirname(d)) {
    todo.unshift(d);
    if (dirname(d) === d) break;
  }
  for (const d of todo)
    try {
      mkdirSync(d);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST')
        throw new Error(`${d}: cannot create the folder (${(e as NodeJS.ErrnoException).code})`);
    }
}

/** Write `chunks` to a temporary name beside `path`, flush, rename into place. */
export function writeAtomic(path: string, chunks: Uint8Array[]): void {
  const tmp = `${path}.${process.pid}.tmp`;
  const fd = openSync(tmp, 'w');
  try {
    for (const c of chunks) {
      let done = 0;
      while (done < c.byteLength) done += writeSync(fd, c, done, c.byteLength - done);
    }
    fsyncSync(fd);
  } catch (e) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw e;
  }
  closeSync(fd);
  renameSync(tmp, path);
}

/** sha256 of a graph's bytes: model.onnx, then its external data (when there is any). */
export function graphDigest(model: Uint8Array, externalData?: readonly Uint8Array[]): string {
  const h = createHash('sha256').update(model);
  for (const c of externalData ?? []) h.update(c);
  return h.digest('hex');
}

/**
 * Write `model.onnx` (+ external data) and `config.json` into `dir` (created if needed).
 * config.json gets `graph_sha256`, the digest of the graph it was exported with: loading
 * checks it, so a config.json copied beside another export's model.onnx is refused.
 */
export function writeModelFolder<C extends object>(
  dir: string,
  model: SerializedModel,
  config: C,
): C & { graph_sha256: string } {
  makeDirs(dir);
  // A stale config.json would describe a half-written folder: remove it first.
  rmSync(join(dir, 'config.json'), { force: true });
  if (model.externalData)
    writeAtomic(join(dir, model.externalData.location), model.externalData.chunks);
  else rmSync(join(dir, 'model.onnx.data'), { force: true });
  writeAtomic(join(dir, 'model.onnx'), [model.model]);
  const bound = {
    ...config,
    graph_sha256: graphDigest(model.model, model.externalData?.chunks),
  };
  writeAtomic(join(dir, 'config.json'), [
    new TextEncoder().encode(`${JSON.stringify(bound, null, 2)}\n`),
  ]);
  return bound;
}

/** Write a single model file (+ its external data beside it, when there is any), atomically. */
export function writeModelFile(file: string, model: SerializedModel): void {
  makeDirs(dirname(file));
  if (model.externalData)
    writeAtomic(join(dirname(file), model.externalData.location), model.externalData.chunks);
  writeAtomic(file, [model.model]);
}
