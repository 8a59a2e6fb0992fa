/** `dif-fuse queue status`: job counts by state, throughput of recent jobs, failed jobs. */
import { Queue } from 'bullmq';
import { connectOnce, DEFAULT_QUEUE } from './connection';

export interface QueueStatus {
  queue: string;
  waiting: number;
  active: number;
  /** Waiting for a retry after a failed attempt. */
  delayed: number;
  done: number;
  failed: number;
  workers: number;
  /** Jobs per second over the most recent completed jobs (up to 1000); 0 with fewer than 2. */
  throughput: number;
  /** Mean seconds a worker spent per job over the same jobs. */
  secondsPerJob: number;
  failures: { name: string; id: string; reason: string; attempts: number }[];
}

export async function queueStatus(o: {
  redis: string;
  queue?: string;
  maxFailures?: number;
}): Promise<QueueStatus> {
  const connection = await connectOnce(o.redis);
  const name = o.queue ?? DEFAULT_QUEUE;
  const queue = new Queue(name, { connection });
  try {
    const c = await queue.getJobCounts(
      'wait',
      'prioritized',
      'active',
      'delayed',
      'completed',
      'failed',
    );
    const recent = await queue.getCompleted(0, 999);
    const fin = recent.filter((j) => j.finishedOn && j.processedOn);
    let throughput = 0;
    let secondsPerJob = 0;
    if (fin.length > 0) {
      secondsPerJob =
        fin.reduce((s, j) => s + (j.finishedOn! - j.processedOn!), 0) / fin.length / 1000;
      const first = Math.min(...fin.map((j) => j.processedOn!));
      const last = Math.max(...fin.map((j) => j.finishedOn!));
      if (fin.length >= 2 && last > first) throughput = fin.length / ((last - first) / 1000);
    }
    const failed = await queue.getFailed(0, (o.maxFailures ?? 20) - 1);
    return {
      queue: name,
      waiting: (c.wait ?? 0) + (c.prioritized ?? 0),
      active: c.active ?? 0,
      delayed: c.delayed ?? 0,
      done: c.completed ?? 0,
      failed: c.failed ?? 0,
      workers: await queue.getWorkersCount(),
      throughput,
      secondsPerJob,
      failures: failed.map((j) => ({
        name: j.name,
        id: String(j.id),
        reason: j.failedReason ?? '',
        attempts: j.attemptsMade,
      })),
    };
  } finally {
    await queue.close();
    connection.disconnect();
  }
}

export function formatStatus(s: QueueStatus): string[] {
  const lines = [
    `queue ${s.queue}: ${s.done} done, ${s.failed} failed, ${s.waiting} waiting, ${s.active} active, ${s.delayed} retrying; ${s.workers} worker(s)`,
    s.throughput > 0
      ? `throughput ${s.throughput.toFixed(3)} jobs/s over the last ${Math.min(s.done, 1000)} done (${s.secondsPerJob.toFixed(3)} s per job in a worker)`
      : 'throughput: not enough finished jobs yet',
  ];
  for (const f of s.failures)
    lines.push(`failed ${f.name} (${f.id}, ${f.attempts} attempt(s)): ${f.reason}`);
  if (s.failed > s.failures.length)
    lines.push(`... and ${s.failed - s.failures.length} more failed`);
  return lines;
}
