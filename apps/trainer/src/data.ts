/**
 * Training data on @dif-fusion/io: a folder with `ir/` and `vi/` (pairs matched by file
 * name), decoded once and cached, and io's seeded TrainingSampler (random crops + flips,
 * epoch-wise shuffles) whose state goes into every checkpoint.
 */
import {
  cropFloat,
  type FloatImage,
  PairDataset,
  pairToFloat,
  resizeBilinear,
  resizeShorterSide,
  type SamplerState,
  TrainingSampler,
} from '@dif-fusion/io';
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

/**
 * Centre crops (`crop` x `crop`) of the first `n` pairs, as one `[n, 4, crop, crop]` array
 * (visible RGB then IR). Images smaller than the crop are first upscaled (shorter side =
 * crop), as the sampler does.
 */
export async function centerCrops(
  ds: PairDataset,
  crop: number,
  n = ds.length,
): Promise<Float32Array> {
  const k = Math.min(n, ds.length);
  const plane = crop * crop;
  const out = new Float32Array(k * 4 * plane);
  for (let i = 0; i < k; i++) {
    const p = pairToFloat(await ds.get(i));
    const fit = (img: FloatImage) => {
      let im = img;
      if (im.width < crop || im.height < crop) {
        const [w, h] = resizeShorterSide(im.width, im.height, crop);
        im = resizeBilinear(im, w, h);
      }
      return cropFloat(
        im,
        Math.floor((im.width - crop) / 2),
        Math.floor((im.height - crop) / 2),
        crop,
        crop,
      );
    };
    out.set(fit(p.vi).data, i * 4 * plane);
    out.set(fit(p.ir).data, i * 4 * plane + 3 * plane);
  }
  return out;
}
