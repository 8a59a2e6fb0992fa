/**
 * What every dif-train run shares: the run folder layout, the JSONL log and Ctrl-C handling
 * (progress: @dif-fusion/io's Progress, the same for every tool).
 *
 * RUN/
 *   checkpoints/<kind>-<step>.safetensors   last N checkpoints
 *   log.jsonl                               one JSON object per line (step, loss, lr, it/s, time, ...)
 *   loss.png                                loss curve, redrawn at each validation
 *   samples/ (ddpm) or val/ (head)          PNGs written at each validation
 *   config.json                             the resolved config of the run
 */
import { appendFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface LogRecord {
  step: number;
  [k: string]: unknown;
}

/** Append-only JSONL log. */
export class RunLog {
  readonly path: string;
  constructor(runDir: string) {
    this.path = join(runDir, 'log.jsonl');
  }

  /** All records (skipping unparsable lines). */
  read(): LogRecord[] {
    if (!existsSync(this.path)) return [];
    const out: LogRecord[] = [];
    for (const line of readFileSync(this.path, 'utf8').split('\n')) {
      if (!line.trim()) continue;
      try {
        out.push(JSON.parse(line));
      } catch {
        // a line cut by a crash: ignore
      }
    }
    return out;
  }

  /** Drop records after `step` (resuming from a checkpoint older than the log's end). */
  truncateAfter(step: number): void {
    if (!existsSync(this.path)) return;
    const keep = this.read().filter((r) => r.step <= step);
    writeFileSync(this.path, keep.map((r) => `${JSON.stringify(r)}\n`).join(''));
  }

  write(record: LogRecord): void {
    appendFileSync(this.path, `${JSON.stringify(record)}\n`);
  }
}

/**
 * Ctrl-C (SIGINT) or `kill` (SIGTERM, e.g. a job scheduler or a background run) requests a
 * stop instead of killing the process: before the first step the set-up stops at its next
 * phase (nothing to save); during training the loop checks `stopRequested` after each step,
 * saves a checkpoint and returns. The ORT steps run on a worker thread, so the signal is
 * seen (and said) at once. A second signal exits at once: our handlers are removed and the
 * signal raised again, so that its default action ends the process even while a thread is
 * inside a long native call (process.exit would wait for that call to return). Checkpoints
 * are written atomically, so the last one on disk stays whole.
 */
const STOP_SIGNALS = ['SIGINT', 'SIGTERM'] as const;

export class StopSignal {
  stopRequested = false;
  /** Set once the training loop runs (the first signal then waits for the step in hand). */
  training = false;
  private readonly handler = (sig?: NodeJS.Signals) => {
    const name = sig ?? 'SIGINT';
    if (this.stopRequested) {
      for (const s of STOP_SIGNALS) process.removeAllListeners(s);
      process.kill(process.pid, name);
      return;
    }
    this.stopRequested = true;
    this.say(
      this.training
        ? `${name}: stopping after the current step (a checkpoint is saved); send it again to quit at once`
        : `${name}: stopping; send it again to quit at once`,
    );
  };
  constructor(
    private readonly enabled = true,
    private readonly say: (message: string) => void = () => {},
  ) {
    if (enabled) for (const sig of STOP_SIGNALS) process.on(sig, this.handler);
  }
  dispose(): void {
    if (this.enabled) for (const sig of STOP_SIGNALS) process.off(sig, this.handler);
  }
}

/** Smoothed steps-per-second over the last few steps. */
export class RateMeter {
  private readonly times: number[] = [];
  constructor(private readonly window = 20) {}
  tick(): number {
    const now = performance.now();
    this.times.push(now);
    if (this.times.length > this.window + 1) this.times.shift();
    if (this.times.length < 2) return 0;
    return ((this.times.length - 1) * 1000) / (now - this.times[0]);
  }
}
