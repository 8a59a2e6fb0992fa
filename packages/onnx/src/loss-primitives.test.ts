/**
 * The loss-maths primitives of `Ops` (sub, abs, square, sqrt, exp, log, addScalar, maxScalar,
 * compareScalar, mulSample, broadcastLike, sumAll, meanAll, sliceChannels, stopGradient,
 * constConv) against hand-computed values on every realisation: TfOps (tfjs cpu), OnnxOps
 * (ORT), GradOps (ORT) and FlopOps (shapes); and their gradients d sum(y) / dx, hand-computed,
 * on GradOps and on tfjs's autodiff of TfOps.
 */
import type { Ops } from '@dif-fusion/nn';
import { describe, expect, it } from 'vitest';
import { FlopOps } from './flops';
import { buildGradGraph, type Fn, ortGrads, tfGrads } from './grad/grad-test-utils';
import { runOnnx, runTf, type TestInput } from './test-utils';

interface Case {
  name: string;
  inputs: TestInput[];
  fn: Fn;
  /** fn's output, NCHW, flattened. */
  want: number[];
  wantShape: number[];
  /** d sum(y) / d input, by input name (absent: no check, e.g. constants). */
  grads: Record<string, number[]>;
}

const img = (name: string, data: number[], shape = [1, 1, 2, 2]): TestInput => ({
  name,
  shape,
  data: Float32Array.from(data),
});
const a = () => img('a', [1, -2, 0.5, 4]);
const pos = () => img('p', [1, Math.E, 0.5, 4]);
const none = (x: number[]) => x.map(() => 0);

const sobelX = Float32Array.from([-1, 0, 1, -2, 0, 2, -1, 0, 1]);

const CASES: Case[] = [
  {
    name: 'sub',
    inputs: [a(), img('b', [0.5, 0.5, 0.5, 0.5])],
    fn: <T>(o: Ops<T>, [x, y]: T[]) => o.sub(x, y),
    want: [0.5, -2.5, 0, 3.5],
    wantShape: [1, 1, 2, 2],
    grads: { a: [1, 1, 1, 1], b: [-1, -1, -1, -1] },
  },
  {
    name: 'abs (sign gradient)',
    inputs: [a()],
    fn: <T>(o: Ops<T>, [x]: T[]) => o.abs(x),
    want: [1, 2, 0.5, 4],
    wantShape: [1, 1, 2, 2],
    grads: { a: [1, -1, 1, 1] },
  },
  {
    name: 'square',
    inputs: [a()],
    fn: <T>(o: Ops<T>, [x]: T[]) => o.square(x),
    want: [1, 4, 0.25, 16],
    wantShape: [1, 1, 2, 2],
    grads: { a: [2, -4, 1, 8] },
  },
  {
    name: 'sqrt',
    inputs: [img('p', [1, 4, 0.25, 16])],
    fn: <T>(o: Ops<T>, [x]: T[]) => o.sqrt(x),
    want: [1, 2, 0.5, 4],
    wantShape: [1, 1, 2, 2],
    grads: { p: [0.5, 0.25, 1, 0.125] },
  },
  {
    name: 'exp',
    inputs: [img('a', [0, Math.LN2, -Math.LN2, 1])],
    fn: <T>(o: Ops<T>, [x]: T[]) => o.exp(x),
    want: [1, 2, 0.5, Math.E],
    wantShape: [1, 1, 2, 2],
    grads: { a: [1, 2, 0.5, Math.E] },
  },
  {
    name: 'log',
    inputs: [pos()],
    fn: <T>(o: Ops<T>, [x]: T[]) => o.log(x),
    want: [0, 1, -Math.LN2, 2 * Math.LN2],
    wantShape: [1, 1, 2, 2],
    grads: { p: [1, 1 / Math.E, 2, 0.25] },
  },
  {
    name: 'addScalar',
    inputs: [a()],
    fn: <T>(o: Ops<T>, [x]: T[]) => o.addScalar(x, 3),
    want: [4, 1, 3.5, 7],
    wantShape: [1, 1, 2, 2],
    grads: { a: [1, 1, 1, 1] },
  },
  {
    name: 'maxScalar (a tie sends the gradient to x)',
    inputs: [a()],
    fn: <T>(o: Ops<T>, [x]: T[]) => o.maxScalar(x, 0.5),
    want: [1, 0.5, 0.5, 4],
    wantShape: [1, 1, 2, 2],
    grads: { a: [1, 0, 1, 1] },
  },
  {
    name: 'compareScalar less / greater (no gradient)',
    inputs: [a()],
    fn: <T>(o: Ops<T>, [x]: T[]) =>
      o.add(o.compareScalar(x, 'less', 0.5), o.scale(o.compareScalar(x, 'greater', 0.5), 10)),
    want: [10, 1, 0, 10],
    wantShape: [1, 1, 2, 2],
    grads: { a: none([0, 0, 0, 0]) },
  },
  {
    name: 'mulSample: [N,C,H,W] * [N,1]',
    inputs: [
      img('x', [1, 2, 3, 4], [2, 1, 1, 2]),
      { name: 's', shape: [2, 1], data: Float32Array.from([10, -1]) },
    ],
    fn: <T>(o: Ops<T>, [x, s]: T[]) => o.mulSample(x, s),
    want: [10, 20, -3, -4],
    wantShape: [2, 1, 1, 2],
    grads: { x: [10, 10, -1, -1], s: [3, 7] },
  },
  {
    name: 'broadcastLike: [1] to [1,1,2,2]',
    inputs: [{ name: 's', shape: [1], data: Float32Array.from([3]) }, a()],
    fn: <T>(o: Ops<T>, [s, x]: T[]) => o.broadcastLike(s, x),
    want: [3, 3, 3, 3],
    wantShape: [1, 1, 2, 2],
    grads: { s: [4] },
  },
  {
    name: 'sumAll',
    inputs: [a()],
    fn: <T>(o: Ops<T>, [x]: T[]) => o.sumAll(x),
    want: [3.5],
    wantShape: [],
    grads: { a: [1, 1, 1, 1] },
  },
  {
    name: 'meanAll',
    inputs: [a()],
    fn: <T>(o: Ops<T>, [x]: T[]) => o.meanAll(x),
    want: [0.875],
    wantShape: [],
    grads: { a: [0.25, 0.25, 0.25, 0.25] },
  },
  {
    name: 'sliceChannels 1..3 of 3',
    inputs: [img('x', [1, 2, 3, 4, 5, 6], [1, 3, 1, 2])],
    fn: <T>(o: Ops<T>, [x]: T[]) => o.sliceChannels(x, 1, 3),
    want: [3, 4, 5, 6],
    wantShape: [1, 2, 1, 2],
    grads: { x: [0, 0, 1, 1, 1, 1] },
  },
  {
    name: 'stopGradient: x * stop(x) has gradient x, not 2x',
    inputs: [a()],
    fn: <T>(o: Ops<T>, [x]: T[]) => o.mul(x, o.stopGradient(x)),
    want: [1, 4, 0.25, 16],
    wantShape: [1, 1, 2, 2],
    grads: { a: [1, -2, 0.5, 4] },
  },
  {
    // y[i][j] = sum_ab k[a][b] x[i+a-1][j+b-1]; centre: (3 - 1) + 2 (6 - 4) + (10 - 7) = 9.
    // d sum(y) / dx[i][j] = the sum of the kernel taps that land inside: columns -1+-2+-1, 0, 1+2+1
    // minus the row cut at the edges.
    name: 'constConv: Sobel x, padding 1',
    inputs: [img('x', [1, 2, 3, 4, 5, 6, 7, 8, 10], [1, 1, 3, 3])],
    fn: <T>(o: Ops<T>, [x]: T[]) => o.constConv(x, sobelX, [1, 1, 3, 3], { padding: 1 }),
    want: [9, 6, -9, 20, 9, -20, 21, 8, -21],
    wantShape: [1, 1, 3, 3],
    grads: { x: [-3, 0, 3, -4, 0, 4, -3, 0, 3] },
  },
  {
    // two channels, one 3x3 kernel each (groups 2): channel 0 Sobel x, channel 1 x -> 2x.
    name: 'constConv: depthwise (groups = channels)',
    inputs: [img('x', [1, 2, 3, 4, 5, 6, 7, 8, 10, 1, 1, 1, 1, 2, 1, 1, 1, 1], [1, 2, 3, 3])],
    fn: <T>(o: Ops<T>, [x]: T[]) =>
      o.constConv(x, Float32Array.from([...sobelX, 0, 0, 0, 0, 2, 0, 0, 0, 0]), [2, 1, 3, 3], {
        groups: 2,
        padding: 1,
      }),
    want: [9, 6, -9, 20, 9, -20, 21, 8, -21, 2, 2, 2, 2, 4, 2, 2, 2, 2],
    wantShape: [1, 2, 3, 3],
    grads: { x: [-3, 0, 3, -4, 0, 4, -3, 0, 3, 2, 2, 2, 2, 2, 2, 2, 2, 2] },
  },
  {
    // [O=2, I=2, 1, 1]: y0 = x0 + 2 x1, y1 = -x0; d sum(y) / dx = [1 - 1, 2] per pixel
    name: 'constConv: 1x1 dense (colour transforms)',
    inputs: [img('x', [3, 5, 4, -1], [1, 2, 1, 2])],
    fn: <T>(o: Ops<T>, [x]: T[]) => o.constConv(x, Float32Array.from([1, 2, -1, 0]), [2, 2, 1, 1]),
    want: [11, 3, -3, -5],
    wantShape: [1, 2, 1, 2],
    grads: { x: [0, 0, 2, 2] },
  },
];

const close = (got: ArrayLike<number>, want: number[], what: string) => {
  expect(got.length, what).toBe(want.length);
  for (let i = 0; i < want.length; i++)
    expect(Math.abs(got[i] - want[i]), `${what}[${i}]: ${got[i]} vs ${want[i]}`).toBeLessThan(
      1e-6 * Math.max(1, Math.abs(want[i])),
    );
};

describe('loss primitives of Ops: hand-computed values on every realisation', () => {
  for (const c of CASES)
    it(c.name, async () => {
      const tfOut = await runTf(c.fn, c.inputs, new Map());
      expect(tfOut.shape).toEqual(c.wantShape);
      close(tfOut.data, c.want, 'TfOps');
      const onnxOut = await runOnnx(c.fn, c.inputs, new Map(), { dynamic: false });
      expect(onnxOut.shape).toEqual(c.wantShape);
      close(onnxOut.data, c.want, 'OnnxOps');
      const flops = new FlopOps(new Map());
      expect(
        c.fn(
          flops,
          c.inputs.map((i) => i.shape),
        ),
      ).toEqual(c.wantShape);

      // gradients of sum(y): GradOps on ORT and tfjs's autodiff of TfOps
      const ones = new Float32Array(Math.max(1, c.want.length)).fill(1);
      const graph = buildGradGraph(c.fn, c.inputs, new Map());
      expect(graph.outShape).toEqual(c.wantShape);
      const [ort] = await ortGrads(graph, c.inputs, new Map(), ones);
      const sum = c.want.reduce((p, q) => p + q, 0);
      expect(Math.abs(ort.loss - sum)).toBeLessThan(1e-5 * Math.max(1, Math.abs(sum)));
      const tfg = await tfGrads(c.fn, c.inputs, new Map(), ones);
      for (const [name, want] of Object.entries(c.grads)) {
        close(ort.grads.get(name)!, want, `GradOps d/d${name}`);
        const t = tfg.grads.get(name);
        // tfjs returns no gradient for an input the loss does not depend on
        close(t ?? new Float32Array(want.length), want, `TfOps d/d${name}`);
      }
    });
});
