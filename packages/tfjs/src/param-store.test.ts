import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import {
  Conv2d,
  initParam,
  Linear,
  orthogonalize,
  type ParamSpec,
  paramSeed,
  type TorchWeights,
} from '@dif-fusion/nn';
import { beforeAll, describe, expect, it } from 'vitest';
import { TfParamStore } from './param-store';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

const close = (a: ArrayLike<number>, b: ArrayLike<number>, tol = 1e-6) => {
  expect(a.length).toBe(b.length);
  for (let i = 0; i < a.length; i++) expect(Math.abs(a[i] - b[i])).toBeLessThan(tol);
};

describe('orthogonalize', () => {
  it('matches torch: Q of QR with positive diag(R) (hand-computed 2x2)', () => {
    // A = [[3,1],[4,2]]: q1 = (3,4)/5; a2 - (q1.a2) q1 = (1,2) - 2.2 (0.6,0.8) = (-0.32,0.24) -> /0.4
    // numpy: qr -> Q=[[-.6,-.8],[-.8,.6]], R diag (-5, .4); Q * sign(diag R) = [[.6,-.8],[.8,.6]]
    close(orthogonalize([3, 1, 4, 2], 2, 2), [0.6, -0.8, 0.8, 0.6], 1e-12);
  });

  it('transposes wide matrices like torch (rows < cols)', () => {
    close(orthogonalize([3, 4], 1, 2), [0.6, 0.8], 1e-12);
    // rows [3,4,0] and [1,2,2]: r1 = (0.6,0.8,0); r2 - 2.2 r1 = (-0.32,0.24,2) / sqrt(4.16)
    const s = Math.sqrt(0.32 ** 2 + 0.24 ** 2 + 4);
    close(
      orthogonalize([3, 4, 0, 1, 2, 2], 2, 3),
      [0.6, 0.8, 0, -0.32 / s, 0.24 / s, 2 / s],
      1e-12,
    );
  });

  it('gives orthonormal rows or columns for random conv-shaped weights', () => {
    for (const [rows, cols] of [
      [8, 27],
      [27, 8],
      [16, 16],
    ]) {
      const spec: ParamSpec = { name: 'w', shape: [rows, cols], init: { kind: 'orthogonal' } };
      const q = initParam(spec, 3);
      const n = Math.min(rows, cols);
      for (let a = 0; a < n; a++)
        for (let b = 0; b < n; b++) {
          let dot = 0;
          for (let k = 0; k < Math.max(rows, cols); k++)
            dot +=
              rows < cols ? q[a * cols + k] * q[b * cols + k] : q[k * cols + a] * q[k * cols + b];
          expect(Math.abs(dot - (a === b ? 1 : 0))).toBeLessThan(1e-5);
        }
    }
  });
});

describe('initParam', () => {
  it('is deterministic per (seed, name) and differs across seeds and names', () => {
    const spec: ParamSpec = {
      name: 'a.weight',
      shape: [4, 3],
      init: { kind: 'uniform', bound: 0.5 },
    };
    const a = initParam(spec, 1);
    expect(Array.from(initParam(spec, 1))).toEqual(Array.from(a));
    expect(Array.from(initParam(spec, 2))).not.toEqual(Array.from(a));
    expect(Array.from(initParam({ ...spec, name: 'b.weight' }, 1))).not.toEqual(Array.from(a));
    for (const v of a) expect(Math.abs(v)).toBeLessThanOrEqual(0.5);
    expect(paramSeed(1, 'x')).not.toBe(paramSeed(2, 'x'));
  });

  it('fills zeros and ones', () => {
    expect(Array.from(initParam({ name: 'z', shape: [3], init: { kind: 'zeros' } }, 0))).toEqual([
      0, 0, 0,
    ]);
    expect(Array.from(initParam({ name: 'o', shape: [2], init: { kind: 'ones' } }, 0))).toEqual([
      1, 1,
    ]);
  });

  it('orthogonal layer init zeroes biases', () => {
    const specs = new Conv2d('c', 2, 3, 3, { init: 'orthogonal' }).params();
    expect(specs[0].init).toEqual({ kind: 'orthogonal' });
    expect(specs[1].init).toEqual({ kind: 'zeros' });
    expect(new Linear('l', 4, 5).params()[0].init).toEqual({ kind: 'uniform', bound: 0.5 });
  });
});

describe('TfParamStore', () => {
  const specs: ParamSpec[] = [
    { name: 'conv.weight', shape: [2, 1, 1, 2], init: { kind: 'orthogonal' } },
    { name: 'conv.bias', shape: [2], init: { kind: 'zeros' } },
    { name: 'lin.weight', shape: [2, 3], init: { kind: 'uniform', bound: 1 } },
  ];
  const torch: TorchWeights = new Map([
    ['conv.weight', { shape: [2, 1, 1, 2], data: Float32Array.from([1, 2, 3, 4]) }],
    ['conv.bias', { shape: [2], data: Float32Array.from([5, 6]) }],
    ['lin.weight', { shape: [2, 3], data: Float32Array.from([1, 2, 3, 4, 5, 6]) }],
  ]);

  it('stores PyTorch weights in TfOps layout (hand-computed) and exports them back', () => {
    const store = TfParamStore.fromTorch(specs, torch);
    // conv [O=2,I=1,kh=1,kw=2] -> [kh,kw,I,O]: tf[0,kw,0,o] = torch[o,0,0,kw]
    expect(store.get('conv.weight').shape).toEqual([1, 2, 1, 2]);
    expect(Array.from(store.get('conv.weight').dataSync())).toEqual([1, 3, 2, 4]);
    // linear [out=2,in=3] -> [in,out]
    expect(store.get('lin.weight').shape).toEqual([3, 2]);
    expect(Array.from(store.get('lin.weight').dataSync())).toEqual([1, 4, 2, 5, 3, 6]);
    expect(Array.from(store.get('conv.bias').dataSync())).toEqual([5, 6]);
    const back = store.toTorch();
    for (const [k, v] of torch) {
      expect(back.get(k)!.shape).toEqual(v.shape);
      expect(Array.from(back.get(k)!.data)).toEqual(Array.from(v.data));
    }
    expect(store.variables().map((v) => v.shape)).toEqual([[1, 2, 1, 2], [2], [3, 2]]);
    expect(store.variables().every((v) => v.trainable)).toBe(true);
    expect(store.count()).toBe(4 + 2 + 6);
    store.dispose();
  });

  it('init is deterministic per seed; load overwrites; prefix and checks', () => {
    const a = TfParamStore.init(specs, 7);
    const b = TfParamStore.init(specs, 7);
    const c = TfParamStore.init(specs, 8);
    const wa = a.toTorch();
    expect(Array.from(b.toTorch().get('lin.weight')!.data)).toEqual(
      Array.from(wa.get('lin.weight')!.data),
    );
    expect(Array.from(c.toTorch().get('lin.weight')!.data)).not.toEqual(
      Array.from(wa.get('lin.weight')!.data),
    );
    // orthogonal [2, 2] rows (1x2 kernels, 1 input channel): rows orthonormal
    const w = wa.get('conv.weight')!.data;
    expect(w[0] * w[0] + w[1] * w[1]).toBeCloseTo(1, 5);
    expect(w[0] * w[2] + w[1] * w[3]).toBeCloseTo(0, 5);
    expect(Array.from(wa.get('conv.bias')!.data)).toEqual([0, 0]);

    const prefixed = new Map([...torch].map(([k, v]) => [`denoise_fn.${k}`, v]));
    prefixed.set('betas', { shape: [1], data: Float32Array.from([0]) });
    a.load(prefixed, { prefix: 'denoise_fn.' });
    expect(Array.from(a.get('conv.bias').dataSync())).toEqual([5, 6]);

    const extra = new Map(torch);
    extra.set('other.weight', { shape: [1], data: Float32Array.from([0]) });
    expect(() => a.load(extra)).toThrow(/unexpected key.*other\.weight/);
    a.load(extra, { strict: false });
    const missing = new Map(torch);
    missing.delete('conv.bias');
    expect(() => a.load(missing)).toThrow(/missing.*conv\.bias/);
    const wrong = new Map(torch);
    wrong.set('lin.weight', { shape: [3, 2], data: Float32Array.from([1, 2, 3, 4, 5, 6]) });
    expect(() => a.load(wrong)).toThrow(/lin\.weight: shape \[3, 2\].*expected \[2, 3\]/);
    for (const s of [a, b, c]) s.dispose();
  });
});
