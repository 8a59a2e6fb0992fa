#!/usr/bin/env node
/**
 * Fusion at scale, measured (see BENCHMARKS.md, "Video and the job queue"):
 *
 *   node scripts/bench/fuser-scale.mjs [--size 160x120] [--frames 30] [--pairs 16] [--json]
 *
 * 1. Temporal stability: a static scene (the sample pair, repeated with temporal sensor noise
 *    and H.264 compression, like a fixed camera) fused by `dif-fuse --ir vis.mp4 ...`, which
 *    gives every frame the same seeded noise; then the same decoded frames fused with a new
 *    seed per frame (what a fuser that draws fresh noise per frame would do). Mean absolute
 *    difference between consecutive frames, in 8-bit levels, of the sources and of each.
 * 2. Job queue: `--pairs` sample pairs fused by a local batch (`dif-fuse --pairs`), then over
 *    the queue with 1 and with 2 worker processes (`dif-fuse worker --exit-when-done`) on a
 *    throw-away redis-server. Wall time from start to the last output, pairs/s, and the
 *    overhead per job of the queue against the local batch.
 *
 * Needs the fuser built (pnpm build), ffmpeg and redis-server on PATH.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { startRedis } from '../lib/redis-server.mjs';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const CLI = join(REPO, 'apps/fuser/dist/cli.js');
const { values: opt } = parseArgs({
  options: {
    size: { type: 'string', default: '160x120' },
    frames: { type: 'string', default: '30' },
    pairs: { type: 'string', default: '16' },
    json: { type: 'boolean', default: false },
  },
});
const [W, H] = opt.size.split('x').map(Number);
const FRAMES = Number(opt.frames);
const PAIRS = Number(opt.pairs);
const dir = mkdtempSync(join(tmpdir(), 'dif-scale-'));
const log = (s) => process.stderr.write(`${s}\n`);

function run(cmd, args) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 1 << 30 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}
const ffmpeg = (args) => run('ffmpeg', ['-nostdin', '-v', 'error', '-y', ...args]);
const dif = (args) => run(process.execPath, [CLI, ...args]);

/** Decoded gray/RGB frames (8-bit) of a folder of PNGs or a video, as one Buffer each. */
function frames(src, pixFmt) {
  const ch = pixFmt === 'gray' ? 1 : 3;
  const input = src.endsWith('/') ? ['-i', join(src, '%06d.png')] : ['-i', src];
  const raw = spawnSync(
    'ffmpeg',
    [
      '-v',
      'error',
      ...input,
      '-fps_mode',
      'passthrough',
      '-f',
      'rawvideo',
      '-pix_fmt',
      pixFmt,
      'pipe:1',
    ],
    { maxBuffer: 1 << 30 },
  ).stdout;
  const n = W * H * ch;
  return Array.from({ length: raw.length / n }, (_, k) => raw.subarray(k * n, (k + 1) * n));
}

/** Mean |f[k+1] - f[k]| over pixels, channels and consecutive pairs, in 8-bit levels. */
function temporalMad(fs) {
  let s = 0;
  let n = 0;
  for (let k = 1; k < fs.length; k++)
    for (let i = 0; i < fs[k].length; i++) {
      s += Math.abs(fs[k][i] - fs[k - 1][i]);
      n++;
    }
  return s / n;
}

/** `sensor`: strength of ffmpeg's temporal noise filter (0: a clean static scene). */
async function stability(sensor) {
  const d = join(dir, `still-${sensor}`);
  run(process.execPath, [
    join(REPO, 'scripts/make-sample-pair.mjs'),
    d,
    '--width',
    String(W),
    '--height',
    String(H),
  ]);
  const noisy = (img, gray, out) =>
    ffmpeg([
      '-loop',
      '1',
      '-i',
      img,
      '-vf',
      `${gray ? 'format=gray,' : 'format=rgb24,'}noise=alls=${sensor}:allf=t`,
      '-frames:v',
      String(FRAMES),
      '-r',
      '10',
      '-c:v',
      'libx264',
      '-crf',
      '18',
      '-pix_fmt',
      'yuv420p',
      out,
    ]);
  noisy(join(d, 'vi.png'), false, join(d, 'vis.mp4'));
  noisy(join(d, 'ir.png'), true, join(d, 'ir.mp4'));
  const out = join(d, 'fused-frames');
  const t0 = performance.now();
  const line = dif(['--ir', join(d, 'ir.mp4'), '--vis', join(d, 'vis.mp4'), '-o', out]);
  const secs = (performance.now() - t0) / 1000;
  const same = temporalMad(frames(`${out}/`, 'rgb24'));
  // The same decoded frames, a fresh seed per frame, through the programmatic API.
  const api = await import(join(REPO, 'apps/fuser/dist/index.js'));
  const io = await import(join(REPO, 'packages/io/dist/index.js'));
  const irF = frames(join(d, 'ir.mp4'), 'rgb24');
  const visF = frames(join(d, 'vis.mp4'), 'rgb24');
  const fresh = [];
  for (let k = 0; k < irF.length; k++) {
    const img = (b) => ({ width: W, height: H, channels: 3, bitDepth: 8, data: new Uint8Array(b) });
    const fuser = await api.openFuser({ seed: k + 1 });
    const f = await api.fuseImages(
      io.imageToFloat(io.toChannels(img(irF[k]), 1)),
      io.imageToFloat(img(visF[k])),
      fuser,
    );
    await fuser.release();
    fresh.push(Buffer.from(io.floatToImage(f, 8).data));
  }
  return {
    size: `${W}x${H}`,
    sensorNoise: sensor,
    frames: irF.length,
    madVisible: temporalMad(visF),
    madInfrared: temporalMad(frames(join(d, 'ir.mp4'), 'gray')),
    madFusedSameNoise: same,
    madFusedNoisePerFrame: temporalMad(fresh),
    videoSeconds: secs,
    cli: line.trim(),
  };
}

function spawnWait(args) {
  return new Promise((res, rej) => {
    const c = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'ignore', 'inherit'] });
    c.on('exit', (code) =>
      code === 0 ? res() : rej(new Error(`dif-fuse ${args.join(' ')}: exit ${code}`)),
    );
  });
}

async function queue() {
  run(process.execPath, [
    join(REPO, 'scripts/make-sample-pair.mjs'),
    join(dir, 'batch'),
    '--width',
    String(W * 2),
    '--height',
    String(H * 2),
    '--pairs',
    String(PAIRS),
  ]);
  const pairs = join(dir, 'batch/pairs');
  const redis = await startRedis();
  const url = redis.url;
  try {
    let t0 = performance.now();
    const local = dif(['--pairs', pairs, '-o', join(dir, 'local')]).trim();
    const localSecs = (performance.now() - t0) / 1000;
    const res = { size: `${W * 2}x${H * 2}`, pairs: PAIRS, localSecs, local };
    for (const [workers, threads] of [
      [1, 0],
      [2, 0],
      [2, 1],
    ]) {
      const name = `w${workers}${threads ? `t${threads}` : ''}`;
      const out = join(dir, name);
      mkdirSync(out);
      dif(['queue', 'add', '--pairs', pairs, '--out', out, '--redis', url, '--queue', name]);
      t0 = performance.now();
      await Promise.all(
        Array.from({ length: workers }, () =>
          spawnWait([
            'worker',
            '--redis',
            url,
            '--queue',
            name,
            '--exit-when-done',
            '-q',
            ...(threads ? ['--threads', String(threads)] : []),
          ]),
        ),
      );
      const secs = (performance.now() - t0) / 1000;
      const st = JSON.parse(dif(['queue', 'status', '--redis', url, '--queue', name, '--json']));
      if (st.done !== PAIRS || readdirSync(out).length !== PAIRS)
        throw new Error(`${name}: ${JSON.stringify(st)}`);
      res[name] = {
        secs,
        pairsPerSec: PAIRS / secs,
        statusThroughput: st.throughput,
        secondsPerJob: st.secondsPerJob,
      };
    }
    res.overheadPerJobSecs = (res.w1.secs - localSecs) / PAIRS;
    res.speedup2Workers = res.w1.secs / res.w2.secs;
    res.speedup2Workers1Thread = res.w1.secs / res.w2t1.secs;
    return res;
  } finally {
    await redis.stop();
  }
}

const load = () => run('cat', ['/proc/loadavg']).split(' ').slice(0, 3).join(' ');
const result = { loadBefore: load() };
log('temporal stability ...');
result.stability = [await stability(6), await stability(0)];
log('job queue ...');
result.queue = await queue();
result.loadAfter = load();
if (opt.json) console.log(JSON.stringify(result, null, 2));
else {
  const q = result.queue;
  for (const s of result.stability) {
    console.log(
      `static scene ${s.size}, ${s.frames} frames, sensor noise ${s.sensorNoise}: consecutive-frame MAD (8-bit levels)`,
    );
    console.log(`  visible ${s.madVisible.toFixed(3)}, infrared ${s.madInfrared.toFixed(3)}`);
    console.log(
      `  fused, same noise every frame (dif-fuse video): ${s.madFusedSameNoise.toFixed(3)}`,
    );
    console.log(`  fused, fresh noise per frame: ${s.madFusedNoisePerFrame.toFixed(3)}`);
    console.log(`  ${s.cli} (${s.videoSeconds.toFixed(1)} s whole command)`);
  }
  console.log(
    `queue, ${q.pairs} pairs ${q.size}: local batch ${q.localSecs.toFixed(1)} s (${q.local})`,
  );
  for (const w of ['w1', 'w2', 'w2t1'])
    console.log(
      `  ${w[1]} worker(s)${w.includes('t') ? ' --threads 1' : ''}: ${q[w].secs.toFixed(1)} s, ${q[w].pairsPerSec.toFixed(3)} pairs/s (status: ${q[w].statusThroughput.toFixed(3)} jobs/s, ${q[w].secondsPerJob.toFixed(3)} s/job in a worker)`,
    );
  console.log(
    `  overhead per job (1 worker vs local batch): ${(q.overheadPerJobSecs * 1000).toFixed(0)} ms; 2 workers speed-up ${q.speedup2Workers.toFixed(2)}x (--threads 1: ${q.speedup2Workers1Thread.toFixed(2)}x)`,
  );
  console.log(`load average before ${result.loadBefore}, after ${result.loadAfter}`);
}
