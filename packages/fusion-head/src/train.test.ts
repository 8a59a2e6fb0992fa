import { type DenoiserFeatures, makeFeatureExtractor } from '@dif-fusion/diffusion/tfjs';
import { Conv2d } from '@dif-fusion/nn';
import { NoiseSchedule, Rng } from '@dif-fusion/schedules';
import { fastConv2d, TfOps, TfParamStore } from '@dif-fusion/tfjs';
import * as tf from '@tensorflow/tfjs-core';
// gradients (vitest resolves this ESM file; plain Node cannot, see README)
import '@tensorflow/tfjs-core/dist/register_all_gradients.js';
import '@tensorflow/tfjs-backend-cpu';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FusionHead } from './head';
import {
  type FusionBatch,
  HeadTrainer,
  headLearningRate,
  headTrainStep,
  type NamedGradientOptimizer,
} from './train';

/** Generated pairs: visible = smooth colour field + a dark square, infrared = bright blobs. */
function makePairs(n: number, size: number, seed: number): FusionBatch {
  const rng = new Rng(seed);
  const vis = new Float32Array(n * 3 * size * size);
  const ir = new Float32Array(n * size * size);
  for (let b = 0; b < n; b++) {
    const c = [
      rng.uniformRange(-0.5, 0.5),
      rng.uniformRange(-0.5, 0.5),
      rng.uniformRange(-0.5, 0.5),
    ];
    const side = Math.round(size / 3);
    const sq = [rng.int(size - side), rng.int(size - side)];
    const blob = [
      rng.uniformRange(size / 4, (3 * size) / 4),
      rng.uniformRange(size / 4, (3 * size) / 4),
    ];
    for (let y = 0; y < size; y++)
      for (let x = 0; x < size; x++) {
        const inSq = y >= sq[0] && y < sq[0] + side && x >= sq[1] && x < sq[1] + side;
        for (let ch = 0; ch < 3; ch++)
          vis[((b * 3 + ch) * size + y) * size + x] = inSq ? -0.9 : c[ch] + ((x - y) / size) * 0.4;
        const d2 = (x - blob[0]) ** 2 + (y - blob[1]) ** 2;
        ir[(b * size + y) * size + x] = -0.8 + 1.7 * Math.exp(-d2 / (size / 2));
      }
  }
  return { vis: tf.tensor4d(vis, [n, 3, size, size]), ir: tf.tensor4d(ir, [n, 1, size, size]) };
}

/** A tiny frozen stand-in for the UNet's decoder features: 3 features per level. */
function tinyDenoiser(
  levels: number[],
  seed: number,
): { fn: DenoiserFeatures; store: TfParamStore } {
  const convs: Conv2d[] = [];
  levels.forEach((c, l) => {
    for (let j = 0; j < 3; j++)
      convs.push(new Conv2d(`l${l}.${j}`, j === 0 ? 4 : c, c, 3, { padding: 1 }));
  });
  const store = TfParamStore.init(
    convs.flatMap((c) => c.params()),
    seed,
  );
  const ops = new TfOps(store);
  const fn: DenoiserFeatures = (x, level) => {
    const out: tf.Tensor[] = [];
    let inp: tf.Tensor = tf.add(x, tf.reshape(level, [-1, 1, 1, 1]));
    levels.forEach((_, l) => {
      if (l > 0) inp = tf.avgPool(inp as tf.Tensor4D, 2, 2, 'valid');
      let h: tf.Tensor = inp;
      for (let j = 0; j < 3; j++) {
        h = ops.swish(convs[l * 3 + j].forward(ops, h));
        out.push(h);
      }
    });
    return out;
  };
  return { fn, store };
}

describe('head training', () => {
  beforeAll(async () => {
    await tf.setBackend('cpu');
  });
  afterAll(() => tf.disposeVariables());

  it('headLearningRate follows the official linear and step policies', () => {
    expect(headLearningRate(1e-4, 0, 300, { lr_policy: 'linear' })).toBeCloseTo(1e-4, 12);
    expect(headLearningRate(1e-4, 150, 300, { lr_policy: 'linear' })).toBeCloseTo(
      1e-4 * (1 - 150 / 301),
      12,
    );
    expect(
      headLearningRate(1, 100, 300, { lr_policy: 'step', n_steps: 3, gamma: 0.1 }),
    ).toBeCloseTo(0.1, 12);
    expect(headLearningRate(1e-4, 5, 300)).toBe(1e-4);
  });

  it('fixed features are deterministic; random ones vary', () => {
    const schedule = new NoiseSchedule({
      schedule: 'linear',
      n_timestep: 2000,
      linear_start: 1e-6,
      linear_end: 1e-2,
    });
    const { fn, store } = tinyDenoiser([4, 8], 1);
    const batch = makePairs(1, 16, 3);
    const x = tf.transpose(tf.concat([batch.vis, batch.ir], 1), [0, 2, 3, 1]) as tf.Tensor4D;
    const fixed = makeFeatureExtractor(fn, schedule, { noise: 'fixed', seed: 7 });
    const a = fixed(x, [5, 50], [1, 4]);
    const b = fixed(x, [5, 50], [1, 4]);
    expect(a[0][0]).toBeNull(); // not requested: disposed
    expect(Array.from(a[1][4]!.dataSync())).toEqual(Array.from(b[1][4]!.dataSync()));
    const random = makeFeatureExtractor(fn, schedule, { noise: 'random', seed: 7 });
    const c = random(x, [5, 50], [1, 4]);
    const d = random(x, [5, 50], [1, 4]);
    expect(Array.from(c[1][4]!.dataSync())).not.toEqual(Array.from(d[1][4]!.dataSync()));
    tf.dispose([
      x,
      batch.vis,
      batch.ir,
      ...[a, b, c, d].flat(2).filter((t): t is tf.Tensor => t !== null),
    ]);
    store.dispose();
  });

  it('headTrainStep: gradients by official name for the used parameters; a NaN loss changes nothing', () => {
    const head = new FusionHead(
      { feat_scales: [1, 4], time_steps: [5, 50] },
      { inner_channel: 2, channel_multiplier: [1, 2], res_blocks: 2 },
    );
    const params = TfParamStore.init(head.params(), 4);
    const rng = new Rng(8);
    const feats = head.config.time_steps.map(() =>
      Array.from({ length: 6 }, (_, i) => {
        const s = i < 3 ? 8 : 4;
        const c = head.featureChannels(i);
        return tf.tensor4d(
          new Float32Array(s * s * c).map(() => rng.normal()),
          [1, s, s, c],
        );
      }),
    );
    const batch = makePairs(1, 8, 5);
    const vis = tf.transpose(batch.vis, [0, 2, 3, 1]);
    const ir = tf.transpose(batch.ir, [0, 2, 3, 1]);
    const seen: string[][] = [];
    const sgd: NamedGradientOptimizer = {
      lr: 0.01,
      apply(grads) {
        seen.push(Object.keys(grads).sort());
        for (const [name, g] of Object.entries(grads))
          params.get(name).assign(tf.sub(params.get(name), tf.mul(g, this.lr ?? 0)));
      },
    };
    const step = () =>
      headTrainStep({ head, params, optimizer: sgd, feats, vis, ir, conv2d: fastConv2d });
    const first = step();
    expect(first.applied).toBe(true);
    expect(first.loss).toBeCloseTo(first.lossIn + first.lossGrad, 5);
    expect(seen[0]).toEqual(
      head
        .usedParams()
        .map((p) => p.name)
        .sort(),
    );
    expect(seen[0]).not.toContain('decoder.2.block.2.weight'); // the dead finest Block (reference)
    expect(step().loss).toBeLessThan(first.loss); // plain SGD on the same batch
    const before = params.variables().map((v) => Array.from(v.dataSync()));
    const old = feats[0][4];
    feats[0][4] = tf.fill(old.shape, Number.NaN);
    const bad = step();
    expect(bad.applied).toBe(false);
    expect(Number.isNaN(bad.loss)).toBe(true);
    expect(seen.length).toBe(2);
    expect(params.variables().map((v) => Array.from(v.dataSync()))).toEqual(before);
    tf.dispose([old, vis, ir, batch.vis, batch.ir, ...feats.flat()]);
    params.dispose();
  });

  for (const mode of ['reference', 'full'] as const) {
    it(`tiny end-to-end run lowers the fusion loss (${mode})`, () => {
      const schedule = new NoiseSchedule({
        schedule: 'linear',
        n_timestep: 2000,
        linear_start: 1e-6,
        linear_end: 1e-2,
      });
      const unet = tinyDenoiser([4, 8], 2);
      const head = new FusionHead(
        { feat_scales: [2, 5], time_steps: [5, 50], mode },
        { inner_channel: 4, channel_multiplier: [1, 2], res_blocks: 2 },
      );
      const params = TfParamStore.init(head.params(), 3);
      const trainer = new HeadTrainer({
        head,
        params,
        features: makeFeatureExtractor(unet.fn, schedule),
        lr: 5e-3,
        // tf.conv2d's gradients are very slow on the cpu backend (and missing on wasm)
        conv2d: fastConv2d,
      });
      const batches = [makePairs(2, 16, 10), makePairs(2, 16, 11)];
      const before = batches.map((b) => {
        const r = trainer.evaluate(b);
        r.fused.dispose();
        return r.loss;
      });
      const frozen = unet.store.variables().map((v) => v.dataSync().slice());
      const tensorsBefore = tf.memory().numTensors;
      const losses: number[] = [];
      for (let i = 0; i < 30; i++) {
        const r = trainer.step(batches[i % 2]);
        expect(r.applied).toBe(true);
        losses.push(r.loss);
      }
      // no leaks per step beyond the optimizer's slots (allocated on the first step)
      const leak = tf.memory().numTensors - tensorsBefore;
      expect(leak).toBeLessThanOrEqual(2 * head.usedParams().length + 2);
      const after = batches.map((b) => {
        const r = trainer.evaluate(b);
        expect(r.fused.shape).toEqual([2, 3, 16, 16]);
        r.fused.dispose();
        return r.loss;
      });
      const mean = (a: number[]) => a.reduce((x, y) => x + y, 0) / a.length;
      console.log(
        `[${mode}] loss before ${mean(before).toFixed(4)} after ${mean(after).toFixed(4)}`,
        losses.map((l) => l.toFixed(3)).join(' '),
      );
      expect(mean(after)).toBeLessThan(0.8 * mean(before));
      // the frozen denoiser did not move
      const now = unet.store.variables();
      for (let i = 0; i < now.length; i++)
        expect(Array.from(now[i].dataSync())).toEqual(Array.from(frozen[i]));
      params.dispose();
      unet.store.dispose();
      for (const b of batches) tf.dispose([b.vis, b.ir]);
    });
  }
});
