/** `dif-fuse queue add`: one job per pair, idempotent (existing job ids are left alone). */
import { accessSync, constants } from 'node:fs';
import { resolve } from 'node:path';
import { DifFusionError, makeDirsSync, readRigFile } from '@dif-fusion/io';
import { Queue } from 'bullmq';
import { validateAlignFlags } from '../align/apply';
import { FuseError } from '../errors';
import { checkModelDir, modelDigest, resolveModelDir } from '../model';
import { connectOnce, DEFAULT_QUEUE } from './connection';
import { type JobSettings, jobId, listPairs, makeJobs } from './jobs';

export interface AddOptions extends JobSettings {
  pairs: string;
  out: string;
  redis: string;
  queue?: string;
  ext?: string;
  /** Tries per job before it lands in the failed state (default 3). */
  attempts?: number;
  /** First retry delay in ms, doubled at each retry (default 2000). */
  backoff?: number;
  warn?: (line: string) => void;
}

export interface AddResult {
  added: number;
  existing: number;
  ids: string[];
}

export async function addJobs(o: AddOptions): Promise<AddResult> {
  validateAlignFlags(o);
  // A rig file travels inside the jobs (read and checked here, before anything is queued).
  if (o.align && o.align !== 'auto') {
    o = { ...o, align: resolve(o.align) };
    o.rig = readRigFile(o.align!);
  }
  const listing = await listPairs(o.pairs);
  for (const w of listing.warnings) o.warn?.(`warning: ${w}`);
  const outDir = resolve(o.out);
  try {
    makeDirsSync(outDir);
    accessSync(outDir, constants.W_OK);
  } catch (err) {
    if (err instanceof DifFusionError) throw err; // makeDirsSync's one line
    throw new FuseError(
      `${outDir}: output folder is not writable (${(err as NodeJS.ErrnoException).code})`,
    );
  }
  const {
    pairs: _p,
    out: _o,
    redis: _r,
    queue: _q,
    ext: _e,
    attempts: _a,
    backoff: _b,
    warn: _w,
    ...settings
  } = o;
  // The model is pinned by content: its absolute folder and its digest (a worker in another
  // folder, or with another model under the same path, refuses the job).
  if ((settings.method ?? 'model') === 'model') {
    const { dir } = resolveModelDir(o.model);
    checkModelDir(dir);
    if (o.model !== undefined) settings.model = dir;
    settings.modelSha256 = modelDigest(dir);
  }
  const jobs = makeJobs(
    listing,
    outDir,
    (o.ext ?? 'png').replace(/^\./, '').toLowerCase(),
    settings,
  );
  const connection = await connectOnce(o.redis);
  const queue = new Queue(o.queue ?? DEFAULT_QUEUE, { connection });
  try {
    const ids = jobs.map(jobId);
    let existing = 0;
    const CHUNK = 500;
    for (let s = 0; s < jobs.length; s += CHUNK) {
      const part = jobs.slice(s, s + CHUNK);
      const partIds = ids.slice(s, s + CHUNK);
      const found = await Promise.all(partIds.map((id) => queue.getJob(id)));
      const fresh = part.filter((_, k) => !found[k]);
      existing += part.length - fresh.length;
      await queue.addBulk(
        fresh.map((data) => ({
          name: data.name,
          data,
          opts: {
            jobId: jobId(data),
            attempts: o.attempts ?? 3,
            backoff: { type: 'exponential', delay: o.backoff ?? 2000 },
            removeOnComplete: false,
            removeOnFail: false,
          },
        })),
      );
    }
    return { added: jobs.length - existing, existing, ids };
  } finally {
    await queue.close();
    connection.disconnect();
  }
}
