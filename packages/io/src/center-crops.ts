/**
 * Deterministic centre crops of a pair dataset, the validation counterpart of the
 * TrainingSampler's random crops (same upscaling of images smaller than the crop).
 */
import type { FloatImage } from './convert';
import { type PairDataset, pairToFloat } from './dataset';
import { cropFloat, resizeBilinear } from './geometry';
import { resizeShorterSide } from './sampler';

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
