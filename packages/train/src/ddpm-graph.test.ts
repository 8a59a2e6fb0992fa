import { chainCoefficients, lossCoefs, type MeanType } from '@dif-fusion/diffusion';
import { GaussianDiffusion } from '@dif-fusion/diffusion/tfjs';
import type { TorchWeights } from '@dif-fusion/nn';
import { NoiseSchedule, Rng } from '@dif-fusion/schedules';
import { TfOps, TfParamStore, tfToTorch } from '@dif-fusion/tfjs';
import { UNet, type UNetConfig } from '@dif-fusion/unet';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { TrainSession } from '@dif-fusion/onnx/train';
import { describe, expect, it } from 'vitest';
import { randn, relErr } from '../../../test/shared';
import { buildDdpmTrainGraph } from './ddpm-graph';

/** TfOps whose dropout multiplies by given masks, in call order (as the trainer's TrainOps). */
class MaskOps extends TfOps {
  private k = 0;
  constructor(
    store: TfParamStore,
    private readonly masks: Array<{ data: Float32Array; shape: number[] }>,
  ) {
    super(store, { training: true });
  }
  override dropout(x: tf.Tensor, rate: number): tf.Tensor {
    if (!(rate > 0)) return x;
    const m = this.masks[this.k++];
    return tf.mul(x, tf.transpose(tf.tensor(m.data, m.shape), [0, 2, 3, 1]));
  }
}

const tiny = (dropout: number, options: Partial<UNetConfig> = {}) =>
  new UNet({
    in_channel: 4,
    out_channel: 4,
    inner_channel: 8,
    norm_groups: 4,
    channel_multiplier: [1, 2, 2],
    attn_res: [8],
    res_blocks: 1,
    dropout,
    image_size: 16,
    ...options,
  });

async function compare(unet: UNet, loss: 'l1' | 'l2', dropout: boolean, checkpoint = false) {
  await tf.setBackend('cpu');
  const b = 2;
  const s = 16;
  const shape = [b, 4, s, s];
  const x = randn(shape, 1, 0.5);
  const noise = randn(shape, 2);
  const level = Float32Array.from([0.93, 0.41]);
  const store = TfParamStore.init(unet.params(), 7);
  const weights: TorchWeights = store.toTorch();

  const graph = buildDdpmTrainGraph(unet, { batch: b, size: s, loss, dropout, checkpoint });
  const rng = new Rng(3);
  const masks = graph.dropout.map((d) => {
    const n = d.shape.reduce((p, q) => p * q, 1);
    const data = new Float32Array(n);
    for (let i = 0; i < n; i++) data[i] = rng.uniform() < d.rate ? 0 : 1 / (1 - d.rate);
    return { data, shape: d.shape, input: d.input };
  });

  // tfjs: the trainer's loss (sum / (B*C*H*W)) through tf.variableGrads
  const ops = new MaskOps(store, masks);
  const vars = store.names().map((n) => store.get(n) as tf.Variable);
  const { value, grads } = tf.variableGrads(() => {
    const xt = tf.transpose(tf.tensor(x, shape), [0, 2, 3, 1]);
    const nz = tf.transpose(tf.tensor(noise, shape), [0, 2, 3, 1]);
    const lv = tf.tensor2d(level, [b, 1]);
    const l4 = tf.reshape(lv, [b, 1, 1, 1]);
    const xn = tf.add(tf.mul(l4, xt), tf.mul(tf.sqrt(tf.sub(1, tf.square(l4))), nz));
    const d = tf.sub(nz, unet.forward(ops, xn, lv));
    const per = loss === 'l1' ? tf.abs(d) : tf.square(d);
    return tf.div(tf.sum(per), b * 4 * s * s) as tf.Scalar;
  }, vars);

  const session = await TrainSession.open(graph, { threads: 1 });
  const feeds: Record<string, Float32Array> = { x, noise, level };
  for (const m of masks) feeds[m.input] = m.data;
  const params = new Map([...weights].map(([k, v]) => [k, v.data]));
  const got = await session.run(params, feeds);
  await session.release();

  expect(Math.abs(got.scalars.loss - value.dataSync()[0]) / value.dataSync()[0]).toBeLessThan(1e-5);
  expect(graph.params.length).toBe(store.names().length);
  let worst = 0;
  for (const [i, name] of store.names().entries()) {
    const want = tfToTorch(grads[vars[i].name]).dataSync();
    const err = relErr(got.grads.get(name)!, want);
    worst = Math.max(worst, err);
    expect(err, name).toBeLessThan(1e-4);
  }
  tf.dispose([value, ...Object.values(grads)]);
  store.dispose();
  return worst;
}

describe('DDPM training graph: loss and every UNet gradient equal tfjs (1e-4 relative)', () => {
  it('l2, attention, dropout off', async () => {
    await compare(tiny(0), 'l2', false);
  });
  it('l1, attention, dropout masks as inputs (the same masks on tfjs)', async () => {
    await compare(tiny(0.2), 'l1', true);
  });
  it('use_affine_level: (1 + gamma) x + beta in every ResnetBlock', async () => {
    await compare(tiny(0, { use_affine_level: true }), 'l2', false);
  });
  it('gradient checkpointing: recomputed blocks (same dropout masks) give the same gradients', async () => {
    await compare(tiny(0.2), 'l1', true, true);
  });
  it('use_scale_shift_norm and num_heads 2, dropout masks', async () => {
    await compare(tiny(0.2, { use_scale_shift_norm: true, num_heads: 2 }), 'l2', true);
  });
});

describe('buildDdpmTrainGraph options of the DDPM variants', () => {
  it('x_prev reads the loss coefficients, condition is a [B, Cc, H, W] input; none by default', () => {
    const cond = new UNet({ ...tiny(0).config, out_channel: 3 });
    const g = buildDdpmTrainGraph(cond, {
      ...{ batch: 2, size: 16, loss: 'l2', dropout: false },
      ...{ meanType: 'x_prev', condition: 1 },
    });
    expect(g.inputs.get('x')).toEqual([2, 3, 16, 16]);
    expect(g.inputs.get('noise')).toEqual([2, 3, 16, 16]);
    expect(g.inputs.get('coefs')).toEqual([1, 9]);
    expect(g.inputs.get('condition')).toEqual([2, 1, 16, 16]);
    const x0 = buildDdpmTrainGraph(tiny(0), {
      ...{ batch: 2, size: 16, loss: 'l2', dropout: false, meanType: 'x_start' },
    });
    expect([...x0.inputs.keys()]).toEqual(['x', 'noise', 'level']);
    const plain = buildDdpmTrainGraph(tiny(0), { batch: 2, size: 16, loss: 'l2', dropout: false });
    expect([...plain.inputs.keys()]).toEqual(['x', 'noise', 'level']);
  });
});

/**
 * learned_range: the hybrid loss L_simple + lambda T vb, its vb and every gradient of the
 * ORT graph equal @dif-fusion/diffusion's tfjs pLossTerms (the discrete level of t).
 */
async function compareLearned(
  t: number,
  meanType: MeanType,
  loss: 'l1' | 'l2',
  checkpoint = false,
) {
  await tf.setBackend('cpu');
  const unet = tiny(0.2, { out_channel: 8 });
  const schedule = new NoiseSchedule({
    schedule: 'linear',
    n_timestep: 10,
    linear_start: 1e-3,
    linear_end: 0.2,
  });
  const b = 2;
  const s = 16;
  const shape = [b, 4, s, s];
  // data in [-1, 1] with entries at exactly -1 and 1 (the decoder's open edge bins)
  const x = Float32Array.from(randn(shape, 1, 0.8), (v) => Math.max(-1, Math.min(1, v)));
  const noise = randn(shape, 2);
  const level = schedule.sqrtAlphasCumprodPrev[t];
  const levels = Float32Array.from([level, level]);
  const store = TfParamStore.init(unet.params(), 7);
  const weights: TorchWeights = store.toTorch();
  const vbWeight = 0.001 * schedule.numTimesteps;
  const graph = buildDdpmTrainGraph(unet, {
    ...{ batch: b, size: s, loss, dropout: true, meanType, checkpoint },
    learnedRange: { vbWeight },
  });
  const rng = new Rng(3);
  const masks = graph.dropout.map((d) => {
    const n = d.shape.reduce((p, q) => p * q, 1);
    const data = new Float32Array(n);
    for (let i = 0; i < n; i++) data[i] = rng.uniform() < d.rate ? 0 : 1 / (1 - d.rate);
    return { data, shape: d.shape, input: d.input };
  });
  const diffusion = new GaussianDiffusion(unet, schedule, {
    loss,
    mean_type: meanType,
    var_type: 'learned_range',
  });
  const ops = new MaskOps(store, masks);
  const vars = store.names().map((n) => store.get(n) as tf.Variable);
  const nhwc = (a: Float32Array) => tf.transpose(tf.tensor(a, shape), [0, 2, 3, 1]);
  let vb = 0;
  const { value, grads } = tf.variableGrads(() => {
    const x0 = nhwc(x);
    const terms = diffusion.pLossTerms(ops, x0, { levels, noise: nhwc(noise), t });
    vb = terms.vb!.dataSync()[0];
    return terms.loss;
  }, vars);
  const session = await TrainSession.open(graph, { threads: 1 });
  const feeds: Record<string, Float32Array> = {
    x,
    noise,
    level: levels,
    coefs: lossCoefs(chainCoefficients(schedule.betas), meanType, t),
  };
  for (const m of masks) feeds[m.input] = m.data;
  const got = await session.run(new Map([...weights].map(([k, v]) => [k, v.data])), feeds);
  await session.release();
  expect(Math.abs(got.scalars.vb - vb) / vb).toBeLessThan(1e-5);
  const want = value.dataSync()[0];
  expect(Math.abs(got.scalars.loss - want) / want).toBeLessThan(1e-5);
  let worst = 0;
  let vOut = 0;
  for (const [i, name] of store.names().entries()) {
    const want = tfToTorch(grads[vars[i].name]).dataSync();
    const err = relErr(got.grads.get(name)!, want);
    worst = Math.max(worst, err);
    expect(err, name).toBeLessThan(1e-4);
    if (name.startsWith('final_conv.block.3.')) {
      // the v outputs (second half of the rows) learn from lambda T vb only: their own scale
      const half = want.length / 2;
      vOut = relErr(got.grads.get(name)!.subarray(half), want.subarray(half));
      // t = 1: the decoder's bin mass Phi(u+) - Phi(u-) is a float32 difference of numbers a
      // few ulps from 0 or 1 where tanh saturates (an untrained UNet's means sit in the
      // tails), and ORT's and tfjs's tanh differ in the last bit there: 1e-3.
      expect(vOut, `${name} (v rows)`).toBeLessThan(t === 1 ? 1e-3 : 1e-4);
      expect(Math.max(...Array.from(want.subarray(half), Math.abs))).toBeGreaterThan(0);
      if (process.env.DBG) console.log(`t=${t} ${name} v rows: ${vOut}`);
    }
  }
  tf.dispose([value, ...Object.values(grads)]);
  store.dispose();
  return { vb, worst, vOut };
}

describe('learned_range training graph: hybrid loss, vb and every gradient equal tfjs (1e-4)', () => {
  it('t = 1 (the discretized decoder NLL), epsilon, l2, dropout masks', async () => {
    const r = await compareLearned(1, 'epsilon', 'l2');
    if (process.env.DBG) console.log('t=1', r);
  });
  it('t = 6 (the KL to the posterior), epsilon, l2, gradient checkpointing', async () => {
    const r = await compareLearned(6, 'epsilon', 'l2', true);
    if (process.env.DBG) console.log('t=6', r);
  });
  it('t = 4, x_start (a target input), l1', async () => {
    const r = await compareLearned(4, 'x_start', 'l1');
    if (process.env.DBG) console.log('t=4', r);
  });
  it('lossCoefs: one-hot branch weights, the range of the chain', () => {
    const c = chainCoefficients(
      new NoiseSchedule({ schedule: 'linear', n_timestep: 3, linear_start: 0.1, linear_end: 0.3 })
        .betas,
    );
    const k1 = lossCoefs(c, 'x_prev', 1);
    // [c1, c2, p, q, mid, half, lv1, wKl, wNll]: x_prev's model mean is the output (p 0, q 1)
    expect(Array.from(k1.subarray(2, 4))).toEqual([0, 1]);
    expect(Array.from(k1.subarray(7))).toEqual([0, 1]);
    expect(k1[4]).toBeCloseTo((Math.log(0.1) + Math.log(1 / 14)) / 2, 6);
    expect(Array.from(lossCoefs(c, 'epsilon', 3).subarray(7))).toEqual([1, 0]);
  });
});
