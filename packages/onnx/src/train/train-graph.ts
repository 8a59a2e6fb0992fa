/**
 * A training graph (forward + reverse-mode gradient nodes, written by running a network's
 * forward code on `GradOps`) and the steps every such graph ends with. The networks' own
 * graphs (the DDPM's, the fusion head's) are built in @dif-fusion/train.
 */
import type { DropoutMaskSpec, GradOps } from '../grad/grad-ops';
import type { GraphBuilder, Value } from '../graph';

export interface TrainGraph {
  /** Serialised ONNX model. */
  model: Uint8Array;
  /** Trainable parameters (official names), in the order of their gradient outputs. */
  params: Array<{ name: string; shape: number[] }>;
  /** Dropout sites in call order. */
  dropout: DropoutMaskSpec[];
  /** Non-parameter inputs: name -> shape. */
  inputs: Map<string, number[]>;
  /** Scalar outputs besides the gradients (e.g. loss terms). */
  scalars: string[];
  /** Tensor outputs besides the gradients (e.g. the fused image): name -> shape. */
  tensors: Map<string, number[]>;
  /**
   * Training-mode BatchNorm sites (skip_unet): their batch mean and biased variance are the
   * tensor outputs `bn_mean.<site>` and `bn_var.<site>` ([C]), over `count` values each.
   */
  batchStats?: Array<{ site: string; count: number }>;
}

/** Shapes of a module's parameters by name (throws for unknown names). */
export function paramShapes(
  specs: Array<{ name: string; shape: number[] }>,
): (name: string) => number[] {
  const m = new Map(specs.map((p) => [p.name, p.shape]));
  return (name) => {
    const s = m.get(name);
    if (!s) throw new Error(`training graph: unknown parameter ${name}`);
    return s;
  };
}

/** Mark outputs: the scalars, then `grad.<name>` for every parameter the pass read. */
export function finishTrainGraph(
  g: GraphBuilder,
  ops: GradOps,
  loss: Value,
  scalars: Record<string, Value>,
  inputs: Map<string, number[]>,
  tensors: Record<string, Value> = {},
): TrainGraph {
  const params = [...ops.paramInputs].filter(([, v]) => ops.requiresGrad(v));
  const grads = ops.gradients(
    loss,
    params.map(([, v]) => v),
  );
  g.output(loss, 'loss', []);
  for (const [name, v] of Object.entries(scalars)) g.output(v, name, []);
  for (const [name, v] of Object.entries(tensors)) g.output(v, name, ops.shape(v));
  for (const [name, v] of params) g.output(grads.get(v)!, `grad.${name}`, ops.shape(v));
  for (const m of ops.dropoutMasks) inputs.set(m.input, m.shape);
  return {
    model: g.serialize({ producerName: 'dif-fusion-train' }).model,
    params: params.map(([name, v]) => ({ name, shape: ops.shape(v) })),
    dropout: ops.dropoutMasks,
    inputs,
    scalars: ['loss', ...Object.keys(scalars)],
    tensors: new Map(Object.entries(tensors).map(([name, v]) => [name, ops.shape(v)])),
  };
}
