/**
 * `dif-fuse worker`: takes pair jobs from the queue and fuses them exactly as `dif-fuse
 * --pairs` does (same reading, pipeline and atomic write, so the bytes are identical).
 * Input errors (a corrupt or missing image, a size mismatch) fail the job at once, with their
 * message, into BullMQ's failed set; other errors are retried with exponential backoff.
 * SIGTERM/SIGINT: stop taking jobs, finish the ones in hand, exit; a second signal exits at
 * once and the jobs in hand return to the queue when their lock expires.
 */
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { DifFusionError, formatError } from '@dif-fusion/io';
import { type Job, Queue, UnrecoverableError, Worker } from 'bullmq';
import { fuseImages, type OpenedFuser, openFuser } from '../fuse';
import { readPair, writeImage } from '../images';
import { connectWorker, DEFAULT_QUEUE } from './connection';
import type { PairJob } from './jobs';

export interface WorkerOptions {
  redis: string;
  queue?: string;
  concurrency?: number;
  device?: 'auto' | 'cuda' | 'cpu';
  threads?: number;
  /** Job lock in ms: a job whose worker died returns to the queue after about this long. */
  lockDuration?: number;
  /** How often this worker looks for stalled jobs of dead workers (ms). */
  stalledInterval?: number;
  /** Exit once no job is waiting, delayed or active. */
  exitWhenDone?: boolean;
  quiet?: boolean;
  out?: (line: string) => void;
  err?: (line: string) => void;
  /** Resolves when the worker is listening (tests). */
  onReady?: () => void;
}

export interface WorkerSummary {
  done: number;
  failed: number;
}

/** Opened fusers by method/model/seed/device: the model loads once per worker. */
export class FuserCache {
  private readonly open = new Map<string, Promise<OpenedFuser>>();
  constructor(private readonly o: WorkerOptions) {}
  get(j: PairJob): Promise<OpenedFuser> {
    const key = JSON.stringify([j.method, j.model ?? null, j.seed]);
    let p = this.open.get(key);
    if (!p) {
      p = openFuser({
        method: j.method,
        model: j.model,
        seed: j.seed,
        device: this.o.device,
        threads: this.o.threads,
      });
      this.open.set(key, p);
      p.catch(() => this.open.delete(key));
    }
    return p;
  }
  async release(): Promise<void> {
    for (const p of this.open.values()) await (await p.catch(() => null))?.release();
    this.open.clear();
  }
}

/** Fuses one pair job; what the worker's processor runs. */
export async function fusePairJob(j: PairJob, fusers: FuserCache): Promise<{ out: string }> {
  try {
    const { ir, vis } = await readPair(j.ir, j.vis, {
      maxPixels: j.maxPixels === undefined ? undefined : j.maxPixels * 1e6,
      allowCorrupt: j.allowCorrupt,
    });
    const opened = await fusers.get(j);
    const fused = await fuseImages(ir, vis, opened, {
      tile: j.tile,
      overlap: j.overlap,
      memoryBudget: j.memoryBudget,
    });
    mkdirSync(dirname(j.out), { recursive: true });
    await writeImage(j.out, fused);
    return { out: j.out };
  } catch (err) {
    // The project's user errors (bad input, model folder) will not heal by retrying.
    if (err instanceof DifFusionError) throw new UnrecoverableError(formatError(err));
    throw err;
  }
}

export async function runWorker(o: WorkerOptions): Promise<WorkerSummary> {
  const out = o.out ?? ((s: string) => process.stdout.write(`${s}\n`));
  const err = o.err ?? ((s: string) => process.stderr.write(`${s}\n`));
  const connection = connectWorker(o.redis, err);
  const name = o.queue ?? DEFAULT_QUEUE;
  const fusers = new FuserCache(o);
  const summary: WorkerSummary = { done: 0, failed: 0 };
  const worker = new Worker<PairJob>(
    name,
    async (job: Job<PairJob>) => {
      if (!o.quiet) out(`start ${job.data.name} ${job.id} attempt ${job.attemptsMade + 1}`);
      const t0 = performance.now();
      const r = await fusePairJob(job.data, fusers);
      if (!o.quiet)
        out(`done ${job.data.name} ${job.id} ${((performance.now() - t0) / 1000).toFixed(3)} s`);
      return r;
    },
    {
      connection,
      concurrency: o.concurrency ?? 1,
      lockDuration: o.lockDuration ?? 30_000,
      stalledInterval: o.stalledInterval ?? o.lockDuration ?? 30_000,
      maxStalledCount: 2,
      autorun: false,
    },
  );
  worker.on('completed', () => {
    summary.done++;
  });
  worker.on('failed', (job, e) => {
    const final = job?.finishedOn !== undefined || e instanceof UnrecoverableError;
    if (final) summary.failed++;
    if (job && !o.quiet)
      out(`${final ? 'failed' : 'retry'} ${job.data.name} ${job.id}: ${e.message}`);
  });
  worker.on('error', (e) => err(`warning: worker: ${formatError(e)}`));

  let stopping: Promise<void> | undefined;
  const stop = (force: boolean) => {
    if (stopping && !force) return stopping;
    stopping = worker.close(force);
    return stopping;
  };
  const onSignal = (sig: NodeJS.Signals) => {
    if (stopping) {
      err(`dif-fuse worker: ${sig} again, exiting now (jobs in hand return to the queue)`);
      void stop(true);
      return;
    }
    err(`dif-fuse worker: ${sig}, finishing the job(s) in hand`);
    void stop(false);
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);

  let poll: NodeJS.Timeout | undefined;
  let queue: Queue | undefined;
  if (o.exitWhenDone) {
    queue = new Queue(name, { connection });
    poll = setInterval(async () => {
      const c = await queue!
        .getJobCounts('wait', 'prioritized', 'delayed', 'active')
        .catch(() => null);
      if (c && Object.values(c).every((v) => v === 0)) void stop(false);
    }, 500);
  }
  try {
    await worker.waitUntilReady();
    if (!o.quiet)
      err(`dif-fuse worker: queue ${name} on ${o.redis}, concurrency ${o.concurrency ?? 1}`);
    o.onReady?.();
    const running = worker.run();
    await running;
    await stopping;
  } finally {
    if (poll) clearInterval(poll);
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
    await queue?.close();
    await fusers.release();
    connection.disconnect();
  }
  return summary;
}
