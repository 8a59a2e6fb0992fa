import type { Ops } from '@dif-fusion/nn';
import { describe, expect, it } from 'vitest';
import { randn, randomWeights, relErr, runOnnx, runTf, type TestInput } from './test-utils';

type Fn = <T>(ops: Ops<T>, xs: T[]) => T;

const img = (name: string, shape: number[], seed: number, scale = 1): TestInput => ({
  name,
  shape,
  data: randn(shape, seed, scale),
});

async function check(
  fn: Fn,
  inputs: TestInput[],
  shapes: Record<string, number[]> = {},
  tol = 1e-5,
  options: { groupNorm?: 'instancenorm' | 'reduce'; opset?: number } = {},
) {
  const weights = randomWeights(shapes, 1000);
  const a = await runTf(fn, inputs, weights);
  const b = await runOnnx(fn, inputs, weights, options);
  expect(b.shape).toEqual(a.shape);
  const err = relErr(b.data, a.data);
  expect(err).toBeLessThan(tol);
  return err;
}

const X = () => img('x', [2, 8, 6, 10], 1);

describe('OnnxOps matches TfOps (ORT CPU vs tfjs cpu, 1e-5 relative)', () => {
  it('conv2d 3x3 pad 1, with bias', async () => {
    await check(
      (ops, [x]) => ops.conv2d(x, ops.param('c.weight'), ops.param('c.bias'), { padding: 1 }),
      [X()],
      { 'c.weight': [5, 8, 3, 3], 'c.bias': [5] },
    );
  });
  it('conv2d 1x1 without bias', async () => {
    await check((ops, [x]) => ops.conv2d(x, ops.param('c.weight'), null), [X()], {
      'c.weight': [4, 8, 1, 1],
    });
  });
  it('conv2d 3x3 stride 2 pad 1 (SR3 Downsample)', async () => {
    await check(
      (ops, [x]) =>
        ops.conv2d(x, ops.param('c.weight'), ops.param('c.bias'), { stride: 2, padding: 1 }),
      [img('x', [1, 8, 16, 12], 2)],
      { 'c.weight': [8, 8, 3, 3], 'c.bias': [8] },
    );
  });
  it('linear (Gemm transB) with and without bias', async () => {
    const v = img('v', [3, 7], 3);
    await check((ops, [x]) => ops.linear(x, ops.param('l.weight'), ops.param('l.bias')), [v], {
      'l.weight': [5, 7],
      'l.bias': [5],
    });
    await check((ops, [x]) => ops.linear(x, ops.param('l.weight'), null), [v], {
      'l.weight': [5, 7],
    });
  });
  for (const mode of ['instancenorm', 'reduce'] as const) {
    it(`groupNorm (${mode})`, async () => {
      const x = img('x', [2, 16, 6, 10], 4, 3);
      for (let i = 0; i < x.data.length; i++) x.data[i] += 2; // non-zero mean
      await check(
        (ops, [t]) => ops.groupNorm(t, 4, ops.param('n.weight'), ops.param('n.bias')),
        [x],
        { 'n.weight': [16], 'n.bias': [16] },
        1e-5,
        { groupNorm: mode },
      );
    });
  }
  it('add, mul, max, scale, axpby', async () => {
    const ins = [X(), img('y', [2, 8, 6, 10], 5)];
    await check((ops, [a, b]) => ops.add(a, b), ins);
    await check((ops, [a, b]) => ops.mul(a, b), ins);
    await check((ops, [a, b]) => ops.max(a, b), ins);
    await check((ops, [a]) => ops.scale(a, -0.37), ins);
    await check((ops, [a, b]) => ops.axpby(0.9, a, Math.sqrt(1 - 0.81), b), ins);
  });
  it('activations: swish, relu, leakyRelu, sigmoid, tanh, dropout (inference)', async () => {
    const ins = [img('x', [2, 8, 6, 10], 6, 3)];
    await check((ops, [a]) => ops.swish(a), ins);
    await check((ops, [a]) => ops.relu(a), ins);
    await check((ops, [a]) => ops.leakyRelu(a, 0.2), ins);
    await check((ops, [a]) => ops.sigmoid(a), ins);
    await check((ops, [a]) => ops.tanh(a), ins);
    await check((ops, [a]) => ops.dropout(a, 0.2), ins);
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
  it('concatBatch and splitBatch (the time steps of one batched UNet pass), opset 17 and 18', async () => {
    for (const opset of [17, 18]) {
      await check(
        (ops, [a, b]) => ops.concatBatch([b, a, b]),
        [X(), img('y', [3, 8, 6, 10], 13)],
        {},
        1e-5,
        { opset },
      );
      await check(
        (ops, [a]) => {
          const [p, q, r] = ops.splitBatch(a, 3, 'part');
          return ops.concatBatch([r, ops.mul(p, q)]);
        },
        [img('x', [6, 8, 6, 10], 14)],
        {},
        1e-5,
        { opset },
      );
      await check(
        (ops, [v]) => ops.concatBatch(ops.splitBatch(v, 2).reverse()),
        [img('v', [4, 12], 15)],
        {},
        1e-5,
        { opset },
      );
    }
  });
  it('upsampleNearest2x and upsampleBilinear2x (align_corners)', async () => {
    await check((ops, [a]) => ops.upsampleNearest2x(a), [X()]);
    await check((ops, [a]) => ops.upsampleBilinear2x(a), [X()]);
    await check((ops, [a]) => ops.upsampleBilinear2x(a), [img('x', [1, 3, 1, 5], 12)]);
  });
  it('selfAttention (1 and 2 heads)', async () => {
    const qkv = img('qkv', [2, 24, 4, 6], 13);
    await check((ops, [a]) => ops.selfAttention(a, 1), [qkv]);
    await check((ops, [a]) => ops.selfAttention(a, 2), [qkv]);
  });
  it('positionalEncoding', async () => {
    const level = { name: 'level', shape: [3, 1], data: Float32Array.from([0.99, 0.5, 0.01]) };
    await check((ops, [l]) => ops.positionalEncoding(l, 32), [level]);
  });
  for (const opset of [18, 21])
    it(`opset ${opset}: reduce-based ops (axes as inputs), resize, attention`, async () => {
      const o = { opset };
      const x = img('x', [2, 16, 6, 10], 14, 2);
      await check(
        (ops, [t]) => ops.groupNorm(t, 4, ops.param('n.weight'), ops.param('n.bias')),
        [x],
        { 'n.weight': [16], 'n.bias': [16] },
        1e-5,
        { groupNorm: 'reduce', ...o },
      );
      await check((ops, [a]) => ops.meanSpatial(a), [X()], {}, 1e-5, o);
      await check((ops, [a]) => ops.upsampleBilinear2x(a), [X()], {}, 1e-5, o);
      await check((ops, [a]) => ops.upsampleNearest2x(a), [X()], {}, 1e-5, o);
      await check(
        (ops, [a]) => ops.selfAttention(a, 2),
        [img('qkv', [2, 24, 4, 6], 15)],
        {},
        1e-5,
        o,
      );
    });
});
