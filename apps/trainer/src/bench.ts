/**
 * Training step time of `dif-train ddpm` (the whole step: batch crops, forward, backward
 * through fastConv2d, Adam/AdamW update) on generated data.
 *
 *   pnpm --filter @dif-fusion/trainer build && node apps/trainer/dist/bench.js [options]
 *     --inner 32 --mults 1,2,4,8,8 --res-blocks 2 --crop 64 --batch 4 --backend wasm
 *     --workers 1 --steps 5 (timed, after 1 warm-up step)
 *
 * Reference for scale (issue 4): the official PyTorch code takes 0.83 s per step at these
 * defaults on the project's 2-core CPU (0.47 s at inner_channel 16).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { BackendName } from '@dif-fusion/backends';
import { DEFAULT_DDPM_CONFIG } from './config';
import { trainDdpm } from './ddpm';
import { writeSyntheticPairs } from './synthetic';

const { values: a } = parseArgs({
  options: {
    inner: { type: 'string', default: '32' },
    mults: { type: 'string', default: '1,2,4,8,8' },
    'res-blocks': { type: 'string', default: '2' },
    crop: { type: 'string', default: '64' },
    batch: { type: 'string', default: '4' },
    backend: { type: 'string', default: 'wasm' },
    workers: { type: 'string', default: '1' },
    steps: { type: 'string', default: '5' },
  },
});

const root = mkdtempSync(join(tmpdir(), 'dif-train-bench-'));
try {
  const crop = Number(a.crop);
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
  const config = structuredClone(DEFAULT_DDPM_CONFIG);
  config.model.unet.inner_channel = Number(a.inner);
  config.model.unet.channel_multiplier = a.mults.split(',').map(Number);
  config.model.unet.res_blocks = Number(a['res-blocks']);
  config.model.unet.norm_groups = Math.min(32, Number(a.inner));
  config.train = { ...config.train, val_freq: 0, save_checkpoint_freq: 0 };
  const r = await trainDdpm({
    config,
    data,
    out: join(root, 'run'),
    backend: a.backend as BackendName,
    workers: Number(a.workers),
    iters: steps + 1,
    crop,
    batch: Number(a.batch),
    quiet: true,
    handleSigint: false,
    onStep: () => {
      const now = performance.now();
      times.push((now - last) / 1000);
      last = now;
      const c = process.cpuUsage(lastCpu); // all threads of the process (workers included)
      cpu.push((c.user + c.system) / 1e6);
      lastCpu = process.cpuUsage();
    },
  });
  const timed = times.slice(1);
  const mean = timed.reduce((s, t) => s + t, 0) / timed.length;
  const min = Math.min(...timed);
  const cpuMean = cpu.slice(1).reduce((s, t) => s + t, 0) / timed.length;
  console.log(
    `dif-train ddpm step: inner_channel ${a.inner}, channel_mults [${a.mults}], res_blocks ${a['res-blocks']}, ` +
      `${crop}x${crop}, batch ${a.batch}, backend ${r.backend}, workers ${r.workers}: ` +
      `${mean.toFixed(3)} s/step mean, ${min.toFixed(3)} s/step best over ${timed.length} steps, ` +
      `${cpuMean.toFixed(3)} CPU-s/step (all threads; on a loaded machine, CPU-s / threads estimates the unloaded time) ` +
      `(first step ${times[0].toFixed(2)} s; official PyTorch 0.83 s/step at inner 32 on the 2-core CPU)`,
  );
} finally {
  rmSync(root, { recursive: true, force: true });
}
