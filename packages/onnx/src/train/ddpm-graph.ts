/**
 * The DDPM training graph (SR3 p_losses, Saharia et al. eq. 6 with the continuous noise
 * level of WaveGrad): for a batch x0, levels gamma and noise eps,
 *
 *   x_t  = gamma * x0 + sqrt(1 - gamma^2) * eps
 *   loss = sum |eps - eps_theta(x_t, gamma)|^p / (B*C*H*W),   p = 1 (l1) or 2 (l2)
 *
 * with every parameter's gradient, written by running the UNet's one definition on
 * `GradOps`. Inputs: `x`, `noise` [B,C,H,W], `level` [B,1], the dropout masks
 * (`dropout_mask_<k>`, in call order) and the parameters by official name; outputs
 * `loss` and `grad.<name>`. Options add inputs: `target` [B,C,H,W] replaces eps in the loss
 * (mean types x_start / x_prev: the caller computes it with @dif-fusion/diffusion's
 * `trainingTarget`), `condition` [B,Cc,H,W] is concatenated before x_t (SR3's conditional
 * mode: the UNet's in_channel is Cc + C).
 */
import type { DenoiserNet } from '@dif-fusion/unet';
import { type DropoutMaskSpec, GradOps } from '../grad/grad-ops';
import { GraphBuilder, type Value } from '../graph';

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

export interface DdpmGraphOptions {
  batch: number;
  /** Crop size (square). */
  size: number;
  loss: 'l1' | 'l2';
  /** Dropout masks as inputs (training); false: dropout off. Default true. */
  dropout?: boolean;
  /** A `target` input instead of eps in the loss (mean types x_start, x_prev). */
  target?: boolean;
  /** Channels of a `condition` input concatenated before x_t (conditional mode); 0: none. */
  condition?: number;
  /**
   * Gradient checkpointing: every ResnetBlocWithAttn's activations are recomputed in the
   * backward pass instead of kept (see GradOps `checkpoint`). Default false.
   */
  checkpoint?: boolean;
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

/** Build the DDPM training graph of `unet`. */
export function buildDdpmTrainGraph(unet: DenoiserNet, o: DdpmGraphOptions): TrainGraph {
  const g = new GraphBuilder('ddpm_train');
  const buffers = new Set(
    unet
      .params()
      .filter((p) => p.buffer)
      .map((p) => p.name),
  );
  const ops = new GradOps(g, paramShapes(unet.params()), {
    training: o.dropout ?? true,
    checkpoint: o.checkpoint ?? false,
    trainable: (name) => !buffers.has(name),
  });
  const cc = o.condition ?? 0;
  const c = unet.config.in_channel - cc;
  const shape = [o.batch, c, o.size, o.size];
  const inputs = new Map<string, number[]>([
    ['x', shape],
    ['noise', shape],
    ['level', [o.batch, 1]],
  ]);
  const condShape = [o.batch, cc, o.size, o.size];
  if (o.target) inputs.set('target', shape);
  if (cc > 0) inputs.set('condition', condShape);
  const x = ops.input('x', shape);
  const noise = ops.input('noise', shape);
  const level = ops.input('level', [o.batch, 1]);
  // x_t = gamma x0 + sqrt(1 - gamma^2) eps (no gradient flows into the inputs)
  const g4 = ops.constant('Reshape', [level, g.constI64([o.batch, 1, 1, 1])], [o.batch, 1, 1, 1]);
  const sigma = ops.constant(
    'Sqrt',
    [
      ops.constant(
        'Sub',
        [g.constF32([1], []), ops.constant('Mul', [g4, g4], [o.batch, 1, 1, 1])],
        [o.batch, 1, 1, 1],
      ),
    ],
    [o.batch, 1, 1, 1],
  );
  const xt = ops.constant(
    'Add',
    [ops.constant('Mul', [g4, x], shape), ops.constant('Mul', [sigma, noise], shape)],
    shape,
  );
  const input = cc > 0 ? ops.concatChannels([ops.input('condition', condShape), xt]) : xt;
  const eps = unet.forward(ops, input, level);
  const d = ops.sub(o.target ? ops.input('target', shape) : noise, eps);
  const per = o.loss === 'l1' ? ops.abs(d) : ops.square(d);
  const loss = ops.scale(ops.sumAll(per), 1 / (o.batch * c * o.size * o.size));
  if (ops.batchStats.length === 0) return finishTrainGraph(g, ops, loss, {}, inputs);
  const stats = Object.fromEntries(
    ops.batchStats.flatMap((s) => [
      [`bn_mean.${s.site}`, s.mean],
      [`bn_var.${s.site}`, s.variance],
    ]),
  );
  return {
    ...finishTrainGraph(g, ops, loss, {}, inputs, stats),
    batchStats: ops.batchStats.map((s) => ({ site: s.site, count: s.count })),
  };
}
