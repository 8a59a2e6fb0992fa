import { FusionHead } from '@dif-fusion/fusion-head';
import { NoiseSchedule } from '@dif-fusion/schedules';
import { UNet } from '@dif-fusion/unet';
import { describe, expect, it } from 'vitest';
import { initWeights } from './ort-ddpm';
import { OrtHeadEngine, type OrtHeadOptions } from './ort-head';

/** A tiny frozen UNet and head, weights from fixed seeds; `x` batches of uniform values in [-1, 1]. */
function setup(): { options: () => OrtHeadOptions; batches: Float32Array[] } {
  const s = 16;
  const unet = new UNet({
    in_channel: 4,
    out_channel: 4,
    inner_channel: 8,
    norm_groups: 4,
    channel_multiplier: [1, 2],
    attn_res: [8],
    res_blocks: 1,
    dropout: 0,
    image_size: s,
  });
  const head = new FusionHead(
    { feat_scales: [1, 3], time_steps: [5, 50], mode: 'full' },
    unet.config,
  );
  const unetWeights = initWeights(unet.params(), 5);
  let v = 1;
  const batches = [0, 1, 2].map(() =>
    Float32Array.from({ length: 2 * 4 * s * s }, () => {
      v = (v * 16807) % 2147483647;
      return (v / 2147483647) * 2 - 1;
    }),
  );
  const options = (): OrtHeadOptions => ({
    head,
    unet,
    unetWeights,
    weights: initWeights(head.params(), 9),
    optimizer: { type: 'adam', lr: 1e-2 },
    crop: s,
    alpha: 1,
    colorWeight: 0.5,
    space: 'rgb',
    noise: 'fixed',
    seed: 3,
    schedule: new NoiseSchedule({
      schedule: 'linear',
      n_timestep: 100,
      linear_start: 1e-4,
      linear_end: 0.05,
    }),
    threads: 1,
  });
  return { options, batches };
}

describe('OrtHeadEngine feature cache (fixed noise)', () => {
  it('steps on cached features give the losses and weights of steps on fresh ones, bit for bit', async () => {
    const { options, batches } = setup();
    const fresh = new OrtHeadEngine(options());
    const cached = new OrtHeadEngine({ ...options(), cacheValidation: true });
    try {
      const cache = [];
      for (const x of batches) cache.push(await cached.cacheFeatures(x, 2));
      // [time step][decoder index]: the head's features (1 and 3) in NCHW, the others null
      const { unet } = options();
      const shape = (i: number) => {
        const size = 16 / unet.decoderScale(i);
        return [2, unet.decoderChannels()[i], size, size];
      };
      const want = [null, shape(1), null, shape(3)];
      expect(cache[0].feats.map((f) => f.map((e) => e?.shape ?? null))).toEqual([want, want]);
      expect(cache[0].feats[0][1]?.data).toHaveLength(shape(1).reduce((p, q) => p * q));
      const a: number[] = [];
      const b: number[] = [];
      for (const [i, x] of batches.entries()) {
        a.push((await fresh.step({ x, n: 2 })).loss);
        b.push((await cached.step({ x, n: 2, cached: cache[i] })).loss);
      }
      expect(a.every(Number.isFinite)).toBe(true);
      expect(new Set(a).size).toBe(3);
      expect(b).toEqual(a);
      for (const [k, w] of fresh.weights())
        expect(cached.weights().get(k)?.data, k).toEqual(w.data);
      // validation reads features computed once per batch index: the same loss and image
      const ev = await fresh.evaluate({ x: batches[0], n: 2 }, 0);
      const evCached = await cached.evaluate({ x: batches[0], n: 2 }, 0);
      expect(evCached.loss).toBe(ev.loss);
      expect(evCached.fused).toEqual(ev.fused);
      expect((await cached.evaluate({ x: batches[0], n: 2 }, 0)).loss).toBe(ev.loss);
    } finally {
      await fresh.release();
      await cached.release();
    }
  }, 60_000);
});
