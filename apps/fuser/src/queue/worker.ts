/**
 * `dif-fuse worker`: takes pair jobs from the queue and fuses them (fuse-job.ts) in BullMQ
 * sandboxed child processes (processor.ts), one per unit of concurrency, while this process
 * keeps the job locks renewed. Input errors fail a job at once, with their message, into
 * BullMQ's failed set; other errors are retried with exponential backoff (the job's options).
 * SIGTERM/SIGINT: stop taking jobs, finish the ones in hand, exit; a second signal, or a
 * first one while Redis is unreachable (nothing could be recorded), exits at once and the jobs
 * in hand return to the queue when their lock expires.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { formatError } from '@dif-fusion/io';
import { Queue, Worker } from 'bullmq';
import { FuseError } from '../errors';
import { connectWorker, DEFAULT_QUEUE, redactUrl } from './connection';
import type { PairJob } from './jobs';

/** The built sandboxed processor, beside the bundle that holds this code (dist/). */
function processorFile(): string {
  const file = fileURLToPath(new URL('./queue-processor.js', import.meta.url));
  if (!existsSync(file))
    throw new FuseError(`${file}: the worker's processor is missing (build the package first)`);
  return file;
}

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
}

export interface WorkerSummary {
  done: number;
  failed: number;
  /** Stopped at once (a second signal, or a signal while Redis was unreachable). */
  forced: boolean;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms).unref());

export async function runWorker(o: WorkerOptions): Promise<WorkerSummary> {
  const out = o.out ?? ((s: string) => process.stdout.write(`${s}\n`));
  const err = o.err ?? ((s: string) => process.stderr.write(`${s}\n`));
  const connection = connectWorker(o.redis, err);
  const name = o.queue ?? DEFAULT_QUEUE;
  const summary: WorkerSummary = { done: 0, failed: 0, forced: false };
  // The sandboxed children inherit the environment: their ONNX Runtime settings.
  if (o.device) process.env.DIF_FUSE_WORKER_DEVICE = o.device;
  if (o.threads) process.env.DIF_FUSE_WORKER_THREADS = String(o.threads);
  const worker = new Worker<PairJob>(name, processorFile(), {
    connection,
    concurrency: o.concurrency ?? 1,
    lockDuration: o.lockDuration ?? 30_000,
    stalledInterval: o.stalledInterval ?? o.lockDuration ?? 30_000,
    maxStalledCount: 2,
    autorun: false,
  });
  worker.on('active', (job) => {
    if (!o.quiet) out(`start ${job.data.name} ${job.id} attempt ${job.attemptsMade + 1}`);
  });
  worker.on('completed', (job) => {
    summary.done++;
    const secs = ((job.finishedOn ?? Date.now()) - (job.processedOn ?? Date.now())) / 1000;
    if (!o.quiet) out(`done ${job.data.name} ${job.id} ${secs.toFixed(3)} s`);
  });
  worker.on('failed', (job, e) => {
    const final = job?.finishedOn !== undefined || e.name === 'UnrecoverableError';
    if (final) summary.failed++;
    if (job && !o.quiet)
      out(`${final ? 'failed' : 'retry'} ${job.data.name} ${job.id}: ${e.message}`);
  });
  // While Redis is away the connection has said so once (connectWorker); BullMQ's own
  // reports of the same outage are not repeated.
  const redisUp = () => connection.status === 'ready';
  worker.on('error', (e) => {
    if (redisUp()) err(`warning: worker: ${formatError(e).split('\n')[0]}`);
  });

  let stopping: Promise<void> | undefined;
  let forced = () => {};
  const forcedStop = new Promise<void>((r) => {
    forced = r;
  });
  const stop = (force: boolean) => {
    if (force) {
      summary.forced = true;
      forced();
      stopping = worker.close(true).catch(() => {});
    } else stopping ??= worker.close(false).catch(() => {});
    return stopping;
  };
  const onSignal = (sig: NodeJS.Signals) => {
    if (stopping || !redisUp()) {
      err(
        stopping
          ? `dif-fuse worker: ${sig} again, exiting now (jobs in hand return to the queue)`
          : `dif-fuse worker: ${sig} while Redis is unreachable, exiting now (jobs in hand return to the queue)`,
      );
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
    queue.on('error', () => {}); // the connection reports outages, once
    poll = setInterval(async () => {
      const c = await queue!
        .getJobCounts('wait', 'prioritized', 'delayed', 'active')
        .catch(() => null);
      if (c && Object.values(c).every((v) => v === 0)) void stop(false);
    }, 500);
  }
  try {
    // Each wait also ends on a forced stop: Redis may never answer.
    await Promise.race([worker.waitUntilReady(), forcedStop]);
    if (!summary.forced) {
      if (!o.quiet)
        err(
          `dif-fuse worker: queue ${name} on ${redactUrl(o.redis)}, concurrency ${o.concurrency ?? 1}`,
        );
      await Promise.race([worker.run(), forcedStop]); // run resolves once the worker is closed
      await Promise.race([stopping, forcedStop]);
    }
  } finally {
    if (poll) clearInterval(poll);
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
    // Closing talks to Redis: bounded, then the sockets are cut.
    await Promise.race([
      Promise.allSettled([queue?.close(), summary.forced ? stopping : undefined]),
      sleep(2000),
    ]);
    connection.disconnect();
  }
  return summary;
}
