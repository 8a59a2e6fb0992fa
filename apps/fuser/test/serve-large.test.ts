/**
 * `dif-fuse serve` with camera-size photos: the default pixel limit follows the memory (a 12 MP
 * photo fits a machine with ~3 GB to spare), large pairs are fused in tiles as the CLI's
 * --tile auto, and the pixels held by waiting and running requests are bounded.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, describe, expect, it } from 'vitest';
import {
  defaultServeMaxPixels,
  SERVE_BYTES_PER_PIXEL,
  type ServeOptions,
} from '../src/serve/server';
import { APP_DIR } from './helpers';
import { form, type Running, startServer } from './serve-helpers';

/** A 12 MP pair of flat regions (PNG): infrared white on the left half, black on the right;
 * visible one colour (40, 90, 160). */
async function photoPair(w: number, h: number): Promise<{ ir: Buffer; vis: Buffer }> {
  const ir = Buffer.alloc(w * h);
  for (let y = 0; y < h; y++) ir.fill(255, y * w, y * w + w / 2);
  const vis = Buffer.alloc(w * h * 3);
  for (let i = 0; i < w * h; i++) vis.set([40, 90, 160], i * 3);
  const png = (data: Buffer, channels: 1 | 3) =>
    sharp(data, { raw: { width: w, height: h, channels } })
      .png({ compressionLevel: 1 })
      .toBuffer();
  return { ir: await png(ir, 1), vis: await png(vis, 3) };
}

const servers: Running[] = [];
afterAll(async () => {
  for (const s of servers) await s.close();
});

/** POSTs a form to a listening server (multipart needs a real socket). */
async function post(s: Running, path: string, body: FormData) {
  const res = await fetch(`${s.url}${path}`, { method: 'POST', body });
  return { status: res.status, headers: res.headers, body: Buffer.from(await res.arrayBuffer()) };
}

async function start(opts: ServeOptions): Promise<Running> {
  const s = await startServer(opts);
  servers.push(s);
  return s;
}

describe('serve: camera-size photos', () => {
  it('the default limit follows the memory: 4 to 24 MP, 12 MP from ~2.9 GB', () => {
    expect(SERVE_BYTES_PER_PIXEL).toBe(120);
    expect(defaultServeMaxPixels(0.5e9)).toBe(4e6);
    expect(defaultServeMaxPixels(2.9e9)).toBe(12e6);
    expect(defaultServeMaxPixels(3e9)).toBe(12.5e6);
    expect(defaultServeMaxPixels(64e9)).toBe(24e6);
  });

  it('a 4000x3000 pair is fused in tiles, as the CLI, at its full size with known values', async () => {
    const s = await start({ memoryBytes: 3e9 });
    const info = await (await fetch(`${s.url}/api/info`)).json();
    expect(info.limits).toEqual({ maxUploadBytes: 50e6, maxPixels: 12.5e6 });
    const W = 4000;
    const H = 3000;
    const { ir, vis } = await photoPair(W, H);
    const r = await post(
      s,
      '/api/fuse',
      form({ ir: ['photo-ir.png', ir], vis: ['photo-vi.png', vis] }, { method: 'max' }),
    );
    expect(r.status, r.body.toString().slice(0, 300)).toBe(200);
    expect(Number(r.headers.get('x-fuse-tiles'))).toBeGreaterThan(1);
    const { data, info: out } = await sharp(r.body).raw().toBuffer({ resolveWithObject: true });
    expect([out.width, out.height, out.channels]).toEqual([W, H, 3]);
    // max(infrared, visible) per channel, across the tile seams (512 px tiles)
    for (const [x, y] of [
      [10, 10],
      [511, 700],
      [1500, 1024],
      [1999, 2999],
    ])
      expect(Array.from(data.subarray((y * W + x) * 3, (y * W + x) * 3 + 3))).toEqual([
        255, 255, 255,
      ]);
    for (const [x, y] of [
      [2000, 0],
      [2500, 1500],
      [3999, 2999],
    ])
      expect(Array.from(data.subarray((y * W + x) * 3, (y * W + x) * 3 + 3))).toEqual([
        40, 90, 160,
      ]);
  }, 120_000);

  it('the pixels held by requests are bounded: a pair past the bound gets 503 before decoding', async () => {
    // 100x100 pairs, a bound of 1.5 pairs: the second waiting pair is refused
    const s = await start({ maxPixels: 1e4, memoryBytes: 1.5e4 * SERVE_BYTES_PER_PIXEL });
    const { ir, vis } = await photoPair(100, 100);
    const pair = () =>
      form({ ir: ['a.png', ir], vis: ['b.png', vis] }, { method: 'max', baseline: 'none' });
    let open!: () => void;
    const hold = s.engine.lane('max').run(() => new Promise<void>((r) => (open = r)));
    let first: Awaited<ReturnType<typeof post>>;
    try {
      first = await post(s, '/api/jobs', pair());
      expect(first.status, first.body.toString()).toBe(202);
      const second = await post(s, '/api/jobs', pair());
      expect(second.status).toBe(503);
      expect(JSON.parse(second.body.toString()).error).toMatch(
        /^the server is busy: the images waiting and being fused hold 0\.0 MP, and this pair's 0\.0 MP would pass its memory bound/,
      );
    } finally {
      open(); // the lane is free again, whatever failed
    }
    await hold;
    const id = JSON.parse(first.body.toString()).id;
    for (let i = 0; i < 300; i++) {
      const st = await (await fetch(`${s.url}/api/jobs/${id}`)).json();
      if (st.state === 'done') break;
      expect(st.state).not.toBe('error');
      await new Promise((r) => setTimeout(r, 100));
    }
    expect((await post(s, '/api/jobs', pair())).status).toBe(202);
  }, 60_000);

  it('the page announces progress to screen readers and marks a result that is not of the images picked', () => {
    const html = readFileSync(join(APP_DIR, 'src', 'serve', 'page', 'index.html'), 'utf8');
    expect(html).toMatch(/<p class="sr-only" id="announce" role="status" aria-live="polite"/);
    expect(html).toMatch(/role="progressbar"/);
    expect(html).toMatch(/<p class="stale-note" id="stale-note" hidden>/);
  });
});
