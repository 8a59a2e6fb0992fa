/**
 * Training data on @dif-fusion/io: a folder with `ir/` and `vi/` (pairs matched by file
 * name), decoded once and cached, and io's seeded TrainingSampler (random crops + flips,
 * epoch-wise shuffles) whose state goes into every checkpoint.
 */
import { PairDataset, type SamplerState, TrainingSampler } from '@dif-fusion/io';
import { UserError } from './errors';

export type { SamplerState };

/** Open a data folder, decoding (and caching) every pair up front so bad files fail early. */
export async function openPairs(dir: string): Promise<PairDataset> {
  const ds = await PairDataset.open(dir);
  for (let i = 0; i < ds.length; i++) await ds.get(i);
  return ds;
}

/** io's sampler over a dataset, restored from a checkpoint's state when given. */
export function makeSampler(
  ds: PairDataset,
  options: { crop: number; batch: number; seed: number; state?: SamplerState | null },
): TrainingSampler {
  const s = new TrainingSampler(ds, {
    cropSize: options.crop,
    batchSize: options.batch,
    seed: options.seed,
  });
  if (options.state) {
    try {
      s.setState(options.state);
    } catch (err) {
      throw new UserError(
        `cannot resume the data sampler: ${(err as Error).message} (was --data changed?)`,
      );
    }
  }
  return s;
}
