/**
 * Ctrl-C at every phase of `dif-train ddpm` (a real process, real signals). The tiny model's
 * phases take milliseconds, so DIF_FUSION_TEST_SLOW stretches the one under test: the init
 * waits per parameter (awaited, as the real init yields between parameters); the session's
 * worker thread is held while opening and before each step, blocked as onnxruntime-node's
 * native calls hold it at the paper's size (seconds to create, tens of seconds per step).
 * Bounds are generous (20 s against phases stretched to minutes): no timing is asserted.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeSyntheticPairs } from './synthetic';
import { tinyDdpm } from './test-utils';

const cli = join(dirname(fileURLToPath(import.meta.url)), '../dist/cli.js');
let root: string;
let data: string;
let config: string;

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'dif-train-signals-'));
  data = await writeSyntheticPairs(join(root, 'data'), { count: 4, width: 24, height: 20 });
  config = join(root, 'tiny.json');
  writeFileSync(config, JSON.stringify(tinyDdpm({ dropout: 0.1, iters: 1000 })));
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

interface Run {
  child: ChildProcess;
  err: () => string;
  /** Resolves once stderr matches (rejects after `ms`). */
  waitFor: (re: RegExp, ms?: number) => Promise<void>;
  /** Exit code and signal, or 'timeout' after `ms`. */
  exit: (ms?: number) => Promise<{ code: number | null; signal: string | null } | 'timeout'>;
}

function start(name: string, slow: string): Run {
  const child = spawn(
    process.execPath,
    [cli, 'ddpm', '-c', config, '--data', data, '-o', join(root, name)],
    { env: { ...process.env, DIF_FUSION_TEST_SLOW: slow }, stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let err = '';
  const waiters: Array<() => void> = [];
  child.stderr!.on('data', (d) => {
    err += String(d);
    for (const w of waiters) w();
  });
  const done = new Promise<{ code: number | null; signal: string | null }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal })),
  );
  return {
    child,
    err: () => err,
    waitFor: (re, ms = 60_000) =>
      new Promise((resolve, reject) => {
        const check = () => re.test(err) && resolve();
        waiters.push(check);
        check();
        setTimeout(() => reject(new Error(`no ${re} within ${ms} ms; stderr:\n${err}`)), ms);
      }),
    exit: (ms = 20_000) =>
      Promise.race([done, new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), ms))]),
  };
}

/** The files in a run's checkpoints folder (none, or only whole checkpoints). */
const checkpoints = (name: string) => {
  const dir = join(root, name, 'checkpoints');
  return existsSync(dir) ? readdirSync(dir) : [];
};

describe('dif-train ddpm: Ctrl-C at every phase', () => {
  it('during the weight init: stops there, nothing to save', async () => {
    const r = start('init', 'init:2000'); // ~2 minutes of init
    await r.waitFor(/initialising the weights/);
    r.child.kill('SIGINT');
    const e = await r.exit();
    if (e === 'timeout') r.child.kill('SIGKILL');
    expect(e).toEqual({ code: 1, signal: null });
    expect(r.err()).toMatch(/SIGINT: stopping; send it again to quit at once/);
    expect(r.err()).toMatch(/error: stopped while initialising the weights; nothing to save yet/);
    expect(checkpoints('init')).toEqual([]);
  }, 90_000);

  it('while ONNX Runtime creates the session (its thread blocked): stops there', async () => {
    const r = start('session', 'session:120000');
    await r.waitFor(/training graph: .* built in/);
    r.child.kill('SIGTERM');
    const e = await r.exit();
    if (e === 'timeout') r.child.kill('SIGKILL');
    expect(e).toEqual({ code: 1, signal: null });
    expect(r.err()).toMatch(
      /error: stopped while creating the ONNX Runtime session; nothing to save yet/,
    );
    expect(checkpoints('session')).toEqual([]);
  }, 90_000);

  it('mid-step (the step thread blocked): the first signal is seen at once, the second exits at once', async () => {
    const r = start('step', 'step:120000'); // the first step holds its thread for 2 minutes
    await r.waitFor(/model: .* parameters/);
    r.child.kill('SIGINT');
    await r.waitFor(/SIGINT: stopping after the current step .* again to quit at once/, 20_000);
    r.child.kill('SIGINT');
    const e = await r.exit();
    if (e === 'timeout') r.child.kill('SIGKILL');
    // Ended by the signal's default action (a shell reports 130), not by waiting for the step.
    expect(e).toEqual({ code: null, signal: 'SIGINT' });
    expect(checkpoints('step')).toEqual([]); // nothing half-written
  }, 90_000);
});
