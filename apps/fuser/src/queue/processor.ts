/**
 * The BullMQ sandboxed processor of `dif-fuse worker` (built to dist/queue-processor.js): runs
 * in a child process, so that the fusion, which holds the CPU and the event loop for seconds
 * (ONNX Runtime's run is synchronous in Node), never delays the renewal of the job locks in
 * the worker's main process. One child per unit of --concurrency; each keeps its model open
 * between jobs.
 */
import type { SandboxedJob } from 'bullmq';
import { FuserCache, fusePairJob } from './fuse-job';
import type { PairJob } from './jobs';

const device = process.env.DIF_FUSE_WORKER_DEVICE as 'auto' | 'cuda' | 'cpu' | undefined;
const threads = process.env.DIF_FUSE_WORKER_THREADS;
const fusers = new FuserCache({
  device: device || undefined,
  threads: threads ? Number(threads) : undefined,
});

// The worker process is gone (killed): stop rather than finish a job nobody will record.
process.on('disconnect', () => process.exit(1));

export default async function processPair(job: SandboxedJob<PairJob>): Promise<{ out: string }> {
  return fusePairJob(job.data, fusers);
}
