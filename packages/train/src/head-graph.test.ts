import { FusionHead, fusionTargetBatch } from '@dif-fusion/fusion-head';
import { fusionLoss } from '@dif-fusion/fusion-head/tfjs';
import { TfOps, TfParamStore, tfToTorch } from '@dif-fusion/tfjs';
import { UNet } from '@dif-fusion/unet';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { TrainSession } from '@dif-fusion/onnx/train';
import { describe, expect, it } from 'vitest';
import { randn, relErr } from '../../../test/shared';
import {
  buildHeadCachedTrainGraph,
  buildHeadFeaturesGraph,
  buildHeadTrainGraph,
  headFeatureName,
} from './head-graph';

const nhwc = (data: Float32Array, shape: number[]) =>
  tf.transpose(tf.tensor(data, shape), [0, 2, 3, 1]);

async function compare(
  mode: 'full' | 'reference',
  colorWeight: number,
  variant: { output?: 'rgb' | 'luma' | 'weight'; source_skip?: boolean } = {},
  space: 'rgb' | 'luma' = 'rgb',
  /** `max-input`: the official target computed by fusionTargetBatch and fed as inputs. */
  target: 'max' | 'salient' | 'max-input' = 'max',
) {
  await tf.setBackend('cpu');
  const n = 2;
  const s = 16;
  const unet = new UNet({
    in_channel: 4,
    out_channel: 4,
    inner_channel: 4,
    norm_groups: 2,
    channel_multiplier: [1, 2],
    attn_res: [],
    res_blocks: 2,
    dropout: 0,
    image_size: s,
  });
  const head = new FusionHead(
    { feat_scales: [2, 5], time_steps: [5, 50], mode, ...variant },
    unet.config,
  );
  const k = 2;
  const unetStore = TfParamStore.init(unet.params(), 11);
  const headStore = TfParamStore.init(head.params(), 12);
  const vis = randn([n, 3, s, s], 1, 0.5);
  const ir = randn([n, 1, s, s], 2, 0.5);
  const noise = randn([k, n, 4, s, s], 3);
  const levels = [0.99, 0.8];
  const level = Float32Array.from({ length: k * n }, (_, i) => levels[Math.floor(i / n)]);

  // tfjs: features of the frozen UNet, the head, fusionLoss, gradients of the used params
  const unetOps = new TfOps(unetStore);
  const headOps = new TfOps(headStore, { training: true });
  const names = head.usedParams().map((p) => p.name);
  const vars = names.map((nm) => headStore.get(nm));
  const v = nhwc(vis, [n, 3, s, s]);
  const i4 = nhwc(ir, [n, 1, s, s]);
  const feats = levels.map((l, t) => {
    const nz = nhwc(noise.subarray(t * n * 4 * s * s, (t + 1) * n * 4 * s * s), [n, 4, s, s]);
    const xt = tf.add(tf.mul(tf.concat([v, i4], 3), l), tf.mul(nz, Math.sqrt(1 - l * l)));
    return unet.features(unetOps, xt, tf.fill([n, 1], l)).fd;
  });
  let parts: tf.Scalar[] = [];
  const { value, grads } = tf.variableGrads(() => {
    const fused = head.forward(headOps, feats, { vis: v, ir: i4 });
    const r = fusionLoss(v, i4, fused, {
      layout: 'NHWC',
      colorWeight,
      space,
      target: target === 'salient' ? 'salient' : 'max',
      targetOptions: { context_sigma: 3 },
    });
    parts = [tf.keep(r.lossIn), tf.keep(r.lossGrad)];
    return r.loss;
  }, vars);

  const graph = buildHeadTrainGraph(head, {
    unet,
    unetWeights: unetStore.toTorch(),
    batch: n,
    size: s,
    colorWeight,
    space,
    target: target === 'max' ? 'max' : 'input',
  });
  const feeds: Record<string, Float32Array> = {};
  if (target !== 'max') {
    const t = fusionTargetBatch(target === 'salient' ? 'salient' : 'max', vis, ir, n, s, s, {
      context_sigma: 3,
    });
    feeds.target = t.intensity;
    feeds.target_grad = t.gradient;
  }
  const session = await TrainSession.open(graph, { threads: 1 });
  const params = new Map([...headStore.toTorch()].map(([nm, w]) => [nm, w.data]));
  const got = await session.run(params, { vis, ir, noise, level, ...feeds });
  await session.release();

  const rel = (a: number, b: number) => Math.abs(a - b) / Math.abs(b);
  expect(rel(got.scalars.loss, value.dataSync()[0])).toBeLessThan(1e-5);
  expect(rel(got.scalars.loss_in, parts[0].dataSync()[0])).toBeLessThan(1e-5);
  expect(rel(got.scalars.loss_grad, parts[1].dataSync()[0])).toBeLessThan(1e-5);
  expect(graph.params.map((p) => p.name)).toEqual(names);
  for (const [j, nm] of names.entries()) {
    const want = tfToTorch(grads[vars[j].name]).dataSync();
    expect(relErr(got.grads.get(nm)!, want), nm).toBeLessThan(1e-4);
  }
  unetStore.dispose();
  headStore.dispose();
}

describe('head training graph: frozen-UNet features, head and fusion loss equal tfjs (1e-4 relative)', () => {
  it('full mode', async () => {
    await compare('full', 0);
  });
  it('reference mode', async () => {
    await compare('reference', 0);
  });
  it('full mode with the colour term', async () => {
    await compare('full', 1);
  });
  it('variants: luma output, per-pixel weight, source skip', async () => {
    await compare('full', 1, { output: 'luma' });
    await compare('full', 0, { output: 'weight' });
    await compare('reference', 0, { source_skip: true });
    await compare('full', 0, { output: 'luma', source_skip: true });
  });
  it('loss on luma (train.loss.space luma), rgb and luma outputs', async () => {
    await compare('full', 0, { output: 'luma', source_skip: true }, 'luma');
    await compare('full', 0.5, {}, 'luma');
  });
});

describe('head training graph: fusion targets fed as inputs (fusion-head fusionTargetBatch)', () => {
  it('the official max target fed as inputs equals the built-in one (tfjs, 1e-5)', async () => {
    await compare('full', 0, { output: 'luma', source_skip: true }, 'luma', 'max-input');
  });
  it('the salient target: ORT (NCHW inputs) equals tfjs fusionLoss (NHWC, computed inside)', async () => {
    await compare('full', 0, { output: 'luma', source_skip: true }, 'luma', 'salient');
  });
});

describe('feature cache graphs: features graph + head graph on its outputs = the full graph', () => {
  it('the same loss terms, gradients and fused image, bit for bit (one thread)', async () => {
    const n = 2;
    const s = 16;
    const unet = new UNet({
      in_channel: 4,
      out_channel: 4,
      inner_channel: 4,
      norm_groups: 2,
      channel_multiplier: [1, 2],
      attn_res: [8],
      res_blocks: 1,
      dropout: 0,
      image_size: s,
    });
    const head = new FusionHead({ feat_scales: [1, 3], time_steps: [5, 50, 200] }, unet.config);
    const k = 3;
    const unetStore = TfParamStore.init(unet.params(), 21);
    const headStore = TfParamStore.init(head.params(), 22);
    const unetWeights = unetStore.toTorch();
    const vis = randn([n, 3, s, s], 4, 0.5);
    const ir = randn([n, 1, s, s], 5, 0.5);
    const noise = randn([k, n, 4, s, s], 6);
    const level = Float32Array.from(
      { length: k * n },
      (_, i) => [0.99, 0.9, 0.5][Math.floor(i / n)],
    );
    const params = new Map([...headStore.toTorch()].map(([nm, w]) => [nm, w.data]));
    const loss = { batch: n, size: s, colorWeight: 0.5 };

    const full = await TrainSession.open(
      buildHeadTrainGraph(head, { ...loss, unet, unetWeights }),
      {
        threads: 1,
      },
    );
    const want = await full.run(params, { vis, ir, noise, level });
    await full.release();

    const fg = buildHeadFeaturesGraph(head, { unet, unetWeights, batch: n, size: s });
    expect(fg.params).toEqual([]);
    // one output per time step and decoder feature the head reads, [N, C, S/f, S/f]
    expect([...fg.tensors]).toEqual(
      [0, 1, 2].flatMap((t) =>
        head
          .requiredFeatureIndices()
          .map((i) => [
            headFeatureName(t, i),
            [n, unet.decoderChannels()[i], s / unet.decoderScale(i), s / unet.decoderScale(i)],
          ]),
      ),
    );
    const features = await TrainSession.open(fg, { threads: 1 });
    const f = await features.run(new Map(), { vis, ir, noise, level });
    await features.release();

    const hg = buildHeadCachedTrainGraph(head, { ...loss, unet });
    expect(hg.params).toEqual(buildHeadTrainGraph(head, { ...loss, unet, unetWeights }).params);
    const cached = await TrainSession.open(hg, { threads: 1 });
    const got = await cached.run(params, { vis, ir, ...Object.fromEntries(f.tensors) });
    await cached.release();

    expect(got.scalars).toEqual(want.scalars);
    expect(Number.isFinite(got.scalars.loss)).toBe(true);
    expect([...got.grads.keys()]).toEqual([...want.grads.keys()]);
    for (const [nm, g] of want.grads) expect(got.grads.get(nm), nm).toEqual(g);
    expect(got.tensors.get('fused')).toEqual(want.tensors.get('fused'));
    unetStore.dispose();
    headStore.dispose();
  });
});
