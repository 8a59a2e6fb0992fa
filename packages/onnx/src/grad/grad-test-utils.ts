/**
 * Test helpers for gradient graphs: the same function's gradients from TensorFlow.js
 * (tf.variableGrads on the cpu backend) and from a GradOps graph run by ONNX Runtime, for
 * the loss L = sum(fn(inputs) * R) with a fixed random R. Not part of the public API.
 */
import type { Ops, TorchWeights } from '@dif-fusion/nn';
import { nchwToNhwc, nhwcToNchw, TfOps, tfToTorch, torchToTf } from '@dif-fusion/tfjs';
import * as tf from '@tensorflow/tfjs-core';
import { expect } from 'vitest';
import '@tensorflow/tfjs-backend-cpu';
import { GraphBuilder, type Value } from '../graph';
import { openSession, runFloat } from '../session';
import { randn, randomWeights, relErr, type TestInput } from '../test-utils';
import { GradOps } from './grad-ops';

export type Fn = <T>(ops: Ops<T>, xs: T[]) => T;

export interface Grads {
  loss: number;
  /** Gradients by input name (NCHW / [N, F]) and by parameter name (PyTorch layout). */
  grads: Map<string, Float32Array>;
}

/** Gradients of sum(fn(inputs) * R) on tfjs (cpu backend). */
export async function tfGrads(
  fn: Fn,
  inputs: TestInput[],
  weights: TorchWeights,
  r: Float32Array,
  training = false,
): Promise<Grads> {
  await tf.setBackend('cpu');
  const vars = new Map<string, tf.Variable>();
  for (const [k, v] of weights)
    vars.set(`p:${k}`, tf.variable(torchToTf(tf.tensor(v.data, v.shape)), true, `p:${k}`));
  for (const i of inputs) {
    const t = tf.tensor(i.data, i.shape);
    vars.set(
      `x:${i.name}`,
      tf.variable(i.shape.length === 4 ? nchwToNhwc(t) : t, true, `x:${i.name}`),
    );
  }
  const ops = new TfOps({ get: (name) => vars.get(`p:${name}`)! }, { training });
  const { value, grads } = tf.variableGrads(() => {
    const xs = inputs.map((i) => vars.get(`x:${i.name}`)!);
    const y = fn(ops, xs);
    const rt = tf.tensor(
      r,
      y.rank === 4 ? [y.shape[0], y.shape[3] ?? 1, y.shape[1] ?? 1, y.shape[2] ?? 1] : y.shape,
    );
    return tf.sum(tf.mul(y, y.rank === 4 ? nchwToNhwc(rt) : rt)) as tf.Scalar;
  }, [...vars.values()]);
  const out = new Map<string, Float32Array>();
  for (const [key, v] of vars) {
    const g = grads[v.name];
    if (!g) continue;
    const name = key.slice(2);
    const t = key.startsWith('p:') ? tfToTorch(g) : g.rank === 4 ? nhwcToNchw(g) : g;
    out.set(name, Float32Array.from(t.dataSync()));
  }
  const loss = value.dataSync()[0];
  tf.dispose([value, ...Object.values(grads), ...vars.values()]);
  return { loss, grads: out };
}

export interface GradGraph {
  model: Uint8Array;
  /** Output shape of fn (NCHW). */
  outShape: number[];
  /** Gradient output names by input/param name. */
  gradOutputs: Map<string, string>;
}

/** Build the GradOps graph of sum(fn(inputs) * R): outputs `loss` and `grad.<name>`. */
export function buildGradGraph(fn: Fn, inputs: TestInput[], weights: TorchWeights): GradGraph {
  const g = new GraphBuilder('grad-test');
  const ops = new GradOps(g, (name) => {
    const w = weights.get(name);
    if (!w) throw new Error(`missing weight ${name}`);
    return w.shape;
  });
  const vals = inputs.map((i) => ops.input(i.name, i.shape, { grad: true }));
  const y = fn(ops, vals);
  const outShape = ops.shape(y);
  const r = ops.input('__r', outShape);
  const loss = ops.sumAll(ops.mul(y, r));
  const wrt: Array<[string, Value]> = [
    ...inputs.map((i, k) => [i.name, vals[k]] as [string, Value]),
    ...[...ops.paramInputs].map(([name, v]) => [name, v] as [string, Value]),
  ];
  const grads = ops.gradients(
    loss,
    wrt.map(([, v]) => v),
  );
  g.output(loss, 'loss', []);
  const gradOutputs = new Map<string, string>();
  for (const [name, v] of wrt) {
    const out = `grad.${name}`;
    g.output(grads.get(v)!, out);
    gradOutputs.set(name, out);
  }
  return { model: g.serialize().model, outShape, gradOutputs };
}

/** Run a gradient graph on ORT CPU; `perturb` adds `h * dir` to every input and param. */
export async function ortGrads(
  graph: GradGraph,
  inputs: TestInput[],
  weights: TorchWeights,
  r: Float32Array,
  evals: Array<{ h: number; dir: Map<string, Float32Array> } | null> = [null],
): Promise<Grads[]> {
  const { session } = await openSession(graph.model, { device: 'cpu', threads: 1 });
  try {
    const res: Grads[] = [];
    for (const e of evals) {
      const feeds: Record<string, { data: Float32Array; dims: number[] }> = {
        __r: { data: r, dims: graph.outShape },
      };
      const add = (name: string, data: Float32Array, dims: number[]) => {
        let d = data;
        if (e) {
          const u = e.dir.get(name)!;
          d = Float32Array.from(data, (v, i) => v + e.h * u[i]);
        }
        feeds[name] = { data: d, dims };
      };
      for (const i of inputs) add(i.name, i.data, i.shape);
      for (const [name, w] of weights)
        if (graph.gradOutputs.has(name)) add(name, Float32Array.from(w.data), w.shape);
      const out = await runFloat(session, feeds);
      const grads = new Map<string, Float32Array>();
      for (const [name, o] of graph.gradOutputs) grads.set(name, out[o].data);
      res.push({ loss: out.loss.data[0], grads });
    }
    return res;
  } finally {
    await session.release();
  }
}

/** A random unit-scale direction for every input and parameter of the graph. */
export function randomDirection(
  graph: GradGraph,
  inputs: TestInput[],
  weights: TorchWeights,
  seed: number,
): Map<string, Float32Array> {
  const dir = new Map<string, Float32Array>();
  let s = seed;
  for (const i of inputs) dir.set(i.name, randn(i.shape, s++));
  for (const [name, w] of weights)
    if (graph.gradOutputs.has(name)) dir.set(name, randn(w.shape, s++));
  return dir;
}

/** <grad, dir> summed over every input and parameter. */
export function directional(
  grads: Map<string, Float32Array>,
  dir: Map<string, Float32Array>,
): number {
  let s = 0;
  for (const [name, g] of grads) {
    const u = dir.get(name);
    if (!u) continue;
    for (let i = 0; i < g.length; i++) s += g[i] * u[i];
  }
  return s;
}

export const img = (name: string, shape: number[], seed: number, scale = 1): TestInput => ({
  name,
  shape,
  data: randn(shape, seed, scale),
});

/**
 * Every gradient of sum(fn(inputs, params) * R) from the GradOps graph on ORT equals the
 * tfjs gradient to `tol` (max abs error / max abs value, per tensor), and the directional
 * derivative along a random direction matches a central finite difference of the ORT
 * loss (float32 loss: 2e-3 relative).
 */
export async function check(
  fn: Fn,
  inputs: TestInput[],
  shapes: Record<string, number[]> = {},
  o: { tol?: number; h?: number; training?: boolean; fd?: boolean } = {},
) {
  const tol = o.tol ?? 1e-4;
  const weights = randomWeights(shapes, 1000);
  const graph = buildGradGraph(fn, inputs, weights);
  const r = randn(graph.outShape, 77);
  const ref = await tfGrads(fn, inputs, weights, r, o.training);
  // Ops with kinks (relu, max, abs) need a small step so that few elements cross them.
  const h = o.h ?? 1e-2;
  const dir = randomDirection(graph, inputs, weights, 500);
  const [got, plus, minus] = await ortGrads(graph, inputs, weights, r, [
    null,
    { h, dir },
    { h: -h, dir },
  ]);
  expect(Math.abs(got.loss - ref.loss)).toBeLessThan(1e-4 * Math.max(1, Math.abs(ref.loss)));
  for (const [name, g] of got.grads) {
    const want = ref.grads.get(name);
    expect(want, `tfjs gradient for ${name}`).toBeDefined();
    const err = relErr(g, want!);
    expect(err, `gradient of ${name}`).toBeLessThan(tol);
  }
  // A stop-gradient makes the loss differ from the function the gradient is of.
  if (o.fd === false) return;
  const fd = (plus.loss - minus.loss) / (2 * h);
  const an = directional(got.grads, dir);
  if (process.env.DBG) console.log('fd', fd, an, got.loss, plus.loss, minus.loss);
  expect(Math.abs(fd - an) / Math.max(1, Math.abs(an))).toBeLessThan(2e-3);
}
