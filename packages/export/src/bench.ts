/**
 * Fusion speed on ONNX Runtime CPU: builds a random-init fusion model of a given size,
 * fuses one synthetic pair (640x480 by default) and prints the time per image, the
 * GFLOP count of the graph (FlopOps) and the achieved GFLOP/s.
 *
 *   pnpm --filter @dif-fusion/export bench                       # preset small (inner_channel 32)
 *   BENCH_PRESET=paper pnpm --filter @dif-fusion/export bench    # the paper's size (inner_channel 128)
 *   node dist/bench.js --preset paper --width 640 --height 480 --threads 2 --runs 1 --mode reference
 *   node dist/bench.js --config config/fusion_train.json       # reference fusion config format
 *
 * Random weights never change the arithmetic, so the timing is that of a trained model of
 * the same configuration. The first run (warm-up: ORT allocates its arenas) is reported
 * separately from the timed runs.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import {
  FusionHead,
  type FusionHeadMode,
  headConfigFromReference,
  parseJsonWithComments,
} from '@dif-fusion/fusion-head';
import { GraphBuilder, loadFusionModel, openSession, runFloat } from '@dif-fusion/onnx';
import { PAPER_UNET_CONFIG, parseUNetConfig, UNet, type UNetConfig } from '@dif-fusion/unet';
import { exportFusionModel, randomWeights } from './export';
import { fusionFlops } from './fusion-flops';

// The paper's UNet (config/ddpm_train.json), dropout off, and its head (fusion_train.json).
const paperUnet: UNetConfig = { ...PAPER_UNET_CONFIG, dropout: 0 };
const HEAD = { feat_scales: [2, 5, 8, 11, 14], t: [5, 50, 100] };
const PRESETS: Record<string, { unet: UNetConfig; feat_scales: number[]; t: number[] }> = {
  // dif-train's default DDPM size (inner_channel 32), attention only in the middle.
  small: { unet: { ...paperUnet, inner_channel: 32 }, ...HEAD },
  // The paper's configuration.
  paper: { unet: paperUnet, ...HEAD },
};

const { values } = parseArgs({
  options: {
    preset: { type: 'string', default: process.env.BENCH_PRESET ?? 'small' },
    config: { type: 'string' },
    'image-size': { type: 'string' },
    width: { type: 'string', default: process.env.BENCH_WIDTH ?? '640' },
    height: { type: 'string', default: process.env.BENCH_HEIGHT ?? '480' },
    threads: { type: 'string', default: process.env.BENCH_THREADS },
    runs: { type: 'string', default: process.env.BENCH_RUNS ?? '1' },
    mode: { type: 'string', default: process.env.BENCH_MODE ?? 'reference' },
    device: { type: 'string', default: process.env.BENCH_DEVICE ?? 'cpu' },
    'group-norm': { type: 'string', default: 'instancenorm' },
    profile: { type: 'boolean', default: false },
    'flops-only': { type: 'boolean', default: false },
  },
});

function fail(msg: string): never {
  process.stderr.write(`error: ${msg}\n`);
  process.exit(1);
}

const mode = values.mode as FusionHeadMode;
if (mode !== 'reference' && mode !== 'full') fail(`--mode must be reference or full, got ${mode}`);
let unetCfg: UNetConfig;
let headCfg: ReturnType<typeof headConfigFromReference>;
let label: string;
if (values.config) {
  const json = parseJsonWithComments(readFileSync(values.config, 'utf8'), values.config) as any;
  unetCfg = parseUNetConfig(
    { ...json.model.unet, dropout: 0 },
    { image_size: Number(values['image-size'] ?? json.model?.diffusion?.image_size ?? 160) },
  );
  headCfg = headConfigFromReference(json, unetCfg, { mode });
  label = values.config;
} else {
  const p = PRESETS[values.preset];
  if (!p) fail(`unknown preset ${values.preset} (small, paper)`);
  unetCfg = { ...p.unet };
  if (values['image-size']) unetCfg.image_size = Number(values['image-size']);
  headCfg = headConfigFromReference({ model_df: { feat_scales: p.feat_scales, t: p.t } }, unetCfg, {
    mode,
  });
  label = `preset ${values.preset}`;
}
const width = Number(values.width);
const height = Number(values.height);
// --runs 0: only the first run (for the largest configurations).
const runs = Math.max(0, Number(values.runs));
const threads = values.threads ? Number(values.threads) : undefined;

const unet = new UNet(unetCfg, { init: 'torch' });
const head = new FusionHead(headCfg, unetCfg);
const multiple = unet.sizeMultiple;
const padH = Math.ceil(height / multiple) * multiple;
const padW = Math.ceil(width / multiple) * multiple;
const flops = fusionFlops(unet, head, { height: padH, width: padW });
const g = (x: number) => (x / 1e9).toFixed(1);
const k = head.config.time_steps.length;

if (values['flops-only']) {
  process.stdout.write(
    `${label}, ${padW}x${padH}, image_size ${unetCfg.image_size}, head ${mode}: ${g(flops.total.matmul)} GFLOP matmul (UNet ${g(flops.unet.matmul)}, head ${g(flops.head.matmul)}), ${g(flops.total.elementwise)} element-wise; full UNet pass ${g(flops.fullPass.matmul)}; floor at 190 GFLOP/s ${((flops.total.matmul + flops.total.elementwise) / 1e9 / 190).toFixed(1)} s\n`,
  );
  process.exit(0);
}

const dir = mkdtempSync(join(tmpdir(), 'dif-onnx-bench-'));
try {
  let t0 = performance.now();
  const res = exportFusionModel(dir, {
    unet,
    unetWeights: randomWeights(unet.params(), 0),
    head,
    headWeights: randomWeights(head.params(), 0, { orthogonal: 'uniform' }),
    schedule: { schedule: 'linear', n_timestep: 2000, linear_start: 1e-6, linear_end: 1e-2 },
    seed: 0,
    groupNorm: values['group-norm'] as 'instancenorm' | 'reduce',
    provenance: { source: 'random-init (bench)' },
  });
  const exportS = (performance.now() - t0) / 1000;
  t0 = performance.now();
  const model = await loadFusionModel(dir, {
    device: values.device as 'cpu' | 'cuda' | 'auto',
    threads,
    ort: values.profile
      ? { enableProfiling: true, profileFilePrefix: join(dir, 'profile') }
      : undefined,
  });
  const loadS = (performance.now() - t0) / 1000;
  const px = padH * padW;
  const ir = new Float32Array(px);
  const vis = new Float32Array(3 * px);
  for (let i = 0; i < px; i++) {
    const x = i % padW;
    const y = Math.floor(i / padW);
    ir[i] = Math.sin(x / 17) * 0.8;
    for (let c = 0; c < 3; c++) vis[c * px + i] = Math.cos((y + 10 * c) / 23) * 0.7;
  }
  const times: number[] = [];
  for (let r = 0; r <= runs; r++) {
    t0 = performance.now();
    await model.fuse({ ir, vis, seed: 0, n: 1, height: padH, width: padW });
    times.push((performance.now() - t0) / 1000);
  }
  if (values.profile) model.session.endProfiling();
  await model.release();
  const gemm = await gemmRate(threads);
  const warm = runs === 0 ? times[0] : times.shift()!;
  const best = Math.min(...times);
  const total = flops.total.matmul + flops.total.elementwise;
  const lines = [
    `## ONNX fusion bench: ${label}, ${width}x${height} (padded ${padW}x${padH}), head ${mode}, ${k} time steps`,
    '',
    '| item | value |',
    '| --- | --- |',
    `| UNet | inner_channel ${unetCfg.inner_channel}, channel_multiplier [${unetCfg.channel_multiplier}], res_blocks ${unetCfg.res_blocks}, attn_res [${unetCfg.attn_res}] at image_size ${unetCfg.image_size} |`,
    `| graph | ${res.nodes} nodes, ${(res.weights / 1e6).toFixed(1)} M weights, ${(res.bytes / 1e6).toFixed(0)} MB, export ${exportS.toFixed(1)} s, session ${loadS.toFixed(1)} s |`,
    `| provider | ${model.provider}${threads ? `, ${threads} threads` : ''} |`,
    `| GFLOP (conv/gemm/attention, 2 per MAC) | ${g(flops.total.matmul)} (UNet ${g(flops.unet.matmul)}, head ${g(flops.head.matmul)}) |`,
    `| GFLOP element-wise | ${g(flops.total.elementwise)} |`,
    `| pruning | pruned UNet pass ${g(flops.unet.matmul / k)} vs full pass ${g(flops.fullPass.matmul)} GFLOP (${((1 - flops.unet.matmul / k / flops.fullPass.matmul) * 100).toFixed(0)}% saved) |`,
    `| first run (warm-up) | ${warm.toFixed(2)} s |`,
    `| fuse time (${runs === 0 ? 'first run' : `best of ${times.length} after it`}) | **${best.toFixed(2)} s** |`,
    `| achieved | ${(flops.total.matmul / 1e9 / best).toFixed(1)} GFLOP/s (matmul) |`,
    `| floor at 190 GFLOP/s | ${(total / 1e9 / 190).toFixed(1)} s (ratio ${(best / (total / 1e9 / 190)).toFixed(2)}x) |`,
    `| ORT MatMul 1536² now, same threads | ${gemm.toFixed(1)} GFLOP/s: floor at that rate ${(total / 1e9 / gemm).toFixed(1)} s (ratio ${(best / (total / 1e9 / gemm)).toFixed(2)}x) |`,
  ];
  if (values.profile) lines.push('', ...profileTable(dir));
  process.stdout.write(`${lines.join('\n')}\n`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}

/** Time per ONNX op type over every run, from ORT's profile (written when the session is released). */
function profileTable(folder: string): string[] {
  const file = readdirSync(folder).find((f) => f.startsWith('profile') && f.endsWith('.json'));
  if (!file) return ['(no profile written)'];
  const events = JSON.parse(readFileSync(join(folder, file), 'utf8')) as Array<{
    cat: string;
    name: string;
    dur: number;
    args?: { op_name?: string };
  }>;
  const byOp = new Map<string, { us: number; n: number }>();
  let total = 0;
  for (const e of events) {
    if (e.cat !== 'Node' || !e.name.endsWith('_kernel_time')) continue;
    const op = e.args?.op_name ?? '?';
    const r = byOp.get(op) ?? { us: 0, n: 0 };
    r.us += e.dur;
    r.n++;
    byOp.set(op, r);
    total += e.dur;
  }
  const rows = [...byOp.entries()].sort((a, b) => b[1].us - a[1].us);
  return [
    '| op (all runs) | calls | seconds | share |',
    '| --- | --- | --- | --- |',
    ...rows.map(
      ([op, r]) =>
        `| ${op} | ${r.n} | ${(r.us / 1e6).toFixed(2)} | ${((100 * r.us) / total).toFixed(1)}% |`,
    ),
  ];
}

/**
 * What this machine gives ONNX Runtime right now: GFLOP/s of a 1536x1536 MatMul (best of 3)
 * with the same thread count. On a shared machine it moves with the load, so the fuse time
 * is also compared with it.
 */
async function gemmRate(threads: number | undefined): Promise<number> {
  const n = 1536;
  const gb = new GraphBuilder('gemm');
  const a = gb.input('a', [n, n]);
  const w = gb.initializer('w', [n, n], new Float32Array(n * n).fill(0.001));
  gb.output(gb.node('MatMul', [a, w], {}), 'y');
  const { session } = await openSession(gb.serialize().model, { device: 'cpu', threads });
  const data = new Float32Array(n * n).fill(0.5);
  let best = Number.POSITIVE_INFINITY;
  for (let r = 0; r < 4; r++) {
    const t = performance.now();
    await runFloat(session, { a: { data, dims: [n, n] } });
    if (r > 0) best = Math.min(best, performance.now() - t);
  }
  await session.release();
  return (2 * n ** 3) / 1e9 / (best / 1000);
}
