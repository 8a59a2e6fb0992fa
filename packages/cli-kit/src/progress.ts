/**
 * Progress of a counted task (training steps, the pairs of a batch, the images of an
 * evaluation) in one style for every dif-fusion tool. On a terminal: a bar (cli-progress).
 * Elsewhere (a log file, a pipe, CI): plain lines, like tqdm's non-terminal mode,
 *
 *   <label> <done>/<total> | <rate> <unit>/s | ETA <time>[ | <extra>]
 *
 * every `every` items, at most every `intervalMs`, and at the end.
 */
import { SingleBar } from 'cli-progress';

/** Where progress goes: a stream (stderr by default) that may be a terminal. */
export interface ProgressStream {
  write(s: string): unknown;
  isTTY?: boolean;
}

export interface ProgressOptions {
  /** First word of a line: `step`, `fuse`, `eval`. */
  label?: string;
  /** What is counted, per second: `it`, `pairs`, `images` (default `it`). */
  unit?: string;
  /** Default: process.stderr. */
  stream?: ProgressStream;
  /** Draw the bar (default: when the stream is a terminal); otherwise plain lines. */
  bar?: boolean;
  /** Print nothing at all. */
  quiet?: boolean;
  /** A plain line every this many items (default: a tenth of the total). */
  every?: number;
  /** Plain lines also when this many milliseconds passed since the last one (slow tasks). */
  intervalMs?: number;
}

export interface ProgressUpdate {
  /** Items per second to show (default: the mean rate since start). */
  rate?: number;
  /** Appended after ` | ` (a loss, an image name). */
  extra?: string;
}

/** Seconds as `12s`, `3m05s` or `1h02m`; `?` when not finite. */
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

export class Progress {
  private bar: SingleBar | null = null;
  private readonly stream: ProgressStream;
  private readonly label: string;
  private readonly unit: string;
  private readonly quiet: boolean;
  private readonly useBar: boolean;
  private every: number;
  private readonly fixedEvery: boolean;
  private readonly intervalMs: number;
  private startTime = Date.now();
  private lastLine = Date.now();
  private startDone = 0;
  private done = 0;
  private total = 0;
  private started = false;

  constructor(options: ProgressOptions = {}) {
    this.stream = options.stream ?? process.stderr;
    this.label = options.label ?? 'step';
    this.unit = options.unit ?? 'it';
    this.quiet = options.quiet ?? false;
    this.useBar = !this.quiet && (options.bar ?? this.stream.isTTY === true);
    this.fixedEvery = options.every !== undefined;
    this.every = Math.max(1, options.every ?? 1);
    this.intervalMs = options.intervalMs ?? Number.POSITIVE_INFINITY;
  }

  start(total: number, done = 0): void {
    this.total = total;
    this.done = this.startDone = done;
    this.startTime = this.lastLine = Date.now();
    this.started = true;
    if (!this.fixedEvery) this.every = Math.max(1, Math.ceil(total / 10));
    if (this.useBar) {
      this.bar = new SingleBar({
        format: `${this.label} {value}/{total} [{bar}] {rate} ${this.unit}/s | ETA {eta_formatted}{extra}`,
        stream: this.stream as NodeJS.WritableStream,
        hideCursor: true,
        clearOnComplete: true,
        etaBuffer: 50,
        fps: 5,
      });
      this.bar.start(total, done, { rate: '-', extra: '' });
    }
  }

  setTotal(total: number): void {
    this.total = total;
    this.bar?.setTotal(total);
  }

  update(done: number, u: ProgressUpdate = {}): void {
    if (!this.started || this.quiet) return;
    this.done = done;
    const now = Date.now();
    const elapsed = (now - this.startTime) / 1000;
    const rate = u.rate ?? (done - this.startDone) / Math.max(elapsed, 1e-9);
    const extra = u.extra ? ` | ${u.extra}` : '';
    if (this.bar) {
      this.bar.update(done, { rate: rate.toFixed(2), extra });
      return;
    }
    if (done % this.every === 0 || done === this.total || now - this.lastLine >= this.intervalMs) {
      this.lastLine = now;
      const eta = rate > 0 ? (this.total - done) / rate : Number.POSITIVE_INFINITY;
      this.stream.write(
        `${this.label} ${done}/${this.total} | ${rate.toFixed(2)} ${this.unit}/s | ETA ${formatSeconds(done === this.total ? 0 : eta)}${extra}\n`,
      );
    }
  }

  increment(n = 1, u: ProgressUpdate = {}): void {
    this.update(this.done + n, u);
  }

  /** Prints a message without breaking the bar. */
  log(message: string): void {
    if (this.quiet) return;
    if (this.bar) this.stream.write('\n');
    this.stream.write(`${message}\n`);
  }

  stop(): void {
    this.bar?.stop();
    this.bar = null;
    this.started = false;
  }
}
