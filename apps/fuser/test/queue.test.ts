/**
 * Batch fusion over the BullMQ queue, end to end: a throw-away redis-server on loopback and
 * `dif-fuse worker` processes of the BUILT binary (skipped with a message when redis-server
 * is not installed). Short job locks (--lock 2000) so that a killed worker's job comes back
 * within seconds instead of BullMQ's default 30 s.
 */
import { type ChildProcessWithoutNullStreams, spawn, spawnSync } from 'node:child_process';
import {
  appendFileSync,
  cpSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HAS_REDIS, startRedis, type TestRedis } from './external';
import { CLI, dif, expectOneLineError, REPO, tmp, writeTestImage } from './helpers';

if (!HAS_REDIS)
  console.warn('skipping queue tests: redis-server not on PATH (apt-get install redis-server)');

let redis: TestRedis;
let dir: string;

interface Proc {
  child: ChildProcessWithoutNullStreams;
  lines: string[];
  exit: Promise<number | null>;
  waitFor(re: RegExp): Promise<string>;
}

function worker(queue: string, ...extra: string[]): Proc {
  const child = spawn(
    process.execPath,
    [CLI, 'worker', '--redis', redis.url, '--queue', queue, '--lock', '2000', ...extra],
    // its own process group: SIGKILL takes the worker and its sandboxed children, like a crash
    { env: { ...process.env, DIF_FUSION_DEBUG: '' }, detached: true },
  );
  const lines: string[] = [];
  const waiters: { re: RegExp; res: (l: string) => void }[] = [];
  let buf = '';
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (d: string) => {
    buf += d;
    const parts = buf.split('\n');
    buf = parts.pop()!;
    for (const l of parts) {
      lines.push(l);
      for (const w of waiters.splice(0))
        if (w.re.test(l)) w.res(l);
        else waiters.push(w);
    }
  });
  child.stderr.resume();
  const exit = new Promise<number | null>((res) => child.on('exit', (code) => res(code)));
  return {
    child,
    lines,
    exit,
    waitFor: (re) =>
      new Promise((res) => {
        const hit = lines.find((l) => re.test(l));
        if (hit) res(hit);
        else waiters.push({ re, res });
      }),
  };
}

/** A folder with ir/ and vi/ holding `n` pairs, and their local batch fusion. */
async function pairs(
  name: string,
  n: number,
  w: number,
  h: number,
): Promise<{ root: string; local: string }> {
  const root = join(dir, name);
  mkdirSync(join(root, 'ir'), { recursive: true });
  mkdirSync(join(root, 'vi'), { recursive: true });
  for (let i = 0; i < n; i++) {
    await writeTestImage(join(root, 'ir', `p${i}.png`), w, h, 1, 10 + i);
    await writeTestImage(join(root, 'vi', `p${i}.png`), w, h, 3, 50 + i);
  }
  return { root, local: join(dir, `${name}-local`) };
}

function localBatch(root: string, local: string): void {
  const r = dif(['--pairs', root, '-o', local, '-q']);
  expect(r.code, r.stderr).toBe(0);
}

/** `dif-fuse queue add` of a pairs folder onto `queue` at the test's redis. */
function addArgs(root: string, out: string, queue: string): string[] {
  return ['queue', 'add', '--pairs', root, '--out', out, '--redis', redis.url, '--queue', queue];
}

function status(queue: string): Record<string, any> {
  const r = dif(['queue', 'status', '--redis', redis.url, '--queue', queue, '--json']);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout);
}

function expectSameOutputs(out: string, local: string): void {
  const names = readdirSync(local).sort();
  expect(readdirSync(out).sort()).toEqual(names);
  for (const n of names)
    expect(readFileSync(join(out, n)).equals(readFileSync(join(local, n))), n).toBe(true);
}

beforeAll(async () => {
  if (!HAS_REDIS) return;
  redis = await startRedis();
  dir = tmp('dif-queue-');
});
afterAll(async () => {
  await redis?.stop();
});

describe.skipIf(!HAS_REDIS)('dif-fuse queue and worker', () => {
  it('several worker processes fuse a folder exactly once per pair, byte-identical to a local batch', async () => {
    const { root, local } = await pairs('many', 6, 64, 48);
    localBatch(root, local);
    const out = join(dir, 'many-out');
    const add = addArgs(root, out, 'many');
    const first = dif(add);
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout.trim()).toBe(`queued 6 job(s) on many at ${redis.url}`);
    // idempotent: the same pairs and settings again add nothing
    expect(dif(add).stdout.trim()).toBe(
      `queued 0 job(s) on many at ${redis.url} (6 already queued)`,
    );
    // one of them fuses two jobs at once (two sandboxed children)
    const ws = [['--concurrency', '2'], [], []].map((x) =>
      worker('many', '--exit-when-done', ...x),
    );
    expect(await Promise.all(ws.map((w) => w.exit))).toEqual([0, 0, 0]);
    const done = ws.flatMap((w) =>
      w.lines.filter((l) => l.startsWith('done ')).map((l) => l.split(' ')[1]),
    );
    expect(done.sort()).toEqual(['p0', 'p1', 'p2', 'p3', 'p4', 'p5']);
    expect(ws.flatMap((w) => w.lines.filter((l) => l.startsWith('start ')))).toHaveLength(6);
    expectSameOutputs(out, local);
    const s = status('many');
    expect([s.done, s.failed, s.waiting, s.active, s.delayed]).toEqual([6, 0, 0, 0, 0]);
    expect(s.throughput).toBeGreaterThan(0);
  });

  it('a worker killed with SIGKILL mid-job loses nothing: another worker retries its job', async () => {
    const { root, local } = await pairs('killed', 3, 128, 96);
    localBatch(root, local);
    const out = join(dir, 'killed-out');
    expect(dif(addArgs(root, out, 'killed')).code).toBe(0);
    const w1 = worker('killed');
    const started = (await w1.waitFor(/^start /)).split(' ')[1];
    process.kill(-w1.child.pid!, 'SIGKILL');
    await w1.exit;
    expect(existsSync(join(out, `${started}.png`))).toBe(false); // killed before writing
    const w2 = worker('killed', '--exit-when-done');
    expect(await w2.exit).toBe(0);
    expect(w2.lines.filter((l) => l.startsWith('done ')).map((l) => l.split(' ')[1])).toContain(
      started,
    );
    expectSameOutputs(out, local);
    const s = status('killed');
    expect([s.done, s.failed, s.waiting, s.active]).toEqual([3, 0, 0, 0]);
  });

  it('a corrupt pair lands in the failed state with its message while the rest complete', async () => {
    const { root, local } = await pairs('corrupt', 3, 64, 48);
    localBatch(root, local);
    writeFileSync(join(root, 'ir', 'bad.png'), 'this is not a png');
    await writeTestImage(join(root, 'vi', 'bad.png'), 64, 48, 3, 99);
    const out = join(dir, 'corrupt-out');
    expect(dif(addArgs(root, out, 'corrupt')).code).toBe(0);
    const w = worker('corrupt', '--exit-when-done');
    expect(await w.exit).toBe(1); // a job failed here
    expectSameOutputs(out, local);
    const s = status('corrupt');
    expect([s.done, s.failed, s.waiting, s.active, s.delayed]).toEqual([3, 1, 0, 0, 0]);
    // an input error is not retried (attempts 1), and keeps the one-line message
    expect(s.failures).toHaveLength(1);
    expect(s.failures[0].name).toBe('bad');
    expect(s.failures[0].attempts).toBe(1);
    expect(s.failures[0].reason).toMatch(/ir\/bad\.png: /);
    const text = dif(['queue', 'status', '--redis', redis.url, '--queue', 'corrupt']);
    expect(text.stdout).toMatch(
      /^queue corrupt: 3 done, 1 failed, 0 waiting, 0 active, 0 retrying; \d+ worker\(s\)$/m,
    );
    expect(text.stdout).toMatch(
      /^failed bad \(pair-[0-9a-f]{32}, 1 attempt\(s\)\): .*ir\/bad\.png: /m,
    );
  });

  it('a write error is retried with backoff, then lands in the failed state with its message', async () => {
    const { root } = await pairs('retry', 2, 64, 48);
    const out = join(dir, 'retry-out');
    mkdirSync(join(out, 'p0.png'), { recursive: true }); // a folder where the output should go
    const add = addArgs(root, out, 'retry');
    expect(dif([...add, '--attempts', '3', '--backoff', '200']).code).toBe(0);
    const w = worker('retry', '--exit-when-done');
    expect(await w.exit).toBe(1); // a job failed here
    expect(w.lines.filter((l) => l.startsWith('start p0 ')).map((l) => l.split(' ').pop())).toEqual(
      ['1', '2', '3'],
    );
    expect(w.lines.filter((l) => /^retry p0 /.test(l))).toHaveLength(2);
    const s = status('retry');
    expect([s.done, s.failed, s.waiting, s.active, s.delayed]).toEqual([1, 1, 0, 0, 0]);
    expect(s.failures[0].name).toBe('p0');
    expect(s.failures[0].attempts).toBe(3);
    expect(s.failures[0].reason).toMatch(/p0\.png: /);
  });

  it('SIGTERM: the job in hand finishes, the others stay queued', async () => {
    const { root } = await pairs('term', 3, 128, 96);
    const out = join(dir, 'term-out');
    expect(dif(addArgs(root, out, 'term')).code).toBe(0);
    const w = worker('term');
    const started = (await w.waitFor(/^start /)).split(' ')[1];
    w.child.kill('SIGTERM');
    expect(await w.exit).toBe(0);
    expect(w.lines.filter((l) => l.startsWith('done ')).map((l) => l.split(' ')[1])).toEqual([
      started,
    ]);
    expect(readdirSync(out)).toEqual([`${started}.png`]);
    const s = status('term');
    expect([s.done, s.failed, s.waiting, s.active]).toEqual([1, 0, 2, 0]);
  });

  it('queue add --model pins the model by content: a worker elsewhere resolves it, a changed model is refused', async () => {
    const { root, local } = await pairs('pinned', 2, 64, 48);
    localBatch(root, local);
    // A copy of the shipped model, named relative to the folder queue add runs in.
    const home = join(dir, 'pin-home');
    mkdirSync(home);
    cpSync(join(REPO, 'models', 'default'), join(home, 'm'), { recursive: true });
    const out = join(dir, 'pinned-out');
    const add = (queue: string) =>
      spawnSync(process.execPath, [CLI, ...addArgs('../pinned', out, queue), '--model', 'm'], {
        cwd: home,
        encoding: 'utf8',
      });
    let r = add('pinned');
    expect(r.status, r.stderr).toBe(0);
    // The worker runs in another folder (its own cwd has no m/): same outputs as the default.
    const w = worker('pinned', '--exit-when-done');
    expect(await w.exit).toBe(0);
    expectSameOutputs(out, local);
    // The same folder with another config.json: the job is refused with one line, not fused.
    r = add('pinned2');
    expect(r.status, r.stderr).toBe(0);
    appendFileSync(join(home, 'm', 'config.json'), '\n');
    const w2 = worker('pinned2', '--exit-when-done');
    expect(await w2.exit).toBe(1);
    const s = status('pinned2');
    expect([s.done, s.failed]).toEqual([0, 2]);
    expect(s.failures[0].attempts).toBe(1);
    expect(s.failures[0].reason).toMatch(
      new RegExp(
        `^model folder ${join(home, 'm').replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')} is not the model this job was queued with \\(sha256 [0-9a-f]{12}…, queued [0-9a-f]{12}…\\): give every worker the same model$`,
      ),
    );
  }, 120_000);

  it('queue add --align rig.json: the rig travels in the jobs; outputs byte-identical to dif-fuse --pairs --align', async () => {
    // Infrared 40x32, visible 80x64: visible (x, y) -> infrared (x / 2 + 4, y / 2 + 3).
    const root = join(dir, 'rig');
    mkdirSync(join(root, 'ir'), { recursive: true });
    mkdirSync(join(root, 'vi'), { recursive: true });
    for (let i = 0; i < 2; i++) {
      await writeTestImage(join(root, 'ir', `p${i}.png`), 40, 32, 1, 70 + i);
      await writeTestImage(join(root, 'vi', `p${i}.png`), 80, 64, 3, 90 + i);
    }
    const rig = join(dir, 'rig.json');
    writeFileSync(
      rig,
      JSON.stringify({
        format: 'dif-fusion-rig',
        version: 1,
        transform: 'affine',
        vis_to_ir: [0.5, 0, 4, 0, 0.5, 3, 0, 0, 1],
        ir_size: [40, 32],
        vis_size: [80, 64],
        overlap: { x: 5, y: 4, width: 35, height: 28 },
        source: { method: 'points', points: 4 },
        quality: { before: 0, after: 0, ir_coverage: 0 },
      }),
    );
    const local = join(dir, 'rig-local');
    const l = dif(['--pairs', root, '-o', local, '-q', '--align', rig, '--crop', 'overlap']);
    expect(l.code, l.stderr).toBe(0);
    const out = join(dir, 'rig-out');
    const r = dif([...addArgs(root, out, 'rig'), '--align', rig, '--crop', 'overlap']);
    expect(r.code, r.stderr).toBe(0);
    // The worker needs no copy of the rig file: its content is in the jobs.
    writeFileSync(rig, 'gone');
    const w = worker('rig', '--exit-when-done');
    expect(await w.exit).toBe(0);
    expectSameOutputs(out, local);
    const img = await sharp(join(out, 'p0.png')).metadata();
    expect([img.width, img.height]).toEqual([35, 28]);
    // A bad rig file is refused by queue add, before anything is queued.
    expectOneLineError(
      dif([...addArgs(root, out, 'rig2'), '--align', rig]),
      /rig\.json: not a rig file: invalid JSON/,
      expect,
    );
  }, 120_000);

  it('one-line errors: unreachable Redis, bad list line', () => {
    expectOneLineError(
      dif(['queue', 'status', '--redis', 'redis://127.0.0.1:1']),
      /^error: redis:\/\/127\.0\.0\.1:1: cannot reach Redis \(.*ECONNREFUSED.*\)$/,
      expect,
    );
    const list = join(dir, 'list.txt');
    writeFileSync(list, '# ir vis\na.png b.png\nonly-one.png\n');
    expectOneLineError(
      dif(['queue', 'add', '--pairs', list, '--out', join(dir, 'x'), '--redis', redis.url]),
      /list\.txt:3: expected 'IR VIS' \(two paths, tab- or space-separated\), found 1 field\(s\)$/,
      expect,
    );
  });
});

describe('a worker whose Redis is unreachable', () => {
  it('SIGTERM ends it at once (exit 1), with one warning line, no stack trace, no password', async () => {
    const child = spawn(
      process.execPath,
      [CLI, 'worker', '--redis', 'redis://fuser:S3CRET-pw@127.0.0.1:1', '--exit-when-done'],
      { env: { ...process.env, DIF_FUSION_DEBUG: '' } },
    );
    let stderr = '';
    let stdout = '';
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    child.stdout.on('data', (d) => {
      stdout += d;
    });
    const exit = new Promise<number | null>((res) => child.on('exit', (code) => res(code)));
    // Let it retry a few times (every 0.5, 1, 1.5 s...), then stop it.
    await expect.poll(() => stderr, { timeout: 20_000 }).toMatch(/retrying/);
    await new Promise((r) => setTimeout(r, 3000));
    child.kill('SIGTERM');
    const code = await Promise.race([
      exit,
      new Promise<string>((r) => setTimeout(() => r('still running'), 10_000)),
    ]);
    if (code === 'still running') child.kill('SIGKILL');
    expect(code).toBe(1);
    const lines = stderr.split('\n').filter((l) => l.trim() !== '');
    expect(lines).toEqual([
      'warning: redis://fuser:***@127.0.0.1:1: connect ECONNREFUSED 127.0.0.1:1; retrying every few seconds (Ctrl-C stops)',
      'dif-fuse worker: SIGTERM while Redis is unreachable, exiting now (jobs in hand return to the queue)',
      'dif-fuse worker: stopped; 0 done, 0 failed here',
      'error: stopped at once; jobs in hand return to the queue',
    ]);
    expect(stdout).toBe('');
  }, 40_000);

  it('passwords in redis URLs are never printed', () => {
    expectOneLineError(
      dif(['queue', 'status', '--redis', 'redis://fuser:S3CRET-pw@127.0.0.1:1']),
      /^error: redis:\/\/fuser:\*\*\*@127\.0\.0\.1:1: cannot reach Redis \(.*ECONNREFUSED.*\)$/,
      expect,
    );
    expectOneLineError(
      dif(['queue', 'status', '--redis', 'http://:S3CRET-pw@host']),
      /^error: --redis http:\/\/:\*\*\*@host: expected a URL/,
      expect,
    );
  });
});
