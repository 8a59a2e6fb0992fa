// Where a model folder's load and first run go, phase by phase, in one process:
//   node scripts/bench/load-phases.mjs MODEL_DIR [--threads 2] [--size 640x480] [--cache DIR]
//     [--runs 1] [--profile FILE.json] [--load-only]
// Phases: reading model.onnx (+ .data), its SHA-256 (the check against config.json's
// graph_sha256), loadFusionModel as dif-fuse calls it (with --cache: the optimised-graph
// cache, so a second invocation reads it; --load-only: this phase alone), then --runs runs of fuse() on a synthetic pair.
// With --profile, ONNX Runtime's profiler is on for the runs and the per-operator-type totals
// of the first run are printed (the raw trace is written to FILE.json).
// Prints one JSON object: ms per phase, peak RSS (ru_maxrss) after each, CPU ms of the process.
import { readdirSync, readFileSync, renameSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';

const { values: o, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    threads: { type: 'string', default: '2' },
    size: { type: 'string', default: '640x480' },
    cache: { type: 'string' },
    runs: { type: 'string', default: '1' },
    profile: { type: 'string' },
    'load-only': { type: 'boolean', default: false },
  },
});
const dir = positionals[0];
if (!dir)
  throw new Error('usage: load-phases.mjs MODEL_DIR [--threads N] [--size WxH] [--cache DIR]');
const { graphDigest, loadFusionModel, MODEL_FILE } = await import(
  '../../packages/onnx/dist/index.js'
);
const [W, H] = o.size.split('x').map(Number);
const out = { model: dir, size: o.size, threads: Number(o.threads) };
const rss = () => Math.round(process.resourceUsage().maxRSS / 1024);
const cpu = () => {
  const u = process.cpuUsage();
  return Math.round((u.user + u.system) / 1000);
};
let t = performance.now();
const lap = (name) => {
  const now = performance.now();
  out[`${name}_ms`] = Math.round(now - t);
  out[`${name}_rss_mb`] = rss();
  t = now;
};
if (!o['load-only']) {
  const bytes = readFileSync(join(dir, MODEL_FILE));
  lap('read');
  graphDigest(bytes, []);
  lap('sha256');
}
const model = await loadFusionModel(dir, {
  device: 'cpu',
  threads: Number(o.threads),
  cacheDir: o.cache,
  ort: o.profile
    ? { enableProfiling: true, profileFilePrefix: resolve(o.profile).replace(/\.json$/, '') }
    : undefined,
});
out.session_cache = model.sessionCache ?? 'none';
lap('load');
const wave = (n, f) => Float32Array.from({ length: n }, (_, i) => Math.sin(i * f) * 0.8);
const input = {
  n: 1,
  height: H,
  width: W,
  ir: wave(H * W, 0.37),
  vis: wave(3 * H * W, 0.11),
  seed: 0,
};
for (let r = 0; r < Number(o.runs); r++) {
  await model.fuse(input);
  lap(`run${r + 1}`);
}
out.cpu_ms = cpu();
if (o.profile) {
  // onnxruntime-node writes <prefix>_<date>.json when the session ends (endProfiling returns
  // nothing there): release, then find it
  model.session.endProfiling();
  await model.release();
  const prefix = basename(o.profile).replace(/\.json$/, '');
  const where = dirname(resolve(o.profile));
  const found = readdirSync(where).filter((f) => f.startsWith(`${prefix}_`) && f.endsWith('.json'));
  if (found.length) renameSync(join(where, found.sort().at(-1)), resolve(o.profile));
  const events = JSON.parse(readFileSync(o.profile, 'utf8'));
  for (const e of events)
    if (e.cat === 'Session') out[`ort_${e.name}_ms`] = Math.round(e.dur / 1000);
  // per op type: the first run's node events (ORT names them <node>_kernel_time)
  const firstRun = events.find((e) => e.name === 'model_run');
  const byType = {};
  for (const e of events)
    if (
      e.cat === 'Node' &&
      e.name.endsWith('_kernel_time') &&
      (!firstRun || e.ts <= firstRun.ts + firstRun.dur)
    ) {
      const op = e.args?.op_name ?? '?';
      byType[op] = (byType[op] ?? 0) + e.dur / 1000;
    }
  const total = Object.values(byType).reduce((a, b) => a + b, 0);
  out.first_run_ops_ms = Object.fromEntries(
    Object.entries(byType)
      .sort((a, b) => b[1] - a[1])
      .map(([k, v]) => [k, `${Math.round(v)} (${((100 * v) / total).toFixed(1)}%)`]),
  );
} else await model.release();
console.log(JSON.stringify(out, null, 1));
