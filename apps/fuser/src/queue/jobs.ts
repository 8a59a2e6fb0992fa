/**
 * Fusion jobs of the queue: one job per infrared/visible pair, with every path absolute (a
 * worker on another machine sees the same storage under the same paths) and every setting
 * that changes the output bytes. The job id is a hash of all of it, so adding the same pairs
 * twice adds nothing (BullMQ ignores a job whose id exists).
 */
import { createHash } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { basename, dirname, extname, join, resolve } from 'node:path';
import { describeUnmatched, type RigFile, scanPairs } from '@dif-fusion/io';
import { FuseError } from '../errors';
import type { Method } from '../methods';

/** What a worker needs to fuse one pair exactly as `dif-fuse --pairs` would. */
export interface PairJob {
  name: string;
  ir: string;
  vis: string;
  out: string;
  method: Method;
  /** Absolute model folder (`--model`); unset: each worker's default model. */
  model?: string;
  /** The model's content (modelDigest) when queued: a worker refuses any other model. */
  modelSha256?: string;
  seed: number;
  tile: number | 'auto' | 'off';
  overlap?: number;
  /** Working-memory budget in bytes for tile 'auto'. */
  memoryBudget?: number;
  maxPixels?: number;
  allowCorrupt?: boolean;
  /** --align: `auto`, or the absolute path of the rig file whose content `rig` carries. */
  align?: string;
  /** The rig file's content (a worker needs no copy of it; its transform is in the job id). */
  rig?: RigFile;
  onto?: 'ir' | 'vis';
  crop?: 'overlap';
  resize?: boolean;
}

export type JobSettings = Omit<PairJob, 'name' | 'ir' | 'vis' | 'out'>;

/** Idempotent job id: the hash of everything that determines the output. */
export function jobId(job: PairJob): string {
  // Sorted keys, unset settings left out: the same job however its object was built.
  const keys = (Object.keys(job) as (keyof PairJob)[]).filter((k) => job[k] !== undefined).sort();
  const canonical = JSON.stringify(keys.map((k) => [k, job[k]]));
  return `pair-${createHash('sha256').update(canonical).digest('hex').slice(0, 32)}`;
}

export interface PairListing {
  pairs: { name: string; ir: string; vis: string }[];
  warnings: string[];
}

/**
 * Pairs from a folder holding ir/ and vi/ (matched by file stem, as `dif-fuse --pairs`), or
 * from a list file: one pair per line, `IR VIS` separated by a tab (or by spaces when the
 * line has no tab), paths relative to the list's folder, `#` comments and blank lines ignored.
 */
export async function listPairs(pairs: string): Promise<PairListing> {
  let st: ReturnType<typeof statSync>;
  try {
    st = statSync(pairs);
  } catch {
    throw new FuseError(`${pairs}: no such folder or list file (--pairs)`);
  }
  if (st.isDirectory()) {
    const scan = await scanPairs(pairs);
    return {
      pairs: scan.pairs.map((p) => ({ name: p.name, ir: resolve(p.ir), vis: resolve(p.vi) })),
      warnings: describeUnmatched(scan).map((l) => `skipping unmatched files: ${l}`),
    };
  }
  const base = dirname(resolve(pairs));
  const out: PairListing['pairs'] = [];
  const seen = new Map<string, number>();
  readFileSync(pairs, 'utf8')
    .split(/\r?\n/)
    .forEach((raw, i) => {
      const line = raw.trim();
      if (line === '' || line.startsWith('#')) return;
      const cols = (line.includes('\t') ? line.split('\t') : line.split(/\s+/)).filter(Boolean);
      if (cols.length !== 2)
        throw new FuseError(
          `${pairs}:${i + 1}: expected 'IR VIS' (two paths, tab- or space-separated), found ${cols.length} field(s)`,
        );
      const [ir, vis] = cols.map((c) => resolve(base, c));
      const name = basename(ir, extname(ir));
      const prev = seen.get(name);
      if (prev !== undefined)
        throw new FuseError(
          `${pairs}:${i + 1}: two pairs would write the output '${name}' (also line ${prev})`,
        );
      seen.set(name, i + 1);
      out.push({ name, ir, vis });
    });
  if (out.length === 0) throw new FuseError(`${pairs}: the list holds no pairs`);
  return { pairs: out, warnings: [] };
}

export function makeJobs(
  listing: PairListing,
  outDir: string,
  ext: string,
  settings: JobSettings,
): PairJob[] {
  const dir = resolve(outDir);
  return listing.pairs.map((p) => ({
    ...p,
    out: join(dir, `${p.name}.${ext}`),
    ...settings,
  }));
}
