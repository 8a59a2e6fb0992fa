/**
 * The set-up every training command shares: the resume-or-fresh decision, the backend, the
 * run folder (config.json, log.jsonl), the progress bar, the stop signal and the clock.
 */
import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Progress } from '@dif-fusion/cli-kit';
import { makeDirsSync, removeStaleTempFiles } from '@dif-fusion/io';
import type { Device } from '@dif-fusion/onnx';
import { type BackendName, useBackend } from '@dif-fusion/tfjs';
import {
  type Checkpoint,
  type CheckpointKind,
  listCheckpoints,
  loadCheckpoint,
  saveCheckpoint,
} from './checkpoint';
import { weightsFinite } from './divergence';
import { UserError } from './errors';
import { RateMeter, RunLog, StopSignal } from './run';

/** Where a training step runs: a tfjs backend or ONNX Runtime. */
export type TrainBackend = BackendName | 'onnxruntime';

/** The options both training commands share. */
export interface RunOptions {
  /** Run folder. */
  out: string;
  /** Where steps run: a tfjs backend or 'onnxruntime' (the default). */
  backend?: TrainBackend;
  /** ONNX Runtime device for `backend: 'onnxruntime'` (default cpu). */
  device?: Device;
  /** ONNX Runtime intra-op threads (default: one per core). */
  threads?: number;
  /** Training pairs: a folder with ir/ and vi/ (overrides datasets.train.dataroot). */
  data?: string;
  /** datasets.train.batch_size override. */
  batch?: number;
  /** datasets.train.resolution override (crop size). */
  crop?: number;
  /** train.optimizer.lr override. */
  lr?: number;
  /** Seed of every random draw (default 0). */
  seed?: number;
  /** Resume: true = latest checkpoint in `out`; a string = checkpoint file or folder. */
  resume?: boolean | string;
  /** Checkpoints kept (default 3; 0 = all). */
  keep?: number;
  /** No progress bar, step lines or messages on stderr; warnings and errors still print. */
  quiet?: boolean;
  /** Show the progress bar (default: stderr is a TTY). */
  progressBar?: boolean;
  /** Handle Ctrl-C (default true). */
  handleSigint?: boolean;
  /** Called after every step with its loss. */
  onStep?: (step: number, loss: number) => void;
  /** Testing hook: replace the loss of a step (e.g. inject NaN). */
  lossHook?: (step: number, loss: number) => number;
}

const DEFAULT_KEEP = 3;

/** A checkpoint loaded to resume from. */
export type LoadedCheckpoint = Checkpoint & { path: string };

/** The checkpoint to resume from (--resume), or null for a fresh run in an unused folder. */
export function resumePoint(kind: CheckpointKind, opts: RunOptions): LoadedCheckpoint | null {
  if (opts.resume)
    return loadCheckpoint(typeof opts.resume === 'string' ? opts.resume : resolve(opts.out), kind);
  if (listCheckpoints(join(resolve(opts.out), 'checkpoints')).length > 0)
    throw new UserError(
      `${opts.out} already holds checkpoints: pass --resume to continue that run, or choose another --out`,
    );
  return null;
}

/** The run's seed: the checkpoint's on resume, else --seed (default 0). */
export function runSeed(opts: RunOptions, ckpt: LoadedCheckpoint | null): number {
  return ckpt ? Number(ckpt.extra.seed ?? 0) : (opts.seed ?? 0);
}

/** A training run in progress: its folder, log, progress bar, stop signal and clock. */
export class RunContext {
  readonly out: string;
  readonly log: RunLog;
  readonly stop: StopSignal;
  readonly rate = new RateMeter();
  readonly progress: Progress;
  /** A message on stderr, unless quiet (lines starting `warning:` print even then). */
  readonly say: (message: string) => void;
  /** A message on stderr even when quiet (why a run stopped early). */
  readonly warn: (message: string) => void;
  private readonly t0 = Date.now();
  /** The latest checkpoint from before any divergence; spared by the --keep rotation. */
  goodCheckpoint: string | null = null;
  /** Checkpoints written with non-finite weights. */
  private readonly nonFinite = new Set<string>();

  constructor(
    private readonly opts: RunOptions,
    printFreq: number,
  ) {
    this.out = resolve(opts.out);
    this.log = new RunLog(this.out);
    const quiet = opts.quiet ?? false;
    this.progress = new Progress({ quiet, bar: opts.progressBar, every: printFreq });
    this.warn = (m) => process.stderr.write(`${m}\n`);
    this.say = (m) => {
      if (!quiet || m.startsWith('warning:')) this.warn(m);
    };
    this.stop = new StopSignal(opts.handleSigint ?? true, this.say);
  }

  /** Seconds since the run started. */
  elapsed(): number {
    return (Date.now() - this.t0) / 1000;
  }

  /** Write an event record (checkpoint, samples, val, nan) with the time. */
  event(record: { step: number; event: string; [k: string]: unknown }): void {
    this.log.write({ ...record, time: this.elapsed() });
  }

  /**
   * Create the run folder with the resolved config, removing the temporary files of killed
   * writes (`.NAME.PID.RAND.tmp`); drop log records past the resumed step
   * (or, on a fresh start, of a run killed before its first checkpoint), which would
   * otherwise be written twice.
   */
  writeFolder(config: unknown, resumedStep: number | null): void {
    makeDirsSync(this.out);
    // Temporary files of checkpoints, plots and samples whose writer was killed mid-write.
    for (const dir of ['', 'checkpoints', 'samples', 'val'])
      for (const f of removeStaleTempFiles(join(this.out, dir)))
        this.say(`removed ${f}, left by an interrupted write`);
    writeFileSync(join(this.out, 'config.json'), `${JSON.stringify(config, null, 2)}\n`);
    this.log.truncateAfter(resumedStep ?? 0);
  }

  /** Write a checkpoint (keeping the last --keep) and its log event; returns its path. */
  saveCheckpoint(ckpt: Checkpoint): string {
    const path = saveCheckpoint(join(this.out, 'checkpoints'), ckpt, {
      keep: this.opts.keep ?? DEFAULT_KEEP,
      protect: [this.goodCheckpoint],
    });
    if (!weightsFinite(ckpt.weights)) this.nonFinite.add(path);
    this.event({ step: ckpt.step, event: 'checkpoint', path });
    return path;
  }

  /** Whether the checkpoint at `path` was written with finite weights. */
  finiteAt(path: string): boolean {
    return !this.nonFinite.has(path);
  }

  dispose(): void {
    this.progress.stop();
    this.stop.dispose();
  }
}

/**
 * Initialise the backend and say which one runs: a tfjs backend, or ONNX Runtime (with wasm
 * for tfjs's remaining work: batches, sample grids, images). Returns the name that runs the
 * steps (`onnxruntime`, or the tfjs backend's).
 */
export async function startBackend(
  command: string,
  name: TrainBackend | undefined,
  say: (m: string) => void,
): Promise<string> {
  const requested = name ?? 'onnxruntime';
  if (requested === 'onnxruntime') {
    await useBackend('wasm');
    say(`dif-train ${command}: backend onnxruntime`);
    return 'onnxruntime';
  }
  const backend = await useBackend(requested);
  say(`dif-train ${command}: backend ${requested}${backend !== requested ? ` (${backend})` : ''}`);
  return backend;
}

/** Say so when a resumed checkpoint was stripped of its optimizer state. */
export function noteStripped(ckpt: LoadedCheckpoint | null, say: (m: string) => void): void {
  if (ckpt && !ckpt.optimizer)
    say(
      `note: ${ckpt.path} holds no optimizer state (stripped): Adam starts afresh, the data order and random draws continue from step ${ckpt.step}`,
    );
}
