/**
 * `dif-fuse queue add`, `dif-fuse queue status` and `dif-fuse worker`: batch fusion over a
 * BullMQ job queue on Redis, for many processes and machines sharing the same storage.
 */
import { type Command, Option } from 'commander';
import { deviceOption, intArg, threadsOption, tileArg } from '../args';
import { FuseError } from '../errors';
import { OUTPUT_EXTENSIONS } from '../images';
import { METHODS, type Method } from '../methods';
import { addJobs } from './add';
import { DEFAULT_QUEUE, defaultRedisUrl, redactUrl } from './connection';
import { formatStatus, queueStatus } from './status';
import { runWorker } from './worker';

interface Io {
  out: (s: string) => void;
  err: (s: string) => void;
}

const redisOption = () =>
  new Option('--redis <url>', 'Redis URL (default: $DIF_FUSE_REDIS, else redis://127.0.0.1:6379)');
const queueOption = () =>
  new Option('--queue <name>', 'queue name (several batches can share one Redis)').default(
    DEFAULT_QUEUE,
  );

export function registerQueueCommands(program: Command, io: Io): void {
  const queue = program
    .command('queue')
    .description('batch fusion over a Redis job queue (BullMQ): add jobs, show their state');
  queue
    .command('add')
    .description('enqueue one job per pair; adding the same pairs and settings again adds nothing')
    .requiredOption(
      '--pairs <dir|list>',
      "a folder holding ir/ and vi/, or a list file of 'IR VIS' lines (paths relative to the list)",
    )
    .requiredOption('--out <dir>', 'output folder, seen by every worker under this path')
    .addOption(redisOption())
    .addOption(queueOption())
    .addOption(
      new Option('--ext <ext>', 'output format').choices([...OUTPUT_EXTENSIONS]).default('png'),
    )
    .addOption(
      new Option('--method <name>', 'fusion method')
        .choices(METHODS as unknown as string[])
        .default('model'),
    )
    .option('--model <dir>', 'model folder, seen by every worker (default: the shipped model)')
    .option('--seed <n>', 'noise seed', intArg('--seed', 0), 0)
    .option('--tile <size>', 'tile edge, auto or off (as for dif-fuse)', tileArg, 'auto')
    .option('--overlap <px>', 'overlap between tiles', intArg('--overlap', 0))
    .option('--memory <MB>', 'working-memory budget for --tile auto', intArg('--memory', 64))
    .option(
      '--align <rig.json|auto>',
      'pairs of a camera rig: warp the visible image onto the infrared grid with this rig file (its content goes into the jobs) or register each pair (auto), as dif-fuse --align',
    )
    .addOption(
      new Option('--onto <grid>', 'with --align/--resize: the output grid').choices(['ir', 'vis']),
    )
    .addOption(
      new Option('--crop <what>', 'with --align/--resize: cut to the common overlap').choices([
        'overlap',
      ]),
    )
    .option(
      '--resize',
      'pairs that differ only in resolution: scale the visible image (as dif-fuse --resize)',
    )
    .option('--attempts <n>', 'tries per job before it is failed', intArg('--attempts', 1, 100), 3)
    .option(
      '--backoff <ms>',
      'delay before the first retry, doubled at each retry',
      intArg('--backoff', 0),
      2000,
    )
    .action(
      async (o: {
        pairs: string;
        out: string;
        redis?: string;
        queue: string;
        ext: string;
        method: Method;
        model?: string;
        seed: number;
        tile: number | 'auto' | 'off';
        overlap?: number;
        memory?: number;
        attempts: number;
        backoff: number;
        align?: string;
        onto?: 'ir' | 'vis';
        crop?: 'overlap';
        resize?: boolean;
      }) => {
        const redis = o.redis ?? defaultRedisUrl();
        const r = await addJobs({
          pairs: o.pairs,
          out: o.out,
          redis,
          queue: o.queue,
          ext: o.ext,
          method: o.method,
          model: o.model,
          seed: o.seed,
          tile: o.tile,
          overlap: o.overlap,
          memoryBudget: o.memory === undefined ? undefined : o.memory * 1e6,
          align: o.align,
          onto: o.onto,
          crop: o.crop,
          resize: o.resize,
          attempts: o.attempts,
          backoff: o.backoff,
          warn: io.err,
        });
        io.out(
          `queued ${r.added} job(s) on ${o.queue} at ${redactUrl(redis)}${r.existing ? ` (${r.existing} already queued)` : ''}`,
        );
      },
    );
  queue
    .command('status')
    .description('jobs done, failed, waiting and active; throughput; failed jobs with their error')
    .addOption(redisOption())
    .addOption(queueOption())
    .option('--json', 'print the status as JSON')
    .action(async (o: { redis?: string; queue: string; json?: boolean }) => {
      const s = await queueStatus({ redis: o.redis ?? defaultRedisUrl(), queue: o.queue });
      if (o.json) io.out(JSON.stringify(s, null, 2));
      else for (const l of formatStatus(s)) io.out(l);
    });
  program
    .command('worker')
    .description(
      'fuse queued pairs until stopped (SIGTERM: finish the job in hand, then exit); run one per machine or more',
    )
    .addOption(redisOption())
    .addOption(queueOption())
    .option(
      '--concurrency <n>',
      'jobs fused at once by this process',
      intArg('--concurrency', 1, 256),
      1,
    )
    .addOption(deviceOption())
    .addOption(threadsOption())
    .option(
      '--lock <ms>',
      "job lock: a dead worker's job returns to the queue after about this long",
      intArg('--lock', 100),
      30_000,
    )
    .option('--exit-when-done', 'exit once no job is waiting, retrying or in hand')
    .option('-q, --quiet', 'no per-job lines')
    .action(
      async (o: {
        redis?: string;
        queue: string;
        concurrency: number;
        device: 'auto' | 'cuda' | 'cpu';
        threads?: number;
        lock: number;
        exitWhenDone?: boolean;
        quiet?: boolean;
      }) => {
        const s = await runWorker({
          redis: o.redis ?? defaultRedisUrl(),
          queue: o.queue,
          concurrency: o.concurrency,
          device: o.device,
          threads: o.threads,
          lockDuration: o.lock,
          stalledInterval: o.lock,
          exitWhenDone: o.exitWhenDone,
          quiet: o.quiet,
          out: io.out,
          err: io.err,
        });
        if (!o.quiet) io.err(`dif-fuse worker: stopped; ${s.done} done, ${s.failed} failed here`);
        // Whatever BullMQ or ioredis left behind (a child, a timer) may not hold the exit.
        setTimeout(
          () => process.exit(process.exitCode ?? (s.forced || s.failed ? 1 : 0)),
          3000,
        ).unref();
        if (s.failed)
          throw new FuseError(`${s.failed} job(s) failed here (dif-fuse queue status lists them)`);
        if (s.forced) throw new FuseError('stopped at once; jobs in hand return to the queue');
      },
    );
}
