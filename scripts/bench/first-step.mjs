#!/usr/bin/env node
/**
 * Time to the first training step of `dif-train ddpm` with the reference's config
 * (scripts/bench/config/ddpm_train.json: inner_channel 128, 160x160, batch 1, 370 M
 * parameters), and the peak RSS until then. Runs the CLI, stamps each stderr line with the
 * seconds since the start (the trainer reports its phases: weights initialised, training
 * graph built, ONNX Runtime session created, step 1) and kills it once step 1 is printed
 * (before the final checkpoint of several GB is written). Linux (peak RSS from /proc).
 *
 *   pnpm build && nice -n 10 node scripts/bench/first-step.mjs \
 *     [--config scripts/bench/config/ddpm_train.json] [--data ../shared/data/roadscene/train]
 *     [--threads N] [--json] [-- extra dif-train flags, e.g. --crop 64]
 *
 * Compare with the official code's build + init time (BENCHMARKS.md, "Time to the first
 * training step").
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '../..');
const { values: a, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    config: { type: 'string', default: join(here, 'config/ddpm_train.json') },
    data: {
      type: 'string',
      default: process.env.DIF_FUSION_SHARED
        ? join(process.env.DIF_FUSION_SHARED, 'data/roadscene/train')
        : resolve(root, '../shared/data/roadscene/train'),
    },
    threads: { type: 'string' },
    json: { type: 'boolean', default: false },
    /** Give up after this many seconds (default 1800). */
    limit: { type: 'string', default: '1800' },
  },
});

const out = mkdtempSync(join(tmpdir(), 'dif-first-step-'));
const args = [
  join(root, 'apps/trainer/dist/cli.js'),
  'ddpm',
  ...['-c', a.config, '--data', a.data, '-o', join(out, 'run'), '--iters', '1'],
  ...(a.threads ? ['--threads', a.threads] : []),
  ...positionals,
];
const t0 = performance.now();
const child = spawn(process.execPath, args, { stdio: ['ignore', 'inherit', 'pipe'] });
const secs = () => (performance.now() - t0) / 1000;
let peakKiB = 0;
const pollRss = () => {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'));
    if (m) peakKiB = Math.max(peakKiB, Number(m[1]));
  } catch {
    // the process has ended
  }
};
const poll = setInterval(pollRss, 250);
const limit = setTimeout(() => child.kill('SIGKILL'), Number(a.limit) * 1000);
const phases = [];
let firstStep = null;
let buf = '';
child.stderr.on('data', (d) => {
  buf += d;
  let i = buf.indexOf('\n');
  while (i >= 0) {
    const line = buf.slice(0, i).trim();
    buf = buf.slice(i + 1);
    i = buf.indexOf('\n');
    if (!line) continue;
    const t = secs();
    phases.push({ t: Number(t.toFixed(1)), line });
    if (!a.json) process.stderr.write(`[${t.toFixed(1).padStart(6)} s] ${line}\n`);
    if (firstStep === null && /\bstep 1\//.test(line)) {
      firstStep = t;
      pollRss();
      child.kill('SIGKILL');
    }
  }
});
const code = await new Promise((r) => child.on('close', (c, s) => r(c ?? s)));
clearInterval(poll);
clearTimeout(limit);
rmSync(out, { recursive: true, force: true });
const result = {
  config: a.config,
  first_step_s: firstStep === null ? null : Number(firstStep.toFixed(1)),
  peak_rss_gib: Number((peakKiB / 1024 ** 2).toFixed(2)),
  phases,
};
if (a.json) console.log(JSON.stringify(result));
else
  console.log(
    firstStep === null
      ? `no step 1 line (exit ${code})`
      : `first step after ${result.first_step_s} s, peak RSS ${result.peak_rss_gib} GiB`,
  );
process.exitCode = firstStep === null ? 1 : 0;
