/**
 * Training step time of `dif-train ddpm` and `dif-train head` (the whole step: batch crops,
 * forward, backward, Adam/AdamW update; for the head, fresh frozen-DDPM features every step,
 * or with --feature-cache the features of cached crops, computed before the first step)
 * on generated data, on ONNX Runtime or a tfjs backend.
 *
 *   pnpm --filter @dif-fusion/trainer build && node apps/trainer/dist/bench.js [options]
 *     --command ddpm|head --inner 16 --mults 1,2,4,8,8 --attn 16 --res-blocks 2 --crop 64
 *     --batch 4 --dropout 0.2 --backend onnxruntime|wasm|cpu --threads 2 --workers 1
 *     --steps 5 (timed, after 1 warm-up step) --json
 *     --feature-cache N (head: steps on cached features, train.feature_cache; default 0)
 *
 * Prints wall and CPU seconds per step and the peak RSS of the process. Side-by-side with
 * the official-architecture PyTorch step: scripts/bench/torch_ddpm_step.py (same options).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { DEFAULT_DDPM_CONFIG, type HeadTrainConfig } from './config';
import { type TrainBackend, trainDdpm } from './ddpm';
import { trainHead } from './head-train';
import { writeSyntheticPairs } from './synthetic';

const { values: a } = parseArgs({
  options: {
    command: { type: 'string', default: 'ddpm' },
    inner: { type: 'string', default: '16' },
    mults: { type: 'string', default: '1,2,4,8,8' },
    attn: { type: 'string', default: '16' },
    'norm-groups': { type: 'string' },
    'res-blocks': { type: 'string', default: '2' },
    crop: { type: 'string', default: '64' },
    batch: { type: 'string', default: '4' },
    dropout: { type: 'string', default: '0.2' },
    backend: { type: 'string', default: 'onnxruntime' },
    threads: { type: 'string' },
    workers: { type: 'string', default: '1' },
    steps: { type: 'string', default: '5' },
    json: { type: 'boolean', default: false },
    'feature-cache': { type: 'string', default: '0' },
  },
});

const root = mkdtempSync(join(tmpdir(), 'dif-train-bench-'));
try {
  const crop = Number(a.crop);
  const inner = Number(a.inner);
  const data = await writeSyntheticPairs(join(root, 'data'), {
    count: 8,
    width: crop + 16,
    height: crop + 8,
  });
  const steps = Number(a.steps);
  const times: number[] = [];
  const cpu: number[] = [];
  let last = performance.now();
  let lastCpu = process.cpuUsage();
  const onStep = () => {
    const now = performance.now();
    times.push((now - last) / 1000);
    last = now;
    const c = process.cpuUsage(lastCpu); // all threads of the process
    cpu.push((c.user + c.system) / 1e6);
    lastCpu = process.cpuUsage();
  };
  const config = structuredClone(DEFAULT_DDPM_CONFIG);
  config.model.unet.inner_channel = inner;
  config.model.unet.channel_multiplier = a.mults.split(',').map(Number);
  config.model.unet.attn_res = a.attn === '' ? [] : a.attn.split(',').map(Number);
  config.model.unet.res_blocks = Number(a['res-blocks']);
  config.model.unet.dropout = Number(a.dropout);
  config.model.unet.norm_groups = Number(a['norm-groups'] ?? Math.min(32, inner));
  config.train = { ...config.train, val_freq: 0, save_checkpoint_freq: 0 };
  const backend = a.backend as TrainBackend;
  const threads = a.threads === undefined ? undefined : Number(a.threads);
  const common = { quiet: true, handleSigint: false, backend, threads } as const;
  let r: { backend: string };
  if (a.command === 'head') {
    // A DDPM of this size (2 steps on ORT), then head steps on it with fresh features.
    const d = await trainDdpm({
      ...common,
      backend: 'onnxruntime',
      config,
      data,
      out: join(root, 'ddpm'),
      iters: 2,
      crop,
      batch: Number(a.batch),
    });
    const levels = config.model.unet.channel_multiplier.length;
    const head: Partial<HeadTrainConfig> = {
      datasets: { train: { dataroot: null, resolution: crop, batch_size: Number(a.batch) } },
      model_df: {
        // one feature per level, coarsest first (the default model's choice)
        feat_scales: Array.from({ length: levels }, (_, i) => (levels - 1 - i) * 3 + 2),
        t: [5, 50, 100],
        feat_type: 'dec',
        mode: 'full',
      },
      model: { beta_schedule: config.model.beta_schedule },
      // 8 pairs, batch 4: 2 steps per epoch (the checkpoint at an epoch's end is small)
      train: {
        n_epoch: Math.ceil((steps + 1) / 2),
        optimizer: { type: 'adam', lr: 1e-4 },
        print_freq: 1000,
      },
    };
    r = await trainHead({
      ...common,
      config: head,
      ddpm: d.checkpoint as string,
      data,
      out: join(root, 'head'),
      // 8 pairs, batch 4, one sampler epoch cached: 2 cached batches, the same 2 steps an epoch
      featureCache: Number(a['feature-cache']),
      onStep,
    });
  } else {
    r = await trainDdpm({
      ...common,
      config,
      data,
      out: join(root, 'run'),
      workers: Number(a.workers),
      iters: steps + 1,
      crop,
      batch: Number(a.batch),
      onStep,
    });
  }
  const timed = times.slice(1, steps + 1);
  const mean = timed.reduce((s, t) => s + t, 0) / timed.length;
  const best = Math.min(...timed);
  const cpuMean = cpu.slice(1, steps + 1).reduce((s, t) => s + t, 0) / timed.length;
  const rssMb = process.resourceUsage().maxRSS / 1024;
  const res = {
    command: a.command,
    backend: r.backend,
    ...(a.command === 'head' ? { feature_cache: Number(a['feature-cache']) } : {}),
    inner,
    mults: a.mults,
    attn: a.attn,
    crop,
    batch: Number(a.batch),
    threads: threads ?? 'default',
    wall_mean_s: +mean.toFixed(3),
    wall_best_s: +best.toFixed(3),
    cpu_s: +cpuMean.toFixed(3),
    first_step_s: +times[0].toFixed(2),
    peak_rss_mb: Math.round(rssMb),
  };
  if (a.json) console.log(JSON.stringify(res));
  else
    console.log(
      `dif-train ${a.command} step: inner_channel ${inner}, channel_multiplier [${a.mults}], attn_res [${a.attn}], ` +
        `${crop}x${crop}, batch ${a.batch}, backend ${r.backend}${a.command === 'head' && a['feature-cache'] !== '0' ? `, feature cache ${a['feature-cache']}` : ''}: ${mean.toFixed(3)} s/step mean, ` +
        `${best.toFixed(3)} best over ${timed.length} steps, ${cpuMean.toFixed(3)} CPU-s/step (all threads), ` +
        `first step ${times[0].toFixed(2)} s, peak RSS ${Math.round(rssMb)} MB`,
    );
} finally {
  rmSync(root, { recursive: true, force: true });
}
