/**
 * `dif-fuse serve` under slow, stalled, racing and malformed clients, with real sockets on
 * loopback: nothing waits for ever, the line never overshoots its limit, /api/eval runs off the
 * event loop, and a drain finishes the running fusion while refusing the rest with 503.
 * Time-outs are shortened (about a second) so every case ends within a few seconds.
 */
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { evaluateFusion } from '@dif-fusion/metrics';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { OpenedFuser } from '../src/fuse';
import {
  decodePng,
  form,
  makePairs,
  type PairFiles,
  type Running,
  referenceFusion,
  startServer,
} from './serve-helpers';

// While `hold` is set, every fusion (any method) waits for it: a deterministic queue.
const probe = vi.hoisted(() => ({ hold: null as Promise<void> | null }));
vi.mock('../src/fuse', async (importOriginal) => {
  const real = await importOriginal<typeof import('../src/fuse')>();
  return {
    ...real,
    openFuser: async (opts: Parameters<typeof real.openFuser>[0]): Promise<OpenedFuser> => {
      const opened = await real.openFuser(opts);
      const run = opened.fuser.run;
      opened.fuser.run = async (...args) => {
        if (probe.hold) await probe.hold;
        return run(...args);
      };
      return opened;
    },
  };
});

function hold(): () => void {
  let release = () => {};
  probe.hold = new Promise<void>((r) => {
    release = r;
  });
  return () => {
    probe.hold = null;
    release();
  };
}

const SHORT = {
  headersTimeoutMs: 800,
  requestTimeoutMs: 1500,
  idleTimeoutMs: 800,
  keepAliveTimeoutMs: 500,
  maxUploads: 2,
};

let server: Running;
let pairs: PairFiles[];
const logged: string[] = [];

beforeAll(async () => {
  server = await startServer({ ...SHORT, log: (l) => logged.push(l) });
  pairs = await makePairs(2);
});
afterAll(async () => {
  await server?.close();
});

/** A multipart body with the pair's files, as a browser would send it. */
function multipartBody(parts: [string, string, Uint8Array][], boundary = 'dif-boundary-7'): Buffer {
  const chunks: Buffer[] = [];
  for (const [field, filename, bytes] of parts) {
    chunks.push(
      Buffer.from(
        `--${boundary}\r\nContent-Disposition: form-data; name="${field}"; filename="${filename}"\r\nContent-Type: image/png\r\n\r\n`,
      ),
      Buffer.from(bytes),
      Buffer.from('\r\n'),
    );
  }
  chunks.push(Buffer.from(`--${boundary}--\r\n`));
  return Buffer.concat(chunks);
}

function head(path: string, length: number, boundary = 'dif-boundary-7'): string {
  return `POST ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; boundary=${boundary}\r\nContent-Length: ${length}\r\n\r\n`;
}

interface SlowClient {
  /** Resolves when the server closes the connection, with what it answered (maybe nothing). */
  closed: Promise<string>;
  isClosed(): boolean;
  write(b: string | Buffer): void;
  destroy(): void;
}

function connect(): Promise<SlowClient> {
  const u = new URL(server.url);
  return new Promise((resolve, reject) => {
    const sock = net.connect(Number(u.port), u.hostname, () => {
      let answer = '';
      let closed = false;
      sock.on('data', (d) => {
        answer += d.toString('latin1');
      });
      sock.on('error', () => {});
      const done = new Promise<string>((r) =>
        sock.on('close', () => {
          closed = true;
          r(answer);
        }),
      );
      resolve({
        closed: done,
        isClosed: () => closed,
        write: (b) => {
          if (!closed) sock.write(b);
        },
        destroy: () => sock.destroy(),
      });
    });
    sock.on('error', reject);
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const info = async () => (await (await fetch(`${server.url}/api/info`)).json()) as any;

/** Fuses pair 0 with `max` over a fresh connection: the server still serves. */
async function stillServes(): Promise<void> {
  const res = await fetch(`${server.url}/api/fuse`, {
    method: 'POST',
    body: form({ ir: pairs[0].ir, vis: pairs[0].vis }, { method: 'max' }),
  });
  expect(res.status).toBe(200);
  const png = await decodePng(new Uint8Array(await res.arrayBuffer()));
  expect(Buffer.from(png.data).equals(Buffer.from(await referenceFusion(pairs[0], 'max')))).toBe(
    true,
  );
}

describe('slow and stalled clients are dropped', () => {
  it('headers that never finish: 408 and the connection closed', async () => {
    const c = await connect();
    c.write('POST /api/fuse HTTP/1.1\r\nHost: 127.0.0.1\r\n');
    const answer = await Promise.race([c.closed, sleep(10_000).then(() => 'still open')]);
    c.destroy();
    expect(answer).toMatch(/^HTTP\/1\.1 408 /);
  });

  it('a body trickled at 10 bytes/s (never idle): dropped at the request time-out', async () => {
    const body = multipartBody([
      ['ir', 'ir.png', readFileSync(pairs[0].ir)],
      ['vis', 'vi.png', readFileSync(pairs[0].vis)],
    ]);
    const c = await connect();
    c.write(head('/api/fuse', body.length));
    let sent = 0;
    // At most 10 s of trickling (100 bytes), far less than the body.
    while (!c.isClosed() && sent < 100) {
      c.write(body.subarray(sent, sent + 1));
      sent++;
      await sleep(100);
    }
    expect(c.isClosed()).toBe(true);
    expect(sent).toBeLessThan(100);
    expect(sent).toBeLessThan(body.length);
    await expect.poll(async () => (await info()).uploading, { timeout: 5000 }).toBe(0);
    await stillServes();
  });

  it('an upload stalled half-way: dropped after the idle time-out, with a log line', async () => {
    const body = multipartBody([
      ['ir', 'ir.png', readFileSync(pairs[0].ir)],
      ['vis', 'vi.png', readFileSync(pairs[0].vis)],
    ]);
    const c = await connect();
    c.write(head('/api/fuse', body.length));
    c.write(body.subarray(0, body.length >> 1));
    const answer = await Promise.race([c.closed, sleep(10_000).then(() => 'still open')]);
    expect(answer).toBe('');
    expect(logged).toContain('dropped an upload that sent nothing for 0.8 s');
    expect((await info()).uploading).toBe(0);
    await stillServes();
  });

  it('at most maxUploads (2) uploads are read at once: the third is refused before its body', async () => {
    const body = multipartBody([
      ['ir', 'ir.png', readFileSync(pairs[0].ir)],
      ['vis', 'vi.png', readFileSync(pairs[0].vis)],
    ]);
    const stalled = await Promise.all([connect(), connect()]);
    for (const c of stalled) {
      c.write(head('/api/fuse', body.length));
      c.write(body.subarray(0, 100));
    }
    await expect.poll(async () => (await info()).uploading, { timeout: 5000 }).toBe(2);
    const third = await fetch(`${server.url}/api/fuse`, {
      method: 'POST',
      body: form({ ir: pairs[0].ir, vis: pairs[0].vis }, { method: 'max' }),
    });
    expect(third.status).toBe(503);
    expect(await third.json()).toEqual({
      error: 'the server is busy: 2 uploads are in progress; try again in a moment',
    });
    // The stalled two are dropped by the idle time-out; then uploads are taken again.
    for (const c of stalled)
      expect(await Promise.race([c.closed, sleep(10_000).then(() => 'still open')])).toBe('');
    expect((await info()).uploading).toBe(0);
    await stillServes();
  });

  it('an idle keep-alive connection is closed after the keep-alive time-out', async () => {
    const c = await connect();
    c.write('GET /api/info HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
    const answer = await Promise.race([c.closed, sleep(10_000).then(() => 'still open')]);
    expect(answer).toMatch(/^HTTP\/1\.1 200 /);
    expect(answer).toMatch(/keep-alive/i);
  });
});

describe('malformed requests are 400, not 500', () => {
  it('a truncated multipart body (no closing boundary)', async () => {
    const body = Buffer.from(
      '--b0\r\nContent-Disposition: form-data; name="ir"; filename="a.png"\r\n\r\nabc',
    );
    const res = await fetch(`${server.url}/api/fuse`, {
      method: 'POST',
      body,
      headers: { 'content-type': 'multipart/form-data; boundary=b0' },
    });
    expect(res.status).toBe(400);
    const j = (await res.json()) as { error: string };
    expect(j.error).toBe(
      'malformed multipart body: Part terminated early due to unexpected end of multipart data',
    );
    expect(logged.filter((l) => l.startsWith('error:'))).toEqual([]);
  });

  it('a second ir part is refused', async () => {
    const body = multipartBody([
      ['ir', 'ir.png', readFileSync(pairs[0].ir)],
      ['vis', 'vi.png', readFileSync(pairs[0].vis)],
      ['ir', 'other.png', readFileSync(pairs[1].ir)],
    ]);
    const res = await fetch(`${server.url}/api/fuse`, {
      method: 'POST',
      body: new Uint8Array(body),
      headers: { 'content-type': 'multipart/form-data; boundary=dif-boundary-7' },
    });
    expect(res.status).toBe(400);
    expect(await res.json()).toEqual({
      error: 'the field "ir" was sent twice: send each of ir, vis (fused), method once',
    });
  });
});

describe('the line', () => {
  it('30 racing uploads: at most 16 wait (plus the running one), the rest get 503', async () => {
    const racing = await startServer({ maxUploads: 64 });
    const release = hold();
    try {
      const res = await Promise.all(
        Array.from({ length: 30 }, () =>
          fetch(`${racing.url}/api/jobs`, {
            method: 'POST',
            body: form(
              { ir: pairs[0].ir, vis: pairs[0].vis },
              { method: 'average', baseline: 'none' },
            ),
          }).then(async (r) => ({ status: r.status, body: (await r.json()) as any })),
        ),
      );
      const accepted = res.filter((r) => r.status === 202);
      const refused = res.filter((r) => r.status === 503);
      expect(accepted.length + refused.length).toBe(30);
      // 16 waiting, and one running when it had started before the line filled.
      expect(accepted.length).toBeGreaterThanOrEqual(16);
      expect(accepted.length).toBeLessThanOrEqual(17);
      for (const r of refused)
        expect(r.body.error).toMatch(/^the server is busy: 16 requests are waiting/);
      const i = (await (await fetch(`${racing.url}/api/info`)).json()) as any;
      expect(i.waiting + i.running).toBe(accepted.length);
      release();
      for (const a of accepted)
        await expect
          .poll(
            async () =>
              ((await (await fetch(`${racing.url}/api/jobs/${a.body.id}`)).json()) as any).state,
            { timeout: 30_000 },
          )
          .toBe('done');
    } finally {
      release();
      await racing.close();
    }
  });
});

describe('/api/eval runs off the event loop', () => {
  it('the server answers while a 1000x1000 evaluation runs; the metrics are the package values', async () => {
    const [big, other] = await makePairs(2, 1000, 1000);
    const fusedPng = readFileSync(other.vis);
    let evalDone = false;
    const evaluated = fetch(`${server.url}/api/eval`, {
      method: 'POST',
      body: form({ ir: big.ir, vis: big.vis, fused: ['f.png', fusedPng] }),
    }).then(async (r) => {
      evalDone = true;
      return { status: r.status, body: (await r.json()) as any };
    });
    // The evaluation is seen running, and /api/info answers meanwhile.
    await expect.poll(async () => (await info()).running, { timeout: 30_000 }).toBe(1);
    expect(evalDone).toBe(false);
    const { status, body } = await evaluated;
    expect(status).toBe(200);
    const want = evaluateFusion(
      await decodePng(readFileSync(big.ir)),
      await decodePng(readFileSync(big.vis)),
      await decodePng(fusedPng),
    );
    expect([body.width, body.height]).toEqual([1000, 1000]);
    for (const [k, v] of Object.entries(want)) expect(body.metrics[k]).toBeCloseTo(v, 9);
  }, 60_000);
});

describe('drain (what SIGTERM does)', () => {
  it('finishes the running fusion, refuses waiting and new requests with 503, then closes', async () => {
    const s = await startServer();
    const release = hold();
    try {
      const post = (path: string, method: string) =>
        fetch(`${s.url}${path}`, {
          method: 'POST',
          body: form({ ir: pairs[0].ir, vis: pairs[0].vis }, { method, baseline: 'none' }),
        });
      const running = post('/api/fuse', 'max');
      await expect
        .poll(async () => ((await (await fetch(`${s.url}/api/info`)).json()) as any).running)
        .toBe(1);
      const waiting = [post('/api/fuse', 'max'), post('/api/fuse', 'max')];
      const job = (await (await post('/api/jobs', 'max')).json()) as { id: string };
      await expect
        .poll(async () => ((await (await fetch(`${s.url}/api/info`)).json()) as any).waiting)
        .toBe(3);
      const drained = s.drain();
      for (const w of waiting) {
        const r = await w;
        expect(r.status).toBe(503);
        expect(await r.json()).toEqual({ error: 'the server is shutting down; try again later' });
      }
      const j = (await (await fetch(`${s.url}/api/jobs/${job.id}`)).json()) as any;
      expect([j.state, j.error]).toEqual(['error', 'the server is shutting down; try again later']);
      const late = await post('/api/fuse', 'max');
      expect(late.status).toBe(503);
      release();
      const r = await running;
      expect(r.status).toBe(200);
      const png = await decodePng(new Uint8Array(await r.arrayBuffer()));
      expect(
        Buffer.from(png.data).equals(Buffer.from(await referenceFusion(pairs[0], 'max'))),
      ).toBe(true);
      await drained;
    } finally {
      release();
      await s.close();
    }
  });
});
