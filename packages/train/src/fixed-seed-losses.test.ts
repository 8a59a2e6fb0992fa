/**
 * Fixed-seed training losses of tiny configs on every training backend (tfjs cpu, tfjs wasm,
 * ONNX Runtime graphs), recorded before the maths moved onto `Ops` (issue 25): whatever
 * realises q_sample, p_losses, the learned-variance bound and the fusion loss, these numbers
 * stay (1e-6 relative). `RECORD=1 npx vitest run src/train/fixed-seed-losses.test.ts` prints
 * the table anew.
 */
import { chainCoefficients, lossCoefs, type MeanType, needsLossCoefs } from '@dif-fusion/diffusion';
import { GaussianDiffusion } from '@dif-fusion/diffusion/tfjs';
import { FusionHead, fusionTargetBatch, type LossSpace } from '@dif-fusion/fusion-head';
import { fusionLoss } from '@dif-fusion/fusion-head/tfjs';
import { TrainSession } from '@dif-fusion/onnx/train';
import { NoiseSchedule } from '@dif-fusion/schedules';
import { TfOps, TfParamStore, useBackend } from '@dif-fusion/tfjs';
import { UNet } from '@dif-fusion/unet';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, describe, expect, it } from 'vitest';
import { randn } from '../../../test/shared';
import { buildDdpmTrainGraph } from './ddpm-graph';
import { buildHeadTrainGraph } from './head-graph';

type Backend = 'cpu' | 'wasm' | 'ort';

/** Recorded at 8cdbfa0 (before the maths moved onto Ops). */
const RECORDED: Record<string, Record<Backend, number>> = {
  'ddpm l2 epsilon': { cpu: 1.1693834066390991, wasm: 1.1693835258483887, ort: 1.1693832874298096 },
  'ddpm l1 x_prev t=4': {
    cpu: 0.6004481315612793,
    wasm: 0.6004482507705688,
    ort: 0.6004481315612793,
  },
  'ddpm learned_range l2 t=1': {
    cpu: 1.204246163368225,
    wasm: 1.204245686531067,
    ort: 1.2042455673217773,
  },
  'ddpm learned_range l2 t=1 vb': {
    cpu: 3.4990837574005127,
    wasm: 3.49908447265625,
    ort: 3.4990062713623047,
  },
  'ddpm learned_range l1 x_start t=6': {
    cpu: 0.5982052087783813,
    wasm: 0.5982053875923157,
    ort: 0.5982052087783813,
  },
  'ddpm learned_range l1 x_start t=6 vb': {
    cpu: 0.4389936029911041,
    wasm: 0.43899375200271606,
    ort: 0.43899357318878174,
  },
  'head rgb max': { cpu: 3.4439077377319336, wasm: 3.443908452987671, ort: 3.4439077377319336 },
  'head rgb max loss_in': {
    cpu: 0.42892196774482727,
    wasm: 0.4289216995239258,
    ort: 0.42892202734947205,
  },
  'head rgb max loss_grad': {
    cpu: 3.0149857997894287,
    wasm: 3.014986753463745,
    ort: 3.0149857997894287,
  },
  'head luma max colour 0.5': {
    cpu: 3.244093656539917,
    wasm: 3.2440924644470215,
    ort: 3.244093656539917,
  },
  'head luma max colour 0.5 loss_in': {
    cpu: 0.36381977796554565,
    wasm: 0.3638197183609009,
    ort: 0.36381977796554565,
  },
  'head luma max colour 0.5 loss_grad': {
    cpu: 2.752307891845703,
    wasm: 2.7523069381713867,
    ort: 2.752307891845703,
  },
  'head luma salient': {
    cpu: 2.7653238773345947,
    wasm: 2.7653234004974365,
    ort: 2.7653238773345947,
  },
  'head luma salient loss_in': {
    cpu: 0.36340218782424927,
    wasm: 0.36340218782424927,
    ort: 0.36340218782424927,
  },
  'head luma salient loss_grad': {
    cpu: 2.4019217491149902,
    wasm: 2.401921272277832,
    ort: 2.4019217491149902,
  },
};

const got: Record<string, Partial<Record<Backend, number>>> = {};
function check(key: string, backend: Backend, value: number) {
  got[key] = { ...got[key], [backend]: value };
  if (process.env.RECORD) return;
  const want = RECORDED[key]?.[backend];
  expect(want, `${key} ${backend}: no recorded value`).toBeDefined();
  expect(Math.abs(value - want!) / Math.abs(want!), `${key} ${backend}`).toBeLessThanOrEqual(1e-6);
}
afterAll(() => {
  if (process.env.RECORD) console.log(JSON.stringify(got, null, 2));
});

const schedule = new NoiseSchedule({
  schedule: 'linear',
  n_timestep: 10,
  linear_start: 1e-3,
  linear_end: 0.2,
});
const B = 2;
const S = 8;
const unetFor = (outChannel: number) =>
  new UNet({
    in_channel: 4,
    out_channel: outChannel,
    inner_channel: 4,
    norm_groups: 2,
    channel_multiplier: [1, 2],
    attn_res: [4],
    res_blocks: 1,
    dropout: 0,
    image_size: S,
  });

interface DdpmCase {
  key: string;
  loss: 'l1' | 'l2';
  meanType: MeanType;
  learned: boolean;
  t: number;
}
const DDPM_CASES: DdpmCase[] = [
  { key: 'ddpm l2 epsilon', loss: 'l2', meanType: 'epsilon', learned: false, t: 5 },
  { key: 'ddpm l1 x_prev t=4', loss: 'l1', meanType: 'x_prev', learned: false, t: 4 },
  { key: 'ddpm learned_range l2 t=1', loss: 'l2', meanType: 'epsilon', learned: true, t: 1 },
  {
    key: 'ddpm learned_range l1 x_start t=6',
    loss: 'l1',
    meanType: 'x_start',
    learned: true,
    t: 6,
  },
];

function ddpmData(c: DdpmCase) {
  const shape = [B, 4, S, S];
  const x = Float32Array.from(randn(shape, 1, 0.8), (v) => Math.max(-1, Math.min(1, v)));
  const noise = randn(shape, 2);
  const levels = c.learned
    ? Float32Array.from([1, 1], () => schedule.sqrtAlphasCumprodPrev[c.t])
    : Float32Array.from([0.93, 0.41]);
  const unet = unetFor(c.learned ? 8 : 4);
  return { shape, x, noise, levels, unet, store: TfParamStore.init(unet.params(), 7) };
}

async function ddpmTfjs(c: DdpmCase, backend: 'cpu' | 'wasm') {
  await useBackend(backend);
  const d = ddpmData(c);
  const diffusion = new GaussianDiffusion(d.unet, schedule, {
    loss: c.loss,
    mean_type: c.meanType,
    var_type: c.learned ? 'learned_range' : 'fixedsmall',
  });
  const nhwc = (a: Float32Array) => tf.transpose(tf.tensor(a, d.shape), [0, 2, 3, 1]);
  const terms = tf.tidy(() => {
    const r = diffusion.pLossTerms(new TfOps(d.store), nhwc(d.x), {
      levels: d.levels,
      noise: nhwc(d.noise),
      t: c.t,
    });
    return [r.loss.dataSync()[0], r.vb?.dataSync()[0]];
  });
  d.store.dispose();
  return terms;
}

async function ddpmOrt(c: DdpmCase) {
  const d = ddpmData(c);
  const graph = buildDdpmTrainGraph(d.unet, {
    batch: B,
    size: S,
    loss: c.loss,
    dropout: false,
    meanType: c.meanType,
    ...(c.learned ? { learnedRange: { vbWeight: 0.001 * schedule.numTimesteps } } : {}),
  });
  const feeds: Record<string, Float32Array> = { x: d.x, noise: d.noise, level: d.levels };
  if (needsLossCoefs(c.meanType, c.learned))
    feeds.coefs = lossCoefs(chainCoefficients(schedule.betas), c.meanType, c.t);
  const weights = d.store.toTorch();
  d.store.dispose();
  const session = await TrainSession.open(graph, { threads: 1 });
  const r = await session.run(new Map([...weights].map(([k, v]) => [k, v.data])), feeds);
  await session.release();
  return [r.scalars.loss, r.scalars.vb];
}

interface HeadCase {
  key: string;
  space: LossSpace;
  colorWeight: number;
  target: 'max' | 'salient';
}
const HEAD_CASES: HeadCase[] = [
  { key: 'head rgb max', space: 'rgb', colorWeight: 0, target: 'max' },
  { key: 'head luma max colour 0.5', space: 'luma', colorWeight: 0.5, target: 'max' },
  { key: 'head luma salient', space: 'luma', colorWeight: 0, target: 'salient' },
];

function headData() {
  const unet = unetFor(4);
  const head = new FusionHead(
    { feat_scales: [1, 3], time_steps: [5, 50], mode: 'full' },
    unet.config,
  );
  const k = 2;
  const n = B;
  const vis = randn([n, 3, S, S], 1, 0.5);
  const ir = randn([n, 1, S, S], 2, 0.5);
  const noise = randn([k, n, 4, S, S], 3);
  const levels = [0.99, 0.8];
  const level = Float32Array.from({ length: k * n }, (_, i) => levels[Math.floor(i / n)]);
  return {
    unet,
    head,
    k,
    vis,
    ir,
    noise,
    levels,
    level,
    unetStore: TfParamStore.init(unet.params(), 11),
    headStore: TfParamStore.init(head.params(), 12),
  };
}

async function headTfjs(c: HeadCase, backend: 'cpu' | 'wasm') {
  await useBackend(backend);
  const d = headData();
  const n = B;
  const nhwc = (a: Float32Array, shape: number[]) =>
    tf.transpose(tf.tensor(a, shape), [0, 2, 3, 1]);
  const out = tf.tidy(() => {
    const v = nhwc(d.vis, [n, 3, S, S]);
    const i4 = nhwc(d.ir, [n, 1, S, S]);
    const unetOps = new TfOps(d.unetStore);
    const feats = d.levels.map((l, t) => {
      const per = n * 4 * S * S;
      const nz = nhwc(d.noise.subarray(t * per, (t + 1) * per), [n, 4, S, S]);
      const xt = tf.add(tf.mul(tf.concat([v, i4], 3), l), tf.mul(nz, Math.sqrt(1 - l * l)));
      return d.unet.features(unetOps, xt, tf.fill([n, 1], l)).fd;
    });
    const fused = d.head.forward(new TfOps(d.headStore, { training: true }), feats, {
      vis: v,
      ir: i4,
    });
    const r = fusionLoss(v, i4, fused, {
      layout: 'NHWC',
      colorWeight: c.colorWeight,
      space: c.space,
      target: c.target,
      targetOptions: { context_sigma: 3 },
    });
    return [r.loss, r.lossIn, r.lossGrad].map((x) => x.dataSync()[0]);
  });
  d.unetStore.dispose();
  d.headStore.dispose();
  return out;
}

async function headOrt(c: HeadCase) {
  const d = headData();
  const n = B;
  const graph = buildHeadTrainGraph(d.head, {
    unet: d.unet,
    unetWeights: d.unetStore.toTorch(),
    batch: n,
    size: S,
    colorWeight: c.colorWeight,
    space: c.space,
    target: c.target === 'max' ? 'max' : 'input',
  });
  const feeds: Record<string, Float32Array> = {};
  if (c.target !== 'max') {
    const t = fusionTargetBatch(c.target, d.vis, d.ir, n, S, S, { context_sigma: 3 });
    feeds.target = t.intensity;
    feeds.target_grad = t.gradient;
  }
  const params = new Map([...d.headStore.toTorch()].map(([nm, w]) => [nm, w.data]));
  d.unetStore.dispose();
  d.headStore.dispose();
  const session = await TrainSession.open(graph, { threads: 1 });
  const r = await session.run(params, {
    vis: d.vis,
    ir: d.ir,
    noise: d.noise,
    level: d.level,
    ...feeds,
  });
  await session.release();
  return [r.scalars.loss, r.scalars.loss_in, r.scalars.loss_grad];
}

describe('fixed-seed training losses stay (1e-6 relative) on tfjs cpu, tfjs wasm and ORT', () => {
  for (const c of DDPM_CASES)
    it(c.key, async () => {
      for (const backend of ['cpu', 'wasm'] as const) {
        const [loss, vb] = await ddpmTfjs(c, backend);
        check(c.key, backend, loss!);
        if (c.learned) check(`${c.key} vb`, backend, vb!);
      }
      const [loss, vb] = await ddpmOrt(c);
      check(c.key, 'ort', loss);
      if (c.learned) check(`${c.key} vb`, 'ort', vb);
    });
  for (const c of HEAD_CASES)
    it(c.key, async () => {
      const names = ['', ' loss_in', ' loss_grad'];
      for (const backend of ['cpu', 'wasm'] as const) {
        const r = await headTfjs(c, backend);
        for (const [j, nm] of names.entries()) check(`${c.key}${nm}`, backend, r[j]);
      }
      const r = await headOrt(c);
      for (const [j, nm] of names.entries()) check(`${c.key}${nm}`, 'ort', r[j]);
    });
});
