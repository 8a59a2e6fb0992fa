/**
 * What every dif-train run shares: the run folder layout, the JSONL log, the progress bar,
 * and Ctrl-C handling.
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
import { SingleBar } from 'cli-progress';

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

  /** (step, loss) points of the training records, for the loss curve. */
  lossPoints(): Array<{ step: number; loss: number }> {
    return this.read()
      .filter((r) => r.event === undefined && typeof r.loss === 'number')
      .map((r) => ({ step: r.step, loss: r.loss as number }));
  }
}

export interface ProgressOptions {
  /** Show the bar (default: when stderr is a TTY). Without it a line is printed every `printFreq` steps. */
  bar?: boolean;
  /** Print nothing at all (tests). */
  quiet?: boolean;
  printFreq?: number;
  label?: string;
}

/** Progress bar (step, loss, it/s, ETA) on stderr, or plain lines when not a terminal. */
export class Progress {
  private bar: SingleBar | null = null;
  private readonly quiet: boolean;
  private readonly printFreq: number;
  private readonly label: string;
  private readonly startTime = Date.now();
  private startStep = 0;
  private total = 0;

  constructor(options: ProgressOptions = {}) {
    this.quiet = options.quiet ?? false;
    this.printFreq = Math.max(1, options.printFreq ?? 10);
    this.label = options.label ?? 'step';
    if (!this.quiet && (options.bar ?? process.stderr.isTTY === true))
      this.bar = new SingleBar({
        format: `${this.label} {value}/{total} [{bar}] loss {loss} | {itps} it/s | ETA {eta_formatted}{extra}`,
        stream: process.stderr,
        hideCursor: true,
        etaBuffer: 50,
        fps: 5,
      });
  }

  start(total: number, step: number): void {
    this.total = total;
    this.startStep = step;
    this.bar?.start(total, step, { loss: '-', itps: '-', extra: '' });
  }

  update(step: number, loss: number, itps: number, extra = ''): void {
    const payload = {
      loss: loss.toPrecision(4),
      itps: itps.toFixed(2),
      extra: extra ? ` | ${extra}` : '',
    };
    if (this.bar) this.bar.update(step, payload);
    else if (!this.quiet && (step % this.printFreq === 0 || step === this.total)) {
      const elapsed = (Date.now() - this.startTime) / 1000;
      const rate = (step - this.startStep) / Math.max(elapsed, 1e-9);
      const eta = rate > 0 ? (this.total - step) / rate : 0;
      process.stderr.write(
        `${this.label} ${step}/${this.total} loss ${payload.loss} | ${payload.itps} it/s | ETA ${formatSeconds(eta)}${payload.extra}\n`,
      );
    }
  }

  /** Print a message without breaking the bar. */
  log(message: string): void {
    if (this.quiet) return;
    if (this.bar) process.stderr.write('\n');
    process.stderr.write(`${message}\n`);
  }

  stop(): void {
    this.bar?.stop();
    this.bar = null;
  }
}

export function formatSeconds(s: number): string {
  if (!Number.isFinite(s)) return '?';
  s = Math.round(s);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  return h > 0
    ? `${h}h${String(m).padStart(2, '0')}m`
    : m > 0
      ? `${m}m${String(sec).padStart(2, '0')}s`
      : `${sec}s`;
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
