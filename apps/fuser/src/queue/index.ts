/**
 * `@dif-fusion/fuser/queue`: batch fusion over a BullMQ job queue on Redis. Needs the optional
 * peer dependencies bullmq and ioredis (`npm i bullmq ioredis`).
 */
export { type AddOptions, type AddResult, addJobs } from './add';
export { DEFAULT_QUEUE } from './connection';
export { jobId, listPairs, type PairJob } from './jobs';
export { formatStatus, type QueueStatus, queueStatus } from './status';
export { runWorker, type WorkerOptions, type WorkerSummary } from './worker';
