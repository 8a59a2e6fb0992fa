import { NoiseSchedule, Rng } from '@dif-fusion/schedules';
import { TfOps, TfParamStore, useBackend } from '@dif-fusion/tfjs';
import type { UNet } from '@dif-fusion/unet';
import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import { relErr } from '../../../test/shared';
import {
  chainCoefficients,
  clipUnit,
  GaussianDiffusion,
  lossCoefs,
  type MeanType,
  modelOutputParts,
  noiseFromStartCoefs,
  startFromNoiseCoefs,
  startFromPrevCoefs,
} from './test-utils';

await useBackend('cpu');

/** betas 0.1, 0.2, 0.3: linspace(0.1, 0.3, 3). */
const three = new NoiseSchedule({
  schedule: 'linear',
  n_timestep: 3,
  linear_start: 0.1,
  linear_end: 0.3,
});

/** A stand-in denoiser: f(x) = k x (no parameters), so every sampler step is closed-form. */
const linear = (k: number) =>
  ({ forward: (_ops: unknown, x: tf.Tensor) => tf.mul(x, k) }) as unknown as UNet;
const ops = new TfOps(TfParamStore.fromTorch([], new Map()));

describe('chain coefficients of a 3-step schedule, by hand', () => {
  // alphas_cumprod = 0.9, 0.72, 0.504 = 9/10, 18/25, 63/125; a_{-1} = 1
  const c = chainCoefficients(three.betas);

  it('alphas_cumprod and the posterior (Ho et al. eq. 6-7)', () => {
    expect([...c.alphasCumprod].map((v) => +v.toFixed(12))).toEqual([0.9, 0.72, 0.504]);
    expect([...c.alphasCumprodPrev].map((v) => +v.toFixed(12))).toEqual([1, 0.9, 0.72]);
    // v_i = beta_i (1 - a_{i-1}) / (1 - a_i): 0, 0.2*0.1/0.28 = 1/14, 0.3*0.28/0.496 = 21/124
    expect(c.posteriorVariance[0]).toBe(0);
    expect(c.posteriorVariance[1]).toBeCloseTo(1 / 14, 14);
    expect(c.posteriorVariance[2]).toBeCloseTo(21 / 124, 14);
    // c1_i = beta_i sqrt(a_{i-1}) / (1 - a_i): 1, (5/7) sqrt(0.9), (75/124) sqrt(0.72)
    expect(c.posteriorMeanCoef1[0]).toBeCloseTo(1, 14);
    expect(c.posteriorMeanCoef1[1]).toBeCloseTo((5 / 7) * Math.sqrt(0.9), 14);
    expect(c.posteriorMeanCoef1[2]).toBeCloseTo((75 / 124) * Math.sqrt(0.72), 14);
    // c2_i = (1 - a_{i-1}) sqrt(alpha_i) / (1 - a_i): 0, (5/14) sqrt(0.8), (35/62) sqrt(0.7)
    expect(c.posteriorMeanCoef2[0]).toBe(0);
    expect(c.posteriorMeanCoef2[1]).toBeCloseTo((5 / 14) * Math.sqrt(0.8), 14);
    expect(c.posteriorMeanCoef2[2]).toBeCloseTo((35 / 62) * Math.sqrt(0.7), 14);
  });

  it('fixedsmall = log max(v, 1e-20); fixedlarge = log [v_1, beta_1, beta_2]', () => {
    expect(c.logVariance.fixedsmall[0]).toBeCloseTo(Math.log(1e-20), 12);
    expect(c.logVariance.fixedsmall[1]).toBeCloseTo(Math.log(1 / 14), 12);
    expect(c.logVariance.fixedsmall[2]).toBeCloseTo(Math.log(21 / 124), 12);
    expect(c.logVariance.fixedlarge[0]).toBeCloseTo(Math.log(1 / 14), 12);
    expect(c.logVariance.fixedlarge[1]).toBeCloseTo(Math.log(0.2), 12);
    expect(c.logVariance.fixedlarge[2]).toBeCloseTo(Math.log(0.3), 12);
  });

  it('the full chain reproduces NoiseSchedule bit for bit', () => {
    const s = new NoiseSchedule({
      schedule: 'linear',
      n_timestep: 2000,
      linear_start: 1e-6,
      linear_end: 1e-2,
    });
    const f = chainCoefficients(s.betas);
    expect(f.alphasCumprod).toEqual(s.alphasCumprod);
    expect(f.posteriorMeanCoef1).toEqual(s.posteriorMeanCoef1);
    expect(f.posteriorMeanCoef2).toEqual(s.posteriorMeanCoef2);
    expect(f.logVariance.fixedsmall).toEqual(s.posteriorLogVarianceClipped);
  });

  it('x_0 from eps, from x_prev, and eps from x_0 invert the forward maps', () => {
    const [x0, eps] = [0.3, -1.2];
    for (const i of [1, 2]) {
      const a = c.alphasCumprod[i];
      const xt = Math.sqrt(a) * x0 + Math.sqrt(1 - a) * eps;
      const [p, q] = startFromNoiseCoefs(c, i);
      expect(p * xt + q * eps).toBeCloseTo(x0, 12);
      const xPrev = c.posteriorMeanCoef1[i] * x0 + c.posteriorMeanCoef2[i] * xt;
      const [r, s] = startFromPrevCoefs(c, i);
      expect(r * xt + s * xPrev).toBeCloseTo(x0, 12);
      const [u, v] = noiseFromStartCoefs(c, i);
      expect(u * xt + v * x0).toBeCloseTo(eps, 12);
    }
  });
});

describe('mean types', () => {
  const x = Float32Array.from([0.5, -0.25, 0.75, 1]);
  const noise = Float32Array.from([1, 2, -1, 0.5]);
  const levels = Float32Array.from([0.8, 0.6]);

  // the posterior mean coefficients of t = 3 (index 2) of the 3-step chain
  const c1 = (75 / 124) * Math.sqrt(0.72);
  const c2 = (35 / 62) * Math.sqrt(0.7);

  it('lossCoefs: c1_{t-1}, c2_{t-1} first (the x_prev target c1 x_0 + c2 x_t)', () => {
    const k = lossCoefs(chainCoefficients(three.betas), 'x_prev', 3);
    expect(k[0]).toBeCloseTo(c1, 6);
    expect(k[1]).toBeCloseTo(c2, 6);
  });

  it.each(['epsilon', 'x_start', 'x_prev'] as MeanType[])(
    'pLosses (%s) is the mean square of the target (eps, x_0, c1 x_0 + c2 x_t) - output',
    async (meanType) => {
      const d = new GaussianDiffusion(linear(0.5), three, { mean_type: meanType });
      const xs = tf.tensor(x, [2, 1, 1, 2]);
      const nz = tf.tensor(noise, [2, 1, 1, 2]);
      const loss = tf.tidy(() => d.pLosses(ops, xs, { levels, noise: nz, t: 3 }).dataSync()[0]);
      let sum = 0;
      for (let k = 0; k < 4; k++) {
        const l = levels[k >> 1];
        const xt = l * x[k] + Math.sqrt(1 - l * l) * noise[k];
        const target =
          meanType === 'epsilon' ? noise[k] : meanType === 'x_start' ? x[k] : c1 * x[k] + c2 * xt;
        sum += (target - 0.5 * xt) ** 2;
      }
      expect(loss).toBeCloseTo(sum / 4, 5);
    },
  );

  it('predictStartFromPrev inverts the posterior mean; x_prev sampling uses the output as mean', async () => {
    const d = new GaussianDiffusion(linear(1), three, { mean_type: 'x_prev' });
    const x0 = tf.tensor([0.2, -0.4, 0.9], [1, 1, 1, 3]);
    const xt = tf.tensor([1.1, 0.3, -0.5], [1, 1, 1, 3]);
    const { mean } = d.qPosterior(x0, xt, 2);
    const back = d.predictStartFromPrev(xt, 2, mean);
    expect(relErr(await back.data(), await x0.data())).toBeLessThan(1e-6);
    // f(x) = x: the mean is x itself, x_0 = (x - c2 x) / c1 clipped to [-1, 1]
    const pm = d.pMeanVariance(ops, xt, 2, false);
    expect(await pm.mean.data()).toEqual(await xt.data());
    const c = d.chain();
    const k = (1 - c.posteriorMeanCoef2[2]) / c.posteriorMeanCoef1[2];
    expect(
      relErr(await pm.xStart.data(), Float32Array.from([1.1 * k, 0.3 * k, -0.5 * k])),
    ).toBeLessThan(1e-6);
    expect(pm.logVariance).toBeCloseTo(Math.log(21 / 124), 12);
  });

  it('x_start: pMeanVariance returns the output (clipped) as x_0 and its posterior mean', async () => {
    const d = new GaussianDiffusion(linear(2), three, {
      mean_type: 'x_start',
      var_type: 'fixedlarge',
    });
    const xt = tf.tensor([0.3, -0.7], [1, 1, 1, 2]);
    const pm = d.pMeanVariance(ops, xt, 1);
    // x_0 = clip(2 x) = [0.6, -1]; mean = c1_1 x_0 + c2_1 x_t
    const c1 = (5 / 7) * Math.sqrt(0.9);
    const c2 = (5 / 14) * Math.sqrt(0.8);
    expect(relErr(await pm.xStart.data(), Float32Array.from([0.6, -1]))).toBeLessThan(1e-7);
    expect(
      relErr(await pm.mean.data(), Float32Array.from([c1 * 0.6 + c2 * 0.3, -c1 + c2 * -0.7])),
    ).toBeLessThan(1e-6);
    expect(pm.logVariance).toBeCloseTo(Math.log(0.2), 12);
  });
});

describe("the samplers' maths on Ops (./sampling.ts)", () => {
  it('clipUnit is a clip to [-1, 1], signed zeros kept', async () => {
    const x = tf.tensor([-3, -1, -0.25, -0, 0, 0.5, 1, 7]);
    const y = Array.from(await clipUnit(ops, x).data());
    expect(y).toEqual([-1, -1, -0.25, -0, 0, 0.5, 1, 1]);
    expect(Object.is(y[3], -0)).toBe(true);
  });
  it('learned_range: the mean output and mid + half v from the last channels', async () => {
    const c = chainCoefficients(three.betas);
    const raw = tf.tensor([0.5, 1, -0.7, -1], [1, 1, 2, 2]); // NHWC: 2 pixels of [out, v]
    const { out, logVariance } = modelOutputParts(ops, c, 'learned_range', 1, raw, 1);
    const min = c.posteriorLogVarianceClipped[1];
    const max = Math.log(c.betas[1]);
    expect(Array.from(await out.data())).toEqual([0.5, -0.7].map(Math.fround));
    const lv = Array.from(await (logVariance as tf.Tensor).data());
    expect(lv[0]).toBeCloseTo(max, 6); // v = 1
    expect(lv[1]).toBeCloseTo(min, 6); // v = -1
    expect(modelOutputParts(ops, c, 'fixedlarge', 1, raw, 2).logVariance).toBe(
      c.logVariance.fixedlarge[1],
    );
  });
});

describe('samplers on the 3-step schedule', () => {
  const shape: [number, number, number, number] = [1, 2, 2, 1];
  const start = () => new Rng(5).normalArray(4);

  it('DDIM eta=0 with eps = 0 gives x_T / sqrt(a_2) and draws nothing after x_T', async () => {
    const d = new GaussianDiffusion(linear(0), three);
    const rng = new Rng(5);
    const out = d.run(ops, shape, rng, { sampler: 'ddim', eta: 0, clip: false });
    // each step scales by sqrt(a_{i-1} / a_i): the product is 1 / sqrt(0.504)
    const want = start().map((v) => v / Math.sqrt(0.504));
    expect(relErr(await out.data(), want)).toBeLessThan(1e-6);
    const after = new Rng(5);
    after.normalArray(4);
    expect(rng.getState()).toEqual(after.getState());
    // deterministic: the same seed gives the same bytes
    const again = d.run(ops, shape, new Rng(5), { sampler: 'ddim', eta: 0, clip: false });
    expect(await again.data()).toEqual(await out.data());
  });

  it('ancestral fixedlarge with eps = 0, by hand: mean c1 x_0 + c2 x plus sqrt(beta) z', async () => {
    const c = chainCoefficients(three.betas);
    for (const varType of ['fixedsmall', 'fixedlarge'] as const) {
      const d = new GaussianDiffusion(linear(0), three, { var_type: varType });
      const out = await d.run(ops, shape, new Rng(5), { clip: false }).data();
      const rng = new Rng(5);
      let x = Array.from(rng.normalArray(4));
      for (let i = 2; i >= 0; i--) {
        const x0 = x.map((v) => v / Math.sqrt(c.alphasCumprod[i]));
        const mean = x.map((v, k) => c.posteriorMeanCoef1[i] * x0[k] + c.posteriorMeanCoef2[i] * v);
        const sd = i > 0 ? Math.exp(0.5 * c.logVariance[varType][i]) : 0;
        const z = i > 0 ? rng.normalArray(4) : new Float32Array(4);
        x = mean.map((m, k) => m + sd * z[k]);
      }
      expect(relErr(out, Float32Array.from(x))).toBeLessThan(1e-5);
    }
    // the two variances differ only where they should: sigma_2^2 = 0.3 vs 21/124
    expect(Math.exp(c.logVariance.fixedlarge[2])).toBeCloseTo(0.3, 12);
  });

  it('strided: 2 of 3 steps respace the chain (kept 0 and 2, betas 0.1 and 1 - 0.504/0.9)', async () => {
    const d = new GaussianDiffusion(linear(0), three);
    const out = d.run(ops, shape, new Rng(5), { steps: 2, sampler: 'ddim', clip: false });
    // alphas_cumprod of the kept steps are 0.9 and 0.504: DDIM scales by 1 / sqrt(0.504)
    const want = start().map((v) => v / Math.sqrt(0.504));
    expect(relErr(await out.data(), want)).toBeLessThan(1e-6);
    const progress: number[][] = [];
    d.run(ops, shape, new Rng(5), { steps: 2, onStep: (a, b) => progress.push([a, b]) });
    expect(progress).toEqual([
      [1, 2],
      [2, 2],
    ]);
  });

  it('an oracle denoiser (the true eps / x_0 of a fixed image) is sampled back exactly', async () => {
    const s = new NoiseSchedule({
      schedule: 'linear',
      n_timestep: 100,
      linear_start: 1e-4,
      linear_end: 0.05,
    });
    const x0 = tf.tensor([0.3, -0.5, 0.9, -0.1], shape);
    // eps(x_t, level) = (x_t - level x_0) / sqrt(1 - level^2); x_start: x_0 itself
    const oracle = (meanType: MeanType) =>
      ({
        forward: (_o: unknown, x: tf.Tensor, level: tf.Tensor) => {
          const l = tf.reshape(level, [-1, 1, 1, 1]);
          return meanType === 'x_start'
            ? tf.add(tf.mul(x, 0), x0)
            : tf.div(tf.sub(x, tf.mul(l, x0)), tf.sqrt(tf.sub(1, tf.square(l))));
        },
      }) as unknown as UNet;
    for (const meanType of ['epsilon', 'x_start'] as const)
      for (const o of [
        { sampler: 'ddim', steps: 10 },
        { sampler: 'ddim', steps: 100, eta: 1 },
        { sampler: 'ancestral', steps: 7 },
        { sampler: 'ancestral' },
      ] as const) {
        const d = new GaussianDiffusion(oracle(meanType), s, {
          mean_type: meanType,
          var_type: 'fixedlarge',
        });
        const out = d.run(ops, shape, new Rng(1), o);
        expect(relErr(await out.data(), await x0.data()), JSON.stringify(o)).toBeLessThan(1e-3);
      }
  });

  it('classifier-free guidance: (1 + w) f(x, c) - w f(x, 0) on the concatenated input', async () => {
    // f([cond, x]) = cond + x (the first channel of the input plus the second)
    const unet = {
      forward: (_o: unknown, xin: tf.Tensor) => {
        const [cond, x] = tf.split(xin, 2, 3);
        return tf.add(cond, x);
      },
    } as unknown as UNet;
    const d = new GaussianDiffusion(unet, three, { mean_type: 'x_start', conditional: true });
    const condition = tf.fill([1, 2, 2, 1], 0.25);
    const w = 2;
    const out = d.run(ops, shape, new Rng(5), {
      steps: 1,
      sampler: 'ddim',
      clip: false,
      condition,
      guidance: w,
    });
    // one step at a = 0.504, a_prev = 1: x_0 = (1 + w)(0.25 + x) - w x = x + 0.75
    const want = start().map((v) => v + 0.75);
    expect(relErr(await out.data(), want)).toBeLessThan(1e-6);
    expect(() => d.run(ops, shape, new Rng(5))).toThrow(/needs a condition image/);
  });
});
