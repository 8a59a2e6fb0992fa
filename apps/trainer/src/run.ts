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
 * stop instead of killing the process: the training loop checks `stopRequested` after each
 * step, saves a checkpoint and returns. A second signal exits at once.
 */
const STOP_SIGNALS = ['SIGINT', 'SIGTERM'] as const;

export class StopSignal {
  stopRequested = false;
  private readonly handler = () => {
    if (this.stopRequested) process.exit(130);
    this.stopRequested = true;
  };
  constructor(private readonly enabled = true) {
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
