/**
 * Writing model folders: each file goes to a temporary name in the same folder, is flushed,
 * and is renamed into place; config.json comes last, so a folder with a config.json is complete.
 */

import { closeSync, fsyncSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { makeDirsSync } from '@dif-fusion/io';
import type { SerializedModel } from './graph';

function writeAtomic(path: string, chunks: Uint8Array[]): void {
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

/** Write `model.onnx` (+ external data) and `config.json` into `dir` (created if needed). */
export function writeModelFolder(dir: string, model: SerializedModel, config: object): void {
  makeDirsSync(dir);
  // A stale config.json would describe a half-written folder: remove it first.
  rmSync(join(dir, 'config.json'), { force: true });
  if (model.externalData)
    writeAtomic(join(dir, model.externalData.location), model.externalData.chunks);
  else rmSync(join(dir, 'model.onnx.data'), { force: true });
  writeAtomic(join(dir, 'model.onnx'), [model.model]);
  writeAtomic(join(dir, 'config.json'), [
    new TextEncoder().encode(`${JSON.stringify(config, null, 2)}\n`),
  ]);
}

/** Write a single model file (+ its external data beside it, when there is any), atomically. */
export function writeModelFile(file: string, model: SerializedModel): void {
  makeDirsSync(dirname(file));
  if (model.externalData)
    writeAtomic(join(dirname(file), model.externalData.location), model.externalData.chunks);
  writeAtomic(file, [model.model]);
}
