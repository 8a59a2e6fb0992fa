import { readFileSync } from 'node:fs';
import { NoiseSchedule, Rng } from '@dif-fusion/schedules';
import { TfOps, TfParamStore, useBackend } from '@dif-fusion/tfjs';
import type { UNet } from '@dif-fusion/unet';
import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import {
  approxStandardNormalCdf,
  chainCoefficients,
  discretizedGaussianLogLikelihood,
  GaussianDiffusion,
  type LossCoef,
  learnedRange,
  normalKl,
  trainingLevels,
  vbTerm,
} from './test-utils';

await useBackend('cpu');

/** PyTorch values (float64) of scripts/learned-variance-reference.py. */
const fx = JSON.parse(
  readFileSync(new URL('../fixtures/learned-variance.json', import.meta.url), 'utf8'),
) as {
  betas: number[];
  vlb_weight: number;
  shape: [number, number, number, number];
  posterior_log_variance_clipped: number[];
  x0: number[];
  noise: number[];
  output: number[];
  cases: Array<{
    t: number;
    level: number;
    model_log_variance: number[];
    kl_bits: number[];
    nll_bits: number[];
    vb: number;
    mse: number;
    loss: number;
    grad_output: number[];
  }>;
};

const three = new NoiseSchedule({
  schedule: 'linear',
  n_timestep: 3,
  linear_start: 0.1,
  linear_end: 0.3,
});
const ops = new TfOps(TfParamStore.fromTorch([], new Map()));
const nhwc = (a: number[], shape: number[]) =>
  tf.transpose(
    tf.tensor4d(a, shape as [number, number, number, number]),
    [0, 2, 3, 1],
  ) as tf.Tensor4D;
const nchw = (t: tf.Tensor) => Array.from(tf.transpose(t, [0, 3, 1, 2]).dataSync());
const maxAbs = (a: ArrayLike<number>, b: ArrayLike<number>) =>
  Array.from(a).reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);

describe('learned_range maths, by hand', () => {
  it('normal_kl: 0 for equal Gaussians, 0.5 (m1 - m2)^2 for unit variances, the closed form', () => {
    const z = tf.tensor([0.3, -2]);
    const c = (v: number, like: tf.Tensor) => tf.fill(like.shape, v);
    expect(Array.from(normalKl(ops, z, c(0.7, z), z, c(0.7, z)).dataSync())).toEqual([0, 0]);
    const one = tf.tensor([0]);
    const kl = normalKl(ops, one, c(0, one), tf.tensor([1]), c(0, one)).dataSync()[0];
    expect(kl).toBeCloseTo(0.5, 7);
    // KL(N(0, 1) || N(0, e^2)) = 0.5 (-1 + 2 + e^-2)
    const kl2 = normalKl(ops, one, c(0, one), one, c(2, one)).dataSync()[0];
    expect(kl2).toBeCloseTo(0.5 * (1 + Math.exp(-2)), 6);
  });

  it('Phi(0) = 1/2, Phi(-x) = 1 - Phi(x), within 1e-3 of the true CDF at 1', () => {
    const p = approxStandardNormalCdf(ops, tf.tensor([0, 1, -1])).dataSync();
    expect(p[0]).toBe(0.5);
    expect(p[1] + p[2]).toBeCloseTo(1, 6);
    expect(Math.abs(p[1] - 0.841344746)).toBeLessThan(1e-3);
  });

  it('discretized decoder: a centred bin of a unit Gaussian ~ (2/255) / sqrt(2 pi); edge bins open', () => {
    const ll = discretizedGaussianLogLikelihood(
      ops,
      tf.tensor([0, -1, 1]),
      tf.tensor([0, -1, 1]),
      tf.tensor([0, 0, 0]),
    ).dataSync();
    expect(ll[0]).toBeCloseTo(Math.log(2 / 255 / Math.sqrt(2 * Math.PI)), 3);
    // x = -1: P(X < -1 + 1/255) under N(-1, 1) ~ Phi(1/255) ~ 1/2
    expect(ll[1]).toBeCloseTo(Math.log(0.5 + 1 / 255 / Math.sqrt(2 * Math.PI)), 3);
    expect(ll[2]).toBeCloseTo(ll[1], 6);
  });

  it('log variance range: [log v~_i, log beta_i] with v~_0 := v~_1 (3-step chain)', () => {
    const c = chainCoefficients(three.betas);
    // v~ = 0, 1/14, 21/124 (see parameterisation.test.ts)
    expect(learnedRange(c, 0).min).toBeCloseTo(Math.log(1 / 14), 12);
    expect(learnedRange(c, 0).max).toBeCloseTo(Math.log(0.1), 12);
    const r = learnedRange(c, 2);
    expect(r.mid).toBeCloseTo((Math.log(0.3) + Math.log(21 / 124)) / 2, 12);
    expect(r.half).toBeCloseTo((Math.log(0.3) - Math.log(21 / 124)) / 2, 12);
    expect(Array.from(c.posteriorLogVarianceClipped)).toEqual(
      fx.posterior_log_variance_clipped.map((v) => expect.closeTo(v, 12)),
    );
  });

  it('trainingLevels: the discrete sqrt(a_{t-1}) for learned_range, the draws otherwise', () => {
    const drawn = new Float32Array([0.99, 0.98]);
    expect(trainingLevels(three, 'fixedsmall', 2, drawn)).toBe(drawn);
    expect(Array.from(trainingLevels(three, 'learned_range', 2, drawn))).toEqual([
      Math.fround(Math.sqrt(0.72)),
      Math.fround(Math.sqrt(0.72)),
    ]);
  });
});

describe('learned_range hybrid loss against PyTorch (float64 reference)', () => {
  const [n, c, h, w] = fx.shape;
  for (const k of fx.cases) {
    it(`t = ${k.t}: model log variance, per-element bound term, vb, loss and d loss / d output`, () => {
      const out = tf.variable(nhwc(fx.output, [n, 2 * c, h, w]));
      // A stand-in denoiser whose output is the variable: the gradient is d loss / d output.
      const unet = { forward: () => out } as unknown as UNet;
      const d = new GaussianDiffusion(unet, three, {
        var_type: 'learned_range',
        vlb_weight: fx.vlb_weight,
      });
      const x0 = nhwc(fx.x0, fx.shape);
      const noise = nhwc(fx.noise, fx.shape);
      // continuous draws: replaced by the discrete level
      const draws = { levels: new Float32Array([0.5, 0.6]), noise, t: k.t };
      let vb = 0;
      const { value, grads } = tf.variableGrads(() => {
        const terms = d.pLossTerms(ops, x0, draws);
        vb = terms.vb!.dataSync()[0];
        return terms.loss;
      });
      expect(vb).toBeCloseTo(k.vb, 4);
      expect(Math.abs(value.dataSync()[0] - k.loss) / k.loss).toBeLessThan(1e-5);
      const g = nchw(grads[out.name]);
      // eps channels (L_simple) and v channels (lambda T vb only), each to its own scale
      const part = (a: number[], first: number) =>
        a.filter((_, j) => Math.floor(j / (h * w)) % (2 * c) >= c === first > 0);
      for (const first of [0, c]) {
        const want = part(k.grad_output, first);
        expect(want).toHaveLength(n * c * h * w);
        const err = maxAbs(part(g, first), want) / Math.max(...want.map(Math.abs));
        if (process.env.DBG) console.log(`t=${k.t} channels ${first}.. grad rel ${err}`);
        expect(err).toBeLessThan(1e-4);
      }
      if (process.env.DBG)
        console.log(
          `t=${k.t} vb err ${Math.abs(vb - k.vb)} loss rel ${Math.abs(value.dataSync()[0] - k.loss) / k.loss}`,
        );
      out.dispose();
    });
  }

  it('the per-element KL and decoder NLL (bits) at the reference model means and variances', async () => {
    for (const k of fx.cases) {
      const i = k.t - 1;
      const ref = i === 0 ? k.nll_bits : k.kl_bits;
      const x0 = tf.tensor(fx.x0);
      const caseFx = fx.cases[i] as unknown as { model_mean: number[]; true_mean: number[] };
      const coefs: Partial<Record<LossCoef, number>> = {
        lv1: fx.posterior_log_variance_clipped[i],
        wKl: i > 0 ? 1 : 0,
        wNll: i > 0 ? 0 : 1,
      };
      const nats = vbTerm(ops, {
        x0,
        trueMean: tf.tensor(caseFx.true_mean),
        modelMean: tf.tensor(caseFx.model_mean),
        modelLogVariance: tf.tensor(k.model_log_variance),
        coef: (name) => tf.fill(x0.shape, coefs[name]!),
      });
      const term = tf.div(nats, Math.LN2).dataSync();
      const scale = Math.max(...ref.map(Math.abs));
      expect(maxAbs(term, ref) / scale).toBeLessThan(1e-5);
    }
  });
});

describe('learned_range samplers', () => {
  /** f(x) = [k x, v] (v constant), so the variance is an end of the range everywhere. */
  const learned = (k: number, v: number) =>
    ({
      forward: (_ops: unknown, x: tf.Tensor) => tf.concat([tf.mul(x, k), tf.fill(x.shape, v)], 3),
    }) as unknown as UNet;
  const plain = (k: number) =>
    ({ forward: (_ops: unknown, x: tf.Tensor) => tf.mul(x, k) }) as unknown as UNet;
  const shape: [number, number, number, number] = [2, 2, 2, 3];
  const ten = new NoiseSchedule({
    schedule: 'linear',
    n_timestep: 10,
    linear_start: 0.05,
    linear_end: 0.3,
  });

  for (const steps of [10, 4])
    it(`v = -1 is fixedsmall and v = +1 is fixedlarge (beta) at every step but the first, ${steps} steps`, async () => {
      const run = (u: UNet, varType: 'fixedsmall' | 'fixedlarge' | 'learned_range') =>
        new GaussianDiffusion(u, ten, { var_type: varType })
          .run(ops, shape, new Rng(3), { steps, clip: false })
          .data();
      // i = 0 adds no noise, so log var_0 (where fixedsmall, fixedlarge and the range differ)
      // never enters the sample.
      const small = await run(plain(0.3), 'fixedsmall');
      const large = await run(plain(0.3), 'fixedlarge');
      const lo = await run(learned(0.3, -1), 'learned_range');
      const hi = await run(learned(0.3, 1), 'learned_range');
      expect(maxAbs(lo, small)).toBeLessThan(1e-5);
      expect(maxAbs(hi, large)).toBeLessThan(1e-5);
      expect(maxAbs(lo, hi)).toBeGreaterThan(1e-2);
    });

  it('DDIM reads only the mean output', async () => {
    const run = (u: UNet, varType: 'fixedsmall' | 'learned_range') =>
      new GaussianDiffusion(u, ten, { var_type: varType })
        .run(ops, shape, new Rng(3), { steps: 5, sampler: 'ddim', eta: 0.5 })
        .data();
    expect(Array.from(await run(learned(0.3, 0.7), 'learned_range'))).toEqual(
      Array.from(await run(plain(0.3), 'fixedsmall')),
    );
  });

  it('pSample: v = -1 adds exp(0.5 log v~_t) z, as fixedsmall', async () => {
    const x = tf.tensor(new Rng(1).normalArray(24), shape);
    const a = new GaussianDiffusion(learned(0.3, -1), ten, { var_type: 'learned_range' });
    const b = new GaussianDiffusion(plain(0.3), ten);
    const ya = await a.pSample(ops, x, 5, new Rng(2), false).data();
    const yb = await b.pSample(ops, x, 5, new Rng(2), false).data();
    expect(maxAbs(ya, yb)).toBeLessThan(1e-5);
  });
});
