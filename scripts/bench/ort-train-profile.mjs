#!/usr/bin/env node
/**
 * Where an ONNX Runtime training step spends its time and memory: a few DDPM training steps
 * (the `dif-train ddpm` graph, random weights and batch, AdamF32 updates) with ORT's
 * profiler; prints the time per operator type, largest first, and the peak RSS.
 *
 *   pnpm build && node scripts/bench/ort-train-profile.mjs [--inner 16] [--attn 16]
 *     [--crop 64] [--batch 4] [--threads 2] [--steps 3] [--no-profile] [--checkpoint]
 *     [--ort-opt disabled|basic|extended|all] [--no-arena] [--mem-pattern] [--new-grads]
 *   # the paper's configuration: --inner 128 --crop 160 --batch 1 --steps 1 --no-profile
 */
import { readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { AdamF32, TrainSession } from '../../packages/onnx/dist/train.js';
import { Rng } from '../../packages/schedules/dist/index.js';
import { buildDdpmTrainGraph } from '../../packages/train/dist/index.js';
import { UNet } from '../../packages/unet/dist/index.js';

const { values: a } = parseArgs({
  options: {
    inner: { type: 'string', default: '16' },
    attn: { type: 'string', default: '16' },
    crop: { type: 'string', default: '64' },
    batch: { type: 'string', default: '4' },
    threads: { type: 'string', default: '2' },
    steps: { type: 'string', default: '3' },
    'no-profile': { type: 'boolean', default: false },
    /** Gradient checkpointing: recompute each ResnetBlocWithAttn in the backward pass. */
    checkpoint: { type: 'boolean', default: false },
    /** ORT graph optimisation level (disabled | basic | extended | all; default ORT's). */
    'ort-opt': { type: 'string' },
    /** ORT's CPU memory arena off (allocations go straight to malloc/free). */
    'no-arena': { type: 'boolean', default: false },
    /** ORT's memory pattern on (TrainSession turns it off; for the comparison in BENCHMARKS). */
    'mem-pattern': { type: 'boolean', default: false },
    /**
     * New gradient arrays from ORT every step (as before issue #29) instead of ORT writing
     * them into arrays allocated once (what the trainer does now).
     */
    'new-grads': { type: 'boolean', default: false },
  },
});
const profile = !a['no-profile'];
const inner = Number(a.inner);
const crop = Number(a.crop);
const batch = Number(a.batch);
const unet = new UNet({
  in_channel: 4,
  out_channel: 4,
  inner_channel: inner,
  norm_groups: Math.min(32, inner),
  channel_multiplier: [1, 2, 4, 8, 8],
  attn_res: a.attn === '' ? [] : a.attn.split(',').map(Number),
  res_blocks: 2,
  dropout: 0.2,
  image_size: crop,
});
const graph = buildDdpmTrainGraph(unet, {
  batch,
  size: crop,
  loss: 'l2',
  checkpoint: a.checkpoint,
});
const session = await TrainSession.open(graph, {
  threads: Number(a.threads),
  ort: {
    ...(profile ? { enableProfiling: true, profileFilePrefix: '/tmp/dif-ort-train' } : {}),
    ...(a['ort-opt'] ? { graphOptimizationLevel: a['ort-opt'] } : {}),
    ...(a['no-arena'] ? { enableCpuMemArena: false } : {}),
    ...(a['mem-pattern'] ? { enableMemPattern: true } : {}),
  },
});
const rng = new Rng(1);
const fill = (n, f) => Float32Array.from({ length: n }, f);
const size = (s) => s.reduce((x, y) => x * y, 1);
const params = new Map(
  graph.params.map((p) => [p.name, fill(size(p.shape), () => rng.normal() * 0.05)]),
);
const feeds = {};
for (const [name, shape] of graph.inputs)
  feeds[name] = name.startsWith('dropout')
    ? fill(size(shape), () => (rng.uniform() < 0.2 ? 0 : 1.25))
    : name === 'level'
      ? fill(size(shape), () => 0.5)
      : fill(size(shape), () => rng.normal());
const weights = new Map(
  graph.params.map((p) => [p.name, { shape: p.shape, data: params.get(p.name) }]),
);
const adam = new AdamF32(weights, { type: 'adam', lr: 1e-4 });
const grads = a['new-grads']
  ? undefined
  : new Map(graph.params.map((p) => [p.name, new Float32Array(size(p.shape))]));
const wall = [];
// CPU seconds (all threads) per step: steadier than wall time on a shared machine
const cpu = [];
// resident memory after each step: with the memory pattern it grows at the second run
const rss = [];
for (let i = 0; i < Number(a.steps) + 1; i++) {
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  const r = await session.run(params, feeds, grads);
  adam.apply(r.grads);
  wall.push((performance.now() - t0) / 1000);
  const c = process.cpuUsage(c0);
  cpu.push((c.user + c.system) / 1e6);
  rss.push(process.memoryUsage().rss / 2 ** 30);
}
const count = graph.params.reduce((n, p) => n + size(p.shape), 0);
console.log(
  `${a.checkpoint ? 'checkpointed, ' : ''}${count.toLocaleString('en-US')} parameters; step (graph + Adam) ${wall.map((w) => w.toFixed(2)).join(', ')} s, CPU ${cpu.map((w) => w.toFixed(1)).join(', ')} s; RSS ${rss.map((r) => r.toFixed(2)).join(', ')} GiB; peak RSS ${(process.resourceUsage().maxRSS / 1024 / 1024).toFixed(2)} GiB`,
);
if (!profile) {
  await session.release();
  process.exit(0);
}
session.endProfiling();
// onnxruntime-node writes <prefix>_<timestamp>.json and does not return the name
const file = readdirSync('/tmp')
  .filter((f) => f.startsWith('dif-ort-train') && f.endsWith('.json'))
  .map((f) => `/tmp/${f}`)
  .sort((x, y) => statSync(y).mtimeMs - statSync(x).mtimeMs)[0];
await session.release();
const events = JSON.parse(readFileSync(file, 'utf8'));
rmSync(file, { force: true });
const byOp = new Map();
let total = 0;
for (const e of events) {
  if (e.cat !== 'Node' || !e.name.endsWith('_kernel_time')) continue;
  const op = e.args?.op_name ?? '?';
  byOp.set(op, (byOp.get(op) ?? 0) + e.dur);
  total += e.dur;
}
console.log(
  `ORT training step profile: inner_channel ${inner}, ${crop}x${crop}, batch ${batch}, attn [${a.attn}], ${a.threads} threads, ${Number(a.steps) + 1} steps`,
);
for (const [op, us] of [...byOp].sort((x, y) => y[1] - x[1]).slice(0, 15))
  console.log(
    `${op.padEnd(24)} ${(us / 1e3).toFixed(0).padStart(8)} ms  ${((100 * us) / total).toFixed(1).padStart(5)}%`,
  );
