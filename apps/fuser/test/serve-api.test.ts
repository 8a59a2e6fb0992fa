/**
 * `dif-fuse serve`'s API over real HTTP: concurrent requests get the CLI pipeline's exact
 * output, one model session serves them one at a time, bad uploads get one-line JSON errors.
 */
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { evaluateFusion } from '@dif-fusion/metrics';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { OpenedFuser } from '../src/fuse';
import {
  CLI,
  cornerRms,
  dif,
  expectOneLineError,
  SCENE_VIS_TO_IR,
  tmp,
  writeScenePair,
} from './helpers';
import {
  decodePng,
  form,
  makePairs,
  type PairFiles,
  type Running,
  referenceFusion,
  SAMPLES,
  startServer,
} from './serve-helpers';

// Counts model sessions opened and model runs in flight, around the real openFuser.
// `hold`, while set, keeps every model run waiting (a deterministic queue).
const probe = vi.hoisted(() => ({
  opens: 0,
  active: 0,
  maxActive: 0,
  runs: 0,
  hold: null as Promise<void> | null,
}));
vi.mock('../src/fuse', async (importOriginal) => {
  const real = await importOriginal<typeof import('../src/fuse')>();
  return {
    ...real,
    openFuser: async (opts: Parameters<typeof real.openFuser>[0]): Promise<OpenedFuser> => {
      const opened = await real.openFuser(opts);
      if (opened.method !== 'model') return opened;
      probe.opens++;
      const run = opened.fuser.run;
      opened.fuser.run = async (...args) => {
        probe.active++;
        probe.runs++;
        probe.maxActive = Math.max(probe.maxActive, probe.active);
        try {
          if (probe.hold) await probe.hold;
          return await run(...args);
        } finally {
          probe.active--;
        }
      };
      return opened;
    },
  };
});

let server: Running;
let pairs: PairFiles[];

beforeAll(async () => {
  server = await startServer();
  pairs = await makePairs(8);
});
afterAll(async () => {
  await server?.close();
});

async function postJson(path: string, body: FormData | string, headers = {}) {
  const res = await fetch(`${server.url}${path}`, { method: 'POST', body, headers });
  return {
    status: res.status,
    body: (await res.json()) as { error?: string } & Record<string, any>,
  };
}

/** A one-line JSON error naming the problem, without a stack trace. */
function expectCleanError(body: { error?: string }, pattern: RegExp): void {
  expect(body.error).toMatch(pattern);
  expect(body.error).not.toMatch(/\n|\bat .*:\d+:\d+/);
  expect(Object.keys(body)).toEqual(['error']);
}

describe('POST /api/fuse, 8 at once', () => {
  it('returns, for each of 8 concurrent pairs (4 model, 4 baselines), the bytes the CLI pipeline makes', async () => {
    const methods = [
      'model',
      'model',
      'model',
      'model',
      'average',
      'max',
      'ycbcr-average',
      'ycbcr-max',
    ] as const;
    const responses = await Promise.all(
      pairs.map((p, i) =>
        fetch(`${server.url}/api/fuse`, {
          method: 'POST',
          body: form({ ir: p.ir, vis: p.vis }, { method: methods[i] }),
        }),
      ),
    );
    const opensByServer = probe.opens;
    for (const [i, res] of responses.entries()) {
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toBe('image/png');
      expect(res.headers.get('x-fuse-method')).toBe(methods[i]);
      const png = await decodePng(new Uint8Array(await res.arrayBuffer()));
      expect([png.width, png.height, png.channels]).toEqual([64, 48, 3]);
      const want = await referenceFusion(pairs[i], methods[i]);
      expect(Buffer.from(png.data).equals(Buffer.from(want)), `pair ${i} ${methods[i]}`).toBe(true);
    }
    // One ONNX Runtime session for the model, running one fusion at a time.
    expect(opensByServer).toBe(1);
    expect(probe.runs).toBeGreaterThanOrEqual(4);
    expect(probe.maxActive).toBe(1);
  });
});

describe('POST /api/jobs: queue places, progress, metrics of method and baseline', () => {
  it('8 jobs at once: places 0..7 while the model is busy, then all finish with the CLI images and the metrics package values', async () => {
    let release = () => {};
    probe.hold = new Promise<void>((r) => {
      release = r;
    });
    const opensBefore = probe.opens;
    const posted = await Promise.all(
      pairs.map((p) => postJson('/api/jobs', form({ ir: p.ir, vis: p.vis }, { method: 'model' }))),
    );
    for (const p of posted) expect(p.status).toBe(202);
    // Each job's place when it was queued: one lane, so 0 (running) then 1..7 waiting.
    expect(posted.map((p) => p.body.place as number).sort((a, b) => a - b)).toEqual([
      0, 1, 2, 3, 4, 5, 6, 7,
    ]);
    const waiting = await Promise.all(
      posted.map(async ({ body }) => (await fetch(`${server.url}/api/jobs/${body.id}`)).json()),
    );
    expect(waiting.map((s: any) => `${s.state}:${s.place}`).sort()).toEqual([
      'queued:1',
      'queued:2',
      'queued:3',
      'queued:4',
      'queued:5',
      'queued:6',
      'queued:7',
      'running:0',
    ]);
    expect(((await (await fetch(`${server.url}/api/info`)).json()) as any).waiting).toBe(7);
    probe.hold = null;
    release();
    const finals = await Promise.all(
      posted.map(async ({ body }) => {
        for (;;) {
          const s = (await (await fetch(`${server.url}/api/jobs/${body.id}`)).json()) as any;
          if (s.state === 'done' || s.state === 'error') return s;
          await new Promise((r) => setTimeout(r, 50));
        }
      }),
    );
    expect(probe.opens).toBe(opensBefore);
    for (const [i, s] of finals.entries()) {
      expect(s.state, s.error).toBe('done');
      expect([s.width, s.height, s.place, s.method, s.baseline]).toEqual([
        64,
        48,
        0,
        'model',
        'ycbcr-max',
      ]);
      expect(s.progress).toEqual({ done: 1, total: 1 });
      const fused = await decodePng(
        new Uint8Array(
          await (await fetch(`${server.url}/api/jobs/${s.id}/fused.png`)).arrayBuffer(),
        ),
      );
      expect(
        Buffer.from(fused.data).equals(Buffer.from(await referenceFusion(pairs[i], 'model'))),
      ).toBe(true);
      const base = await decodePng(
        new Uint8Array(
          await (await fetch(`${server.url}/api/jobs/${s.id}/baseline.png`)).arrayBuffer(),
        ),
      );
      const baseWant = await referenceFusion(pairs[i], 'ycbcr-max');
      expect(Buffer.from(base.data).equals(Buffer.from(baseWant))).toBe(true);
      // The metrics are those of the metrics package on the same 8-bit images.
      const ir = await decodePng(readFileSync(pairs[i].ir));
      const vi = await decodePng(readFileSync(pairs[i].vis));
      const want = evaluateFusion(ir, vi, fused);
      const wantBase = evaluateFusion(ir, vi, { ...base, data: base.data });
      for (const k of ['EN', 'SD', 'SF', 'AG', 'MI', 'SCD', 'VIF', 'Qabf', 'SSIM', 'DeltaE']) {
        expect(s.metrics.model[k]).toBeCloseTo(want[k as keyof typeof want], 9);
        expect(s.metrics['ycbcr-max'][k]).toBeCloseTo(wantBase[k as keyof typeof want], 9);
      }
    }
    expect(probe.maxActive).toBe(1);
  });

  it('refuses with 503 once 16 requests wait, and takes requests again when the line moves', async () => {
    let release = () => {};
    probe.hold = new Promise<void>((r) => {
      release = r;
    });
    const body = () => form({ ir: pairs[0].ir, vis: pairs[0].vis }, { method: 'model' });
    const accepted = [];
    for (let i = 0; i < 17; i++) accepted.push(await postJson('/api/jobs', body()));
    expect(accepted.map((a) => a.status)).toEqual(Array(17).fill(202));
    const refused = await postJson('/api/fuse', body());
    expect(refused.status).toBe(503);
    expectCleanError(
      refused.body,
      /^the server is busy: 16 requests are waiting; try again in a minute$/,
    );
    probe.hold = null;
    release();
    await expect
      .poll(async () => ((await (await fetch(`${server.url}/api/info`)).json()) as any).waiting, {
        timeout: 60_000,
      })
      .toBe(0);
    expect((await postJson('/api/jobs', body())).status).toBe(202);
  });

  it('an unknown or expired job is a 404 with a one-line error', async () => {
    const res = await fetch(`${server.url}/api/jobs/nope`);
    expect(res.status).toBe(404);
    expectCleanError((await res.json()) as any, /no such job/);
  });
});

describe('POST /api/eval', () => {
  it('returns the metrics package values of an uploaded fused image', async () => {
    const p = pairs[0];
    const fusedPng = await (
      await fetch(`${server.url}/api/fuse`, {
        method: 'POST',
        body: form({ ir: p.ir, vis: p.vis }, { method: 'max' }),
      })
    ).arrayBuffer();
    const { status, body } = await postJson(
      '/api/eval',
      form({ ir: p.ir, vis: p.vis, fused: ['max.png', new Uint8Array(fusedPng)] }),
    );
    expect(status).toBe(200);
    const want = evaluateFusion(
      await decodePng(readFileSync(p.ir)),
      await decodePng(readFileSync(p.vis)),
      await decodePng(new Uint8Array(fusedPng)),
    );
    expect([body.width, body.height]).toEqual([64, 48]);
    for (const [k, v] of Object.entries(want)) expect(body.metrics[k]).toBeCloseTo(v, 9);
  });
});

describe('the align step: POST /api/align, then the pair endpoints with align', () => {
  it('estimates the transform of a rig pair (ground truth within 1 px at the corners) with a check image on the infrared grid', async () => {
    const d = tmp('dif-serve-align-');
    await writeScenePair(join(d, 'ir.png'), join(d, 'vi.png'));
    const r = await postJson('/api/align', form({ ir: join(d, 'ir.png'), vis: join(d, 'vi.png') }));
    expect(r.status, r.body.error).toBe(200);
    expect(cornerRms(r.body.visToIr, SCENE_VIS_TO_IR, 240, 200)).toBeLessThan(1);
    expect(r.body.irSize).toEqual([160, 128]);
    expect(r.body.visSize).toEqual([240, 200]);
    expect(r.body.scoreAfter).toBeGreaterThan(r.body.scoreBefore);
    expect(r.body.transform).toMatch(/^scale 0\.\d{3}, rotation -?\d\.\d\d deg, shift \(/);
    const check = r.body.check as string;
    expect(check.startsWith('data:image/png;base64,')).toBe(true);
    const meta = await sharp(Buffer.from(check.split(',')[1], 'base64')).metadata();
    expect([meta.width, meta.height]).toEqual([160, 128]);
    // mode resize: the transform from the sizes, no registration
    const rs = await postJson(
      '/api/align',
      form({ ir: join(d, 'ir.png'), vis: join(d, 'vi.png') }, { mode: 'resize' }),
    );
    expect(rs.body.visToIr).toEqual([
      160 / 240,
      0,
      (0.5 * 160) / 240 - 0.5,
      0,
      128 / 200,
      (0.5 * 128) / 200 - 0.5,
      0,
      0,
      1,
    ]);
  }, 60_000);

  it('fuses with align = the matrix: the infrared grid, the infrared alone outside the visible footprint', async () => {
    const d = tmp('dif-serve-align-');
    const flat = (p: string, w: number, h: number, v: number) =>
      sharp({ create: { width: w, height: h, channels: 3, background: { r: v, g: v, b: v } } })
        .png()
        .toFile(p);
    await flat(join(d, 'ir.png'), 40, 32, 200);
    await flat(join(d, 'vi.png'), 80, 64, 100);
    const f = form(
      { ir: join(d, 'ir.png'), vis: join(d, 'vi.png') },
      { method: 'average', align: JSON.stringify([0.5, 0, 4, 0, 0.5, 3, 0, 0, 1]) },
    );
    const res = await fetch(`${server.url}/api/fuse`, { method: 'POST', body: f });
    expect(res.status).toBe(200);
    const img = await decodePng(new Uint8Array(await res.arrayBuffer()));
    expect([img.width, img.height]).toEqual([40, 32]);
    const px = (x: number, y: number) => img.data[(y * 40 + x) * img.channels];
    expect(px(0, 0)).toBe(200); // the infrared alone
    expect(px(20, 16)).toBe(150); // (200 + 100) / 2
    // a job: the note and the visible image on the infrared grid come with it
    const j = await postJson(
      '/api/jobs',
      form(
        { ir: join(d, 'ir.png'), vis: join(d, 'vi.png') },
        {
          method: 'average',
          baseline: 'none',
          align: JSON.stringify([0.5, 0, 4, 0, 0.5, 3, 0, 0, 1]),
        },
      ),
    );
    expect(j.status).toBe(202);
    let s: Record<string, any>;
    for (let k = 0; ; k++) {
      s = await (await fetch(`${server.url}/api/jobs/${j.body.id}`)).json();
      if (s.state === 'done' || s.state === 'error' || k > 200) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(s.state, s.error).toBe('done');
    expect([s.width, s.height]).toEqual([40, 32]);
    expect(s.aligned).toMatch(/visible warped onto the 40x32 infrared grid/);
    const vis = await decodePng(
      new Uint8Array(
        await (await fetch(`${server.url}/api/jobs/${j.body.id}/visible.png`)).arrayBuffer(),
      ),
    );
    expect([vis.width, vis.height]).toEqual([40, 32]);
    expect(vis.data[(16 * 40 + 20) * vis.channels]).toBe(100);
  });

  it('refuses a pair without common structure (422), a bad align field and an unknown mode (400)', async () => {
    const [a] = await makePairs(1, 64, 48);
    const [b] = await makePairs(1, 96, 80);
    let r = await postJson('/api/align', form({ ir: a.ir, vis: b.vis }));
    expect(r.status).toBe(422);
    expectCleanError(
      r.body,
      /^vi-0\.png \(visible\) cannot be aligned with ir-0\.png \(infrared\): /,
    );
    r = await postJson('/api/fuse', form({ ir: a.ir, vis: b.vis }, { align: '[1,2,3]' }));
    expect(r.status).toBe(400);
    expectCleanError(r.body, /^align must be auto, resize or a JSON array of 9 numbers/);
    r = await postJson('/api/align', form({ ir: a.ir, vis: b.vis }, { mode: 'guess' }));
    expect(r.status).toBe(400);
    expectCleanError(r.body, /^unknown mode "guess": use auto or resize$/);
  }, 60_000);
});

describe('bad requests: one-line JSON errors, no stack', () => {
  it('not an image', async () => {
    const r = await postJson(
      '/api/fuse',
      form({ ir: ['notes.txt', new TextEncoder().encode('hello')], vis: pairs[0].vis }),
    );
    expect(r.status).toBe(400);
    expectCleanError(r.body, /^notes\.txt \(infrared\): unsupported or unrecognised image format/);
  });

  it('mismatched sizes, before decoding', async () => {
    const [small] = await makePairs(1, 32, 32);
    const r = await postJson('/api/fuse', form({ ir: small.ir, vis: pairs[0].vis }));
    expect(r.status).toBe(400);
    expectCleanError(
      r.body,
      /^size mismatch: ir-0\.png \(infrared\) is 32x32 but vi-0\.png \(visible\) is 64x48: align the pair first \(the page's Align step; the API's field align=auto, resize/,
    );
  });

  it('a missing image, an unknown method, a body that is not multipart', async () => {
    let r = await postJson('/api/fuse', form({ ir: pairs[0].ir }));
    expect(r.status).toBe(400);
    expectCleanError(r.body, /the visible image \(file field "vis"\) is missing/);
    r = await postJson(
      '/api/fuse',
      form({ ir: pairs[0].ir, vis: pairs[0].vis }, { method: 'magic' }),
    );
    expect(r.status).toBe(400);
    expectCleanError(r.body, /unknown method "magic": use model, average/);
    r = await postJson('/api/fuse', JSON.stringify({ ir: 'x' }), {
      'content-type': 'application/json',
    });
    expect(r.status).toBe(415);
    expectCleanError(r.body, /multipart\/form-data/);
  });

  it('too many pixels and too large a file, with their limits', async () => {
    const tight = await startServer({ maxPixels: 1000, maxUploadBytes: 4000 });
    try {
      const [big] = await makePairs(1); // 64x48: 3072 px; gray PNG under 4 kB, RGB PNG over
      expect(readFileSync(big.ir).length).toBeLessThan(4000);
      expect(readFileSync(big.vis).length).toBeGreaterThan(4000);
      const url = `${tight.url}/api/fuse`;
      let res = await fetch(url, { method: 'POST', body: form({ ir: big.ir, vis: big.vis }) });
      expect(res.status).toBe(413);
      expectCleanError(
        (await res.json()) as any,
        /^vi-0\.png \(visible\): file too large, this server takes at most 4 kB per image$/,
      );
      // The gray image as both sources: small enough a file, too many pixels.
      res = await fetch(url, { method: 'POST', body: form({ ir: big.ir, vis: big.ir }) });
      expect(res.status).toBe(413);
      expectCleanError(
        (await res.json()) as any,
        /^ir-0\.png \(infrared\): image is 64x48 \(0\.1 MP\), above the limit of 0\.1 MP; not decoded \(this server takes at most 0\.1 MP per image; dif-fuse serve --max-pixels raises it\)$/,
      );
    } finally {
      await tight.close();
    }
  });

  it('serves only its own files: no path traversal, no other host', async () => {
    for (const p of [
      '/../package.json',
      '/samples/../../package.json',
      '/%2e%2e/%2e%2e/package.json',
      '/src/serve/server.ts',
      '/dist/cli.js',
    ]) {
      const res = await fetch(`${server.url}${p}`);
      expect(res.status, p).toBe(404);
      expectCleanError((await res.json()) as any, /^not found/);
    }
    const page = await fetch(`${server.url}/`);
    expect(page.headers.get('content-type')).toMatch(/text\/html/);
    expect(await page.text()).toMatch(/<title>dif-fuse/);
    const sample = await fetch(`${server.url}/samples/ir.png`);
    expect(
      Buffer.from(await sample.arrayBuffer()).equals(readFileSync(join(SAMPLES, 'ir.png'))),
    ).toBe(true);
    // A page elsewhere reaching 127.0.0.1 through its own DNS name (DNS rebinding) is refused.
    const status = await new Promise<number>((resolve, reject) => {
      const u = new URL(server.url);
      http
        .get(
          { host: u.hostname, port: u.port, path: '/', headers: { host: 'attacker.example' } },
          (res) => {
            res.resume();
            resolve(res.statusCode ?? 0);
          },
        )
        .on('error', reject);
    });
    expect(status).toBe(421);
  });
});

describe('the dif-fuse serve command', () => {
  it('binds to 127.0.0.1 by default, prints its URL, leaves no file behind, and stops on SIGTERM', async () => {
    // Its working folder and TMPDIR are fresh, empty folders: still empty after a fusion.
    const cwd = tmp('dif-serve-cwd-');
    const tmpdir = tmp('dif-serve-tmp-');
    const child = spawn(process.execPath, [CLI, 'serve', '--port', '0'], {
      stdio: ['ignore', 'pipe', 'pipe'],
      cwd,
      env: { ...process.env, TMPDIR: tmpdir },
    });
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
    });
    const url = await new Promise<string>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no URL printed: ${out}`)), 60_000);
      child.stdout.on('data', () => {
        const m = out.match(/dif-fuse serve: (http:\/\/\S+)/);
        if (m) {
          clearTimeout(t);
          resolve(m[1]);
        }
      });
    });
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const info = (await (await fetch(`${url}/api/info`)).json()) as any;
    expect(info.methods).toEqual(['model', 'average', 'max', 'ycbcr-average', 'ycbcr-max']);
    // the pixel limit follows this machine's memory: 4 to 24 MP, in 0.1 MP steps
    expect(info.limits.maxUploadBytes).toBe(50e6);
    expect(info.limits.maxPixels).toBeGreaterThanOrEqual(4e6);
    expect(info.limits.maxPixels).toBeLessThanOrEqual(24e6);
    expect(info.limits.maxPixels % 1e5).toBe(0);
    const fused = await fetch(`${url}/api/fuse`, {
      method: 'POST',
      body: form({ ir: pairs[0].ir, vis: pairs[0].vis }, { method: 'model' }),
    });
    expect(fused.status).toBe(200);
    const code = await new Promise<number | null>((resolve) => {
      child.on('exit', (c) => resolve(c));
      child.kill('SIGTERM');
    });
    expect(code).toBe(0);
    expect(readdirSync(cwd)).toEqual([]);
    expect(readdirSync(tmpdir)).toEqual([]);
  });

  it('a bad model folder or option is one line, before listening', () => {
    expectOneLineError(
      dif(['serve', '--port', '0', '--model', '/nonexistent/model']),
      /^error: model folder \/nonexistent\/model does not exist$/,
      expect,
    );
    expectOneLineError(
      dif(['serve', '--port', 'x']),
      /--port must be an integer from 0 to 65535/,
      expect,
    );
    // the same --threads as fuse and worker: 0 is refused (omit it for every core)
    expectOneLineError(
      dif(['serve', '--port', '0', '--threads', '0']),
      /--threads must be at least 1/,
      expect,
    );
  });
});
