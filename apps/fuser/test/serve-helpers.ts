/** Shared set-up of the `dif-fuse serve` tests: a server on a free port and small test pairs. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { floatToImage } from '@dif-fusion/io';
import sharp from 'sharp';
import { fuseImages, openFuser } from '../src/fuse';
import { readPair } from '../src/images';
import type { Method } from '../src/methods';
import { createServer, type Served, type ServeOptions } from '../src/serve/server';
import { APP_DIR, tmp, writeTestImage } from './helpers';

export const SAMPLES = join(APP_DIR, 'dist', 'public', 'samples');

export interface Running extends Served {
  url: string;
}

export async function startServer(opts: ServeOptions = {}): Promise<Running> {
  const served = createServer(opts);
  const address = await served.app.listen({ port: 0, host: '127.0.0.1' });
  return { ...served, url: address };
}

export interface PairFiles {
  ir: string;
  vis: string;
}

/** n test pairs of w x h PNGs (each pair different), in a temporary folder. */
export async function makePairs(n: number, w = 64, h = 48): Promise<PairFiles[]> {
  const dir = tmp('dif-serve-');
  const out: PairFiles[] = [];
  for (let i = 0; i < n; i++) {
    const ir = join(dir, `ir-${i}.png`);
    const vis = join(dir, `vi-${i}.png`);
    await writeTestImage(ir, w, h, 1, 100 + i);
    await writeTestImage(vis, w, h, 3, 200 + i);
    out.push({ ir, vis });
  }
  return out;
}

/** A multipart form with the given files (path or [name, bytes]) and fields. */
export function form(
  files: Record<string, string | [string, Uint8Array]>,
  fields: Record<string, string> = {},
): FormData {
  const f = new FormData();
  for (const [k, v] of Object.entries(fields)) f.append(k, v);
  for (const [k, v] of Object.entries(files)) {
    const [name, bytes] = typeof v === 'string' ? [v.split('/').pop()!, readFileSync(v)] : v;
    f.append(k, new Blob([new Uint8Array(bytes)]), name);
  }
  return f;
}

/** What the CLI pipeline makes of a pair: interleaved 8-bit RGB of the fused image. */
export async function referenceFusion(pair: PairFiles, method: Method): Promise<Uint8Array> {
  const { ir, vis } = await readPair(pair.ir, pair.vis);
  const opened = await openFuser({ method });
  try {
    return floatToImage(await fuseImages(ir, vis, opened), 8).data as Uint8Array;
  } finally {
    await opened.release();
  }
}

/** Decodes PNG bytes to interleaved 8-bit pixels. */
export async function decodePng(
  bytes: Uint8Array,
): Promise<{ data: Uint8Array; width: number; height: number; channels: number }> {
  const { data, info } = await sharp(bytes).raw().toBuffer({ resolveWithObject: true });
  return {
    data: new Uint8Array(data),
    width: info.width,
    height: info.height,
    channels: info.channels,
  };
}
