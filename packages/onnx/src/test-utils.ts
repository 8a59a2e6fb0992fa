/**
 * Test helpers: run the same network code on TfOps (tfjs cpu backend) and OnnxOps (ORT CPU)
 * and compare. Not part of the package's public API.
 */
import type { Ops, TorchWeights } from '@dif-fusion/nn';
import { nchwToNhwc, nhwcToNchw, TfOps, torchToTf } from '@dif-fusion/tfjs';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';

import { randn } from '../../../test/shared';
import { type Dim, GraphBuilder, type Value } from './graph';
import { OnnxOps, type OnnxOpsOptions } from './onnx-ops';
import { openSession, runFloat } from './session';

export { randn, relErr } from '../../../test/shared';

export interface TestInput {
  name: string;
  /** Logical shape: images NCHW, vectors [N, F]. */
  shape: number[];
  data: Float32Array;
}

export function randomWeights(
  shapes: Record<string, number[]>,
  seed: number,
  scale = 0.2,
): TorchWeights {
  const w: TorchWeights = new Map();
  let s = seed;
  for (const [name, shape] of Object.entries(shapes))
    w.set(name, { shape, data: randn(shape, s++, scale) });
  return w;
}

/** Run `fn` on TfOps; image inputs (rank 4) are fed NHWC, the output returned NCHW. */
export async function runTf(
  fn: <T>(ops: Ops<T>, inputs: T[]) => T,
  inputs: TestInput[],
  weights: TorchWeights,
): Promise<{ data: Float32Array; shape: number[] }> {
  await tf.setBackend('cpu');
  const params = new Map<string, tf.Tensor>();
  for (const [k, v] of weights) params.set(k, torchToTf(tf.tensor(v.data, v.shape)));
  const ops = new TfOps({
    get: (name: string) => {
      const p = params.get(name);
      if (!p) throw new Error(`missing weight ${name}`);
      return p;
    },
  });
  const xs = inputs.map((i) => {
    const t = tf.tensor(i.data, i.shape);
    return i.shape.length === 4 ? nchwToNhwc(t) : t;
  });
  let y = fn(ops, xs);
  if (y.rank === 4) y = nhwcToNchw(y);
  const data = (await y.data()) as Float32Array;
  return { data: Float32Array.from(data), shape: y.shape.slice() };
}

/** Build `fn` with OnnxOps (inputs with dynamic dims where given) and run it on ORT CPU. */
export async function runOnnx(
  fn: <T>(ops: Ops<T>, inputs: T[]) => T,
  inputs: TestInput[],
  weights: TorchWeights,
  options: OnnxOpsOptions & { dynamic?: boolean; threads?: number; opset?: number } = {},
): Promise<{ data: Float32Array; shape: number[]; nodes: number }> {
  const g = new GraphBuilder('test', options.opset);
  const ops = new OnnxOps(g, weights, options);
  const vals: Value[] = inputs.map((i) =>
    g.input(
      i.name,
      i.shape.map(
        (d, k): Dim =>
          options.dynamic === false ? d : k === 1 && i.shape.length === 4 ? d : `${i.name}_d${k}`,
      ),
    ),
  );
  const y = fn(ops, vals);
  g.output(y, '__out');
  const { model } = g.serialize();
  const { session } = await openSession(model, { device: 'cpu', threads: options.threads ?? 1 });
  try {
    const feeds: Record<string, { data: Float32Array; dims: number[] }> = {};
    for (const i of inputs) feeds[i.name] = { data: i.data, dims: i.shape };
    const out = await runFloat(session, feeds);
    return { data: out.__out.data, shape: out.__out.dims, nodes: g.nodes.length };
  } finally {
    await session.release();
  }
}
