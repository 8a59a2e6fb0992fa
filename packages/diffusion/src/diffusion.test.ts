import { readSafetensors } from '@dif-fusion/io';
import { drawDdpmStep, NoiseSchedule, Rng } from '@dif-fusion/schedules';
import { nchwToNhwc, nhwcToNchw, TfOps, TfParamStore, useBackend } from '@dif-fusion/tfjs';
import { UNet } from '@dif-fusion/unet';
import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import { golden, hasGolden, noteSkip, relErr } from '../../../test/shared';
import { fusionNoise, GaussianDiffusion, imageNoise, qSample, stepFeatures } from './test-utils';

noteSkip(hasGolden, 'golden');

const tiny = new UNet({
  in_channel: 4,
  out_channel: 4,
  inner_channel: 8,
  norm_groups: 4,
  channel_multiplier: [1, 2],
  attn_res: [4],
  res_blocks: 1,
  dropout: 0,
  image_size: 8,
});

await useBackend('wasm');

describe.skipIf(!hasGolden)('features parity with diffusion_feats.safetensors', () => {
  it.each(['cpu', 'wasm'] as const)(
    'levels, x_noisy, loss_sum and every fd within 1e-4 (%s)',
    async (backend) => {
      await useBackend(backend);
      const file = readSafetensors(golden('diffusion_feats.safetensors'));
      const net = readSafetensors(golden('unet_5level.safetensors'));
      const get = (k: string) => file.tensors.get(k)!;
      const unet = new UNet(JSON.parse(net.metadata.config));
      const store = TfParamStore.fromTorch(unet.params(), net.tensors, { prefix: 'weights.' });
      const ops = new TfOps(store);
      const schedule = new NoiseSchedule({
        schedule: 'linear',
        n_timestep: 2000,
        linear_start: 1e-6,
        linear_end: 1e-2,
      });
      const diffusion = new GaussianDiffusion(unet, schedule, { loss: 'l2' });
      const nhwc = (k: string) =>
        nchwToNhwc(tf.tensor(Float32Array.from(get(k).data), get(k).shape));
      const x = nhwc('input.x_start');
      const steps = [5, 50, 100];
      // Default levels are the midpoints the golden file used.
      const levels = diffusion.featureLevels(steps);
      for (const [k, t] of steps.entries())
        expect(levels[k]).toBeCloseTo(get(`t${t}.level`).data[0], 6);
      const noise = steps.map((t) => nhwc(`t${t}.noise`));
      const feats = diffusion.features(ops, x, steps, {
        noise,
        levels: steps.map((t) => get(`t${t}.level`).data[0]),
      });
      for (const [k, t] of steps.entries()) {
        const level = get(`t${t}.level`).data[0];
        const xNoisy = diffusion.qSample(x, tf.tensor2d([[level]]), noise[k]);
        expect(relErr(await nhwcToNchw(xNoisy).data(), get(`t${t}.x_noisy`).data)).toBeLessThan(
          1e-6,
        );
        const eps = unet.forward(ops, xNoisy, tf.tensor2d([[level]]));
        const lossSum = (await tf.sum(tf.square(tf.sub(noise[k], eps))).data())[0];
        expect(lossSum / get(`t${t}.loss_sum`).data[0]).toBeCloseTo(1, 4);
        const fdKeys = [...file.tensors.keys()].filter((key) => key.startsWith(`t${t}.fd.`)).sort();
        expect(feats[k].fd.length).toBe(fdKeys.length);
        for (const [i, key] of fdKeys.entries())
          expect(relErr(await nhwcToNchw(feats[k].fd[i]).data(), get(key).data), key).toBeLessThan(
            1e-4,
          );
      }
    },
  );
});

describe('GaussianDiffusion on a tiny UNet', () => {
  const schedule = new NoiseSchedule({
    schedule: 'linear',
    n_timestep: 20,
    linear_start: 1e-4,
    linear_end: 0.2,
  });
  const store = TfParamStore.init(tiny.params(), 3);
  const ops = new TfOps(store);
  const diffusion = new GaussianDiffusion(tiny, schedule);

  it('features are deterministic for a seed and use the seeded fusion noise', async () => {
    const x = tf.tensor(new Rng(1).normalArray(2 * 8 * 8 * 4), [2, 8, 8, 4]);
    const a = diffusion.features(ops, x, [2, 10], { seed: 7 });
    const b = diffusion.features(ops, x, [2, 10], { seed: 7 });
    const c = diffusion.features(ops, x, [2, 10], { seed: 8 });
    expect(await a[1].fd[0].data()).toEqual(await b[1].fd[0].data());
    expect(await a[1].fd[0].data()).not.toEqual(await c[1].fd[0].data());
    // Explicit noise equal to imageNoise(seed) (the ONNX runtime's and dif-fuse's) gives the
    // same features; the plain row-major draw fusionNoise(seed) does not.
    const all = imageNoise(7, { k: 2, n: 2, channels: 4, height: 8, width: 8 });
    expect(all).not.toEqual(fusionNoise(7, { k: 2, n: 2, channels: 4, height: 8, width: 8 }));
    const per = 2 * 4 * 8 * 8;
    const noise = [0, 1].map((k) =>
      nchwToNhwc(tf.tensor(all.subarray(k * per, (k + 1) * per), [2, 4, 8, 8])),
    );
    const d = diffusion.features(ops, x, [2, 10], { noise });
    expect(await d[1].fd[0].data()).toEqual(await a[1].fd[0].data());
    expect(a.map((s) => s.level)).toEqual([
      schedule.midpointNoiseLevel(2),
      schedule.midpointNoiseLevel(10),
    ]);
    // The reference's random level lies inside the step's interval.
    const [r] = diffusion.featureLevels([10], { random: true, seed: 3 });
    expect(r).toBeLessThanOrEqual(schedule.sqrtAlphasCumprodPrev[9]);
    expect(r).toBeGreaterThanOrEqual(schedule.sqrtAlphasCumprodPrev[10]);
  });

  it('stepFeatures: the per-step and the batched realisation give the same features; per step is q_sample then the UNet', async () => {
    const x = tf.tensor(new Rng(2).normalArray(2 * 8 * 8 * 4), [2, 8, 8, 4]);
    const levels = [0.99, 0.8, 0.5];
    const noise = levels.map((_, k) =>
      tf.tensor(new Rng(10 + k).normalArray(2 * 8 * 8 * 4), [2, 8, 8, 4]),
    );
    const features = (xn: tf.Tensor, level: tf.Tensor) => tiny.features(ops, xn, level).fd;
    const per = stepFeatures(ops, {
      x,
      levels,
      noise,
      features,
      stepLevel: (k) => tf.fill([2, 1], levels[k]),
    });
    const batched = stepFeatures(ops, {
      x,
      levels,
      noise,
      features,
      batchLevel: () => tf.concat(levels.map((l) => tf.fill([2, 1], l))),
      indices: [0, 2],
    });
    for (const [k, level] of levels.entries()) {
      const by = tiny.features(ops, qSample(ops, x, level, noise[k]), tf.fill([2, 1], level)).fd;
      for (const i of [0, 2]) {
        const want = await by[i]!.data();
        expect(await per[k][i]!.data()).toEqual(want);
        expect(relErr(await batched[k][i]!.data(), want)).toBeLessThan(1e-5);
      }
      expect(batched[k][1]).toBeUndefined();
    }
  });

  it('pLosses is the element mean of |eps - eps_theta| for the drawn t, levels and noise', async () => {
    const x = tf.tensor(new Rng(2).normalArray(2 * 8 * 8 * 4), [2, 8, 8, 4]);
    const l1 = new GaussianDiffusion(tiny, schedule, { loss: 'l1' });
    const draws = drawDdpmStep(schedule, new Rng(5), 2, x.size);
    const noise = tf.tensor(draws.noise, x.shape);
    const loss = (
      await tf.tidy(() => l1.pLosses(ops, x, { levels: draws.levels, noise })).data()
    )[0];
    // Recompute by hand with the same draws, in the order t, levels, noise.
    const rng = new Rng(5);
    const t = schedule.sampleTimestep(rng);
    const levels = schedule.continuousNoiseLevels(t, 2, rng);
    expect(draws.t).toBe(t);
    expect(draws.levels).toEqual(levels);
    expect(draws.noise).toEqual(rng.normalArray(x.size));
    const lv = tf.tensor2d(levels, [2, 1]);
    const eps = tiny.forward(ops, diffusion.qSample(x, lv, noise), lv);
    const expected = (await tf.mean(tf.abs(tf.sub(noise, eps))).data())[0];
    expect(loss).toBeCloseTo(expected, 6);
    // A shard passing the whole batch's element count: half the batch, half the mean.
    const half = tf.tidy(() =>
      l1.pLosses(ops, x, { levels: draws.levels, noise }, 2 * x.size).dataSync(),
    )[0];
    expect(half).toBeCloseTo(expected / 2, 6);
    // The default loss is the reference configs' l2.
    expect(new GaussianDiffusion(tiny, schedule).loss).toBe('l2');
  });

  it('predictStartFromNoise inverts qSample at the sampling level', async () => {
    const x0 = tf.tensor(new Rng(4).normalArray(8 * 8 * 4), [1, 8, 8, 4]);
    const noise = tf.tensor(new Rng(6).normalArray(8 * 8 * 4), [1, 8, 8, 4]);
    const t = 12;
    const xt = diffusion.qSample(x0, tf.tensor2d([[schedule.samplingNoiseLevel(t)]]), noise);
    const back = diffusion.predictStartFromNoise(xt, t, noise);
    expect(relErr(await back.data(), await x0.data())).toBeLessThan(1e-5);
  });

  it('full ancestral and strided sampling return finite images in [-1, 1] range', async () => {
    const full = diffusion.sample(ops, [1, 8, 8, 4], new Rng(9));
    const fast = diffusion.sampleStrided(ops, [2, 8, 8, 4], 5, new Rng(9));
    for (const img of [full, fast]) {
      const v = await img.data();
      expect(v.every(Number.isFinite)).toBe(true);
      // x0 is clipped to [-1, 1]; the last step adds no noise, so the mean stays near range.
      expect(Math.max(...v.map(Math.abs))).toBeLessThan(1.5);
    }
    expect(fast.shape).toEqual([2, 8, 8, 4]);
  });
});
