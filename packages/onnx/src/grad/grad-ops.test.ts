import type { Ops } from '@dif-fusion/nn';
import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import type { Value } from '../graph';
import { randn, randomWeights, type TestInput } from '../test-utils';
import type { GradOps } from './grad-ops';
import {
  buildGradGraph,
  check,
  directional,
  type Fn,
  img,
  ortGrads,
  randomDirection,
} from './grad-test-utils';

/** tfjs's stop-gradient (the diffusion package's, written here to keep the test standalone). */
const stopGradient = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => ({
  value: tf.clone(args[0] as tf.Tensor),
  gradFunc: (dy: tf.Tensor) => tf.zerosLike(dy),
})) as (x: tf.Tensor) => tf.Tensor;

/** Finite differences only (where tfjs's own gradient is wrong). */
async function checkFd(fn: Fn, inputs: TestInput[], shapes: Record<string, number[]> = {}) {
  const weights = randomWeights(shapes, 1000);
  const graph = buildGradGraph(fn, inputs, weights);
  const r = randn(graph.outShape, 77);
  const h = 1e-2;
  const dir = randomDirection(graph, inputs, weights, 500);
  const [got, plus, minus] = await ortGrads(graph, inputs, weights, r, [
    null,
    { h, dir },
    { h: -h, dir },
  ]);
  const fd = (plus.loss - minus.loss) / (2 * h);
  const an = directional(got.grads, dir);
  expect(Math.abs(fd - an) / Math.max(1, Math.abs(an))).toBeLessThan(2e-3);
}

const X = () => img('x', [2, 8, 6, 10], 1);

describe('GradOps gradients equal tfjs gradients (1e-4 relative) and finite differences', () => {
  it('conv2d 3x3 pad 1 with bias, 1x1 without bias', async () => {
    await check(
      (ops, [x]) => ops.conv2d(x, ops.param('c.weight'), ops.param('c.bias'), { padding: 1 }),
      [X()],
      { 'c.weight': [5, 8, 3, 3], 'c.bias': [5] },
    );
    await check((ops, [x]) => ops.conv2d(x, ops.param('c.weight'), null), [X()], {
      'c.weight': [4, 8, 1, 1],
    });
  });
  it('conv2d 3x3 stride 2 pad 1 (Downsample), even and odd sizes; batch 1', async () => {
    const f: Fn = (ops, [x]) =>
      ops.conv2d(x, ops.param('c.weight'), ops.param('c.bias'), { stride: 2, padding: 1 });
    const s = { 'c.weight': [6, 8, 3, 3], 'c.bias': [6] };
    await check(f, [img('x', [2, 8, 16, 12], 2)], s);
    await check(f, [img('x', [1, 8, 7, 9], 3)], s);
  });
  it('linear with and without bias', async () => {
    const v = img('v', [3, 7], 3);
    await check((ops, [x]) => ops.linear(x, ops.param('l.weight'), ops.param('l.bias')), [v], {
      'l.weight': [5, 7],
      'l.bias': [5],
    });
    await check((ops, [x]) => ops.linear(x, ops.param('l.weight'), null), [v], {
      'l.weight': [5, 7],
    });
  });
  it('groupNorm', async () => {
    const x = img('x', [2, 16, 6, 10], 4, 3);
    for (let i = 0; i < x.data.length; i++) x.data[i] += 2;
    await check(
      (ops, [t]) => ops.groupNorm(t, 4, ops.param('n.weight'), ops.param('n.bias')),
      [x],
      { 'n.weight': [16], 'n.bias': [16] },
    );
  });
  it('add, mul, max, scale, axpby', async () => {
    const ins = [X(), img('y', [2, 8, 6, 10], 5)];
    await check((ops, [a, b]) => ops.add(a, b), ins);
    await check((ops, [a, b]) => ops.mul(a, b), ins);
    await check((ops, [a, b]) => ops.max(a, b), ins, {}, { h: 1e-4 });
    await check((ops, [a]) => ops.scale(a, -0.37), ins.slice(0, 1));
    await check((ops, [a, b]) => ops.axpby(0.9, a, Math.sqrt(1 - 0.81), b), ins);
  });
  it('swish, relu, leakyRelu, sigmoid, tanh', async () => {
    const ins = [img('x', [2, 8, 6, 10], 6, 3)];
    await check((ops, [a]) => ops.swish(a), ins);
    await check((ops, [a]) => ops.relu(a), ins, {}, { h: 1e-3 });
    await check((ops, [a]) => ops.leakyRelu(a, 0.2), ins, {}, { h: 1e-3 });
    await check((ops, [a]) => ops.sigmoid(a), ins);
    await check((ops, [a]) => ops.tanh(a), ins);
  });
  it('addChannel, mulChannel, mulSpatial', async () => {
    const v = img('v', [2, 8], 7);
    const s = img('s', [2, 1, 6, 10], 8);
    await check((ops, [a, b]) => ops.addChannel(a, b), [X(), v]);
    await check((ops, [a, b]) => ops.mulChannel(a, b), [X(), v]);
    await check((ops, [a, b]) => ops.mulSpatial(a, b), [X(), s]);
  });
  it('sliceFeatures, concatChannels, meanSpatial', async () => {
    await check((ops, [v]) => ops.sliceFeatures(v, 3, 9), [img('v', [2, 12], 9)]);
    await check(
      (ops, [a, b, c]) => ops.concatChannels([a, b, c]),
      [X(), img('y', [2, 3, 6, 10], 10), img('z', [2, 1, 6, 10], 11)],
    );
    await check((ops, [a]) => ops.meanSpatial(a), [X()]);
  });
  it('concatBatch and splitBatch', async () => {
    await check(
      (ops, [a, b]) => {
        const [p, q] = ops.splitBatch(a, 2);
        return ops.concatBatch([ops.mul(q, b), p, b]);
      },
      [img('x', [4, 8, 6, 10], 1), img('y', [2, 8, 6, 10], 2)],
    );
  });
  it('upsampleNearest2x and upsampleBilinear2x (align_corners)', async () => {
    await check((ops, [a]) => ops.upsampleNearest2x(a), [X()]);
    // tfjs's resizeBilinear gradient swaps H and W for non-square images (tfjs-core 4.22:
    // "gradient of input 'images' has shape 2,10,6,8"), so tfjs is compared on squares;
    // the finite-difference check covers the others.
    await check((ops, [a]) => ops.upsampleBilinear2x(a), [img('x', [2, 8, 6, 6], 12)]);
    await checkFd((ops, [a]) => ops.upsampleBilinear2x(a), [X()]);
    await checkFd((ops, [a]) => ops.upsampleBilinear2x(a), [img('x', [1, 3, 1, 5], 12)]);
  });
  it('batchNorm2d in training mode (batch statistics) and avgPool2x2', async () => {
    const x = img('x', [3, 8, 6, 10], 15, 2);
    for (let i = 0; i < x.data.length; i++) x.data[i] += 1;
    await check(
      (ops, [t]) =>
        ops.batchNorm2d(t, ops.param('n.weight'), ops.param('n.bias'), null, { site: 'n' }),
      [x],
      { 'n.weight': [8], 'n.bias': [8] },
      { training: true },
    );
    await check((ops, [a]) => ops.avgPool2x2(a), [X()]);
  });
  it('selfAttention (1 and 2 heads)', async () => {
    const qkv = img('qkv', [2, 24, 4, 6], 13);
    await check((ops, [a]) => ops.selfAttention(a, 1), [qkv]);
    await check((ops, [a]) => ops.selfAttention(a, 2), [qkv]);
  });
  it('exp, log, sliceChannels, stopGradient (the learned_range loss maths)', async () => {
    // Not on the Ops interface: GradOps's own methods, tfjs's functions on the tfjs side.
    const on = <T>(ops: Ops<T>, g: (o: GradOps) => Value, t: () => tf.Tensor): T =>
      (ops.kind === 'onnx' ? g(ops as unknown as GradOps) : t()) as T;
    const ins = [img('x', [2, 8, 6, 10], 15, 0.7)];
    await check(
      (ops, [a]) =>
        on(
          ops,
          (o) => o.exp(a as Value),
          () => tf.exp(a as tf.Tensor),
        ),
      ins,
    );
    const pos = img('x', [2, 8, 6, 10], 16);
    for (let i = 0; i < pos.data.length; i++) pos.data[i] = 0.5 + Math.abs(pos.data[i]);
    await check(
      (ops, [a]) =>
        on(
          ops,
          (o) => o.log(a as Value),
          () => tf.log(a as tf.Tensor),
        ),
      [pos],
      {},
      { h: 1e-3 },
    );
    // NHWC on tfjs: channels are the last axis
    await check(
      (ops, [a]) =>
        on(
          ops,
          (o) => o.sliceChannels(a as Value, 3, 7),
          () => tf.slice(a as tf.Tensor, [0, 0, 0, 3], [-1, -1, -1, 4]),
        ),
      [X()],
    );
    // y = x * stop(x): dy/dx = stop(x) (the detached factor gets no gradient)
    await check(
      (ops, [a]) =>
        on(
          ops,
          (o) => o.mul(a as Value, o.stopGradient(a as Value)),
          () => tf.mul(a as tf.Tensor, stopGradient(a as tf.Tensor)),
        ),
      [X()],
      {},
      { h: 1e-3, fd: false },
    );
  });
  it('positionalEncoding (gradient w.r.t. the level)', async () => {
    const level = { name: 'level', shape: [3, 1], data: Float32Array.from([0.99, 0.5, 0.01]) };
    await check((ops, [l]) => ops.positionalEncoding(l, 32), [level]);
  });
});
