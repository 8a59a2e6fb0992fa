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
 * mode: the UNet's in_channel is Cc + C). `learnedRange` (var_type `learned_range`, Improved
 * DDPM): the UNet outputs 2C channels [eps, v] and the loss is the hybrid
 * L_simple + lambda T vb, vb from @dif-fusion/diffusion's learned-variance maths written on
 * GradOps (see {@link vbTerms}), with an input `vb_coefs` [9] and a `vb` output.
 */
import {
  type ChainCoefficients,
  learnedRange,
  type MeanType,
  modelMeanCoefs,
} from '@dif-fusion/diffusion';
import { notBuffer } from '@dif-fusion/nn';
import type { DenoiserNet } from '@dif-fusion/unet';
import { type DropoutMaskSpec, GradOps } from '../grad/grad-ops';
import { attr, GraphBuilder, type Value } from '../graph';

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
  /**
   * var_type `learned_range`: lambda T, the weight of the bound term vb in the loss
   * (@dif-fusion/diffusion's vlbWeight times the number of time steps); absent: fixed variance.
   */
  learnedRange?: { vbWeight: number };
}

/**
 * The `vb_coefs` input of a learned_range training graph, for the batch's chain index
 * i = t - 1 (one t per batch): the true posterior mean c1 x_0 + c2 x_t, the model mean
 * p x_t + q out (from the stop-gradient mean output; see @dif-fusion/diffusion
 * modelMeanCoefs), the model log variance mid + half v, the true log variance, and the
 * weights of the KL (i > 0) and the decoder NLL (i = 0): 1 for the term of this i, 0 for
 * the other.
 */
export const VB_COEFS = ['c1', 'c2', 'p', 'q', 'mid', 'half', 'lv1', 'wKl', 'wNll'] as const;

/** The `vb_coefs` values of time step t (1..T) of a chain for a mean type. */
export function vbCoefs(c: ChainCoefficients, meanType: MeanType, t: number): Float32Array {
  const i = t - 1;
  const [p, q] = modelMeanCoefs(c, meanType, i);
  const r = learnedRange(c, i);
  const v: Record<(typeof VB_COEFS)[number], number> = {
    c1: c.posteriorMeanCoef1[i],
    c2: c.posteriorMeanCoef2[i],
    p,
    q,
    mid: r.mid,
    half: r.half,
    lv1: c.posteriorLogVarianceClipped[i],
    wKl: i > 0 ? 1 : 0,
    wNll: i > 0 ? 0 : 1,
  };
  return Float32Array.from(VB_COEFS, (k) => v[k]);
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
  const ops = new GradOps(g, paramShapes(unet.params()), {
    training: o.dropout ?? true,
    checkpoint: o.checkpoint ?? false,
    trainable: notBuffer(unet.params()),
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
  const raw = unet.forward(ops, input, level);
  const eps = o.learnedRange ? ops.sliceChannels(raw, 0, c) : raw;
  const d = ops.sub(o.target ? ops.input('target', shape) : noise, eps);
  const per = o.loss === 'l1' ? ops.abs(d) : ops.square(d);
  const denom = o.batch * c * o.size * o.size;
  const simple = ops.scale(ops.sumAll(per), 1 / denom);
  let loss = simple;
  const scalars: Record<string, Value> = {};
  if (o.learnedRange) {
    inputs.set('vb_coefs', [VB_COEFS.length]);
    const coefs = ops.input('vb_coefs', [VB_COEFS.length]);
    const v = ops.sliceChannels(raw, c, 2 * c);
    const term = vbTerms(ops, coefs, { x0: x, xt, out: eps, v });
    scalars.vb = ops.scale(ops.sumAll(term), 1 / (denom * Math.LN2));
    loss = ops.add(simple, ops.scale(scalars.vb, o.learnedRange.vbWeight));
  }
  // BatchNorm in training mode (skip_unet): each site's batch statistics, for the buffers
  const stats = Object.fromEntries(
    ops.batchStats.flatMap((s) => [
      [`bn_mean.${s.site}`, s.mean],
      [`bn_var.${s.site}`, s.variance],
    ]),
  );
  const graph = finishTrainGraph(g, ops, loss, scalars, inputs, stats);
  if (ops.batchStats.length === 0) return graph;
  return { ...graph, batchStats: ops.batchStats.map((s) => ({ site: s.site, count: s.count })) };
}

/**
 * The per-element bound term (nats; Improved DDPM sec. 3.1, as @dif-fusion/diffusion's
 * `vbTerm`) on GradOps, both branches weighted by the `vb_coefs` input (so one graph serves
 * every t):
 *   lv2 = mid + half v,  m1 = c1 x0 + c2 xt,  m2 = p xt + q stop(out)
 *   KL  = 0.5 (-1 + lv2 - lv1 + exp(lv1 - lv2) + (m1 - m2)^2 exp(-lv2))
 *   NLL = -log P(bin of x0) under N(m2, exp(lv2)), Phi(u) ~ 0.5 (1 + tanh(sqrt(2/pi)
 *         (u + 0.044715 u^3))), bins 2/255 wide, open at x0 < -0.999 and x0 > 0.999,
 *         probabilities clamped at 1e-12
 *   term = wKl KL + wNll NLL
 * Only v carries gradients (m2, the means and the bin masks are constants).
 */
function vbTerms(
  ops: GradOps,
  coefs: Value,
  t: { x0: Value; xt: Value; out: Value; v: Value },
): Value {
  const g = ops.g;
  const shape = ops.shape(t.x0);
  const dims = g.constI64(shape);
  const full = (v: Value) => ops.constant('Expand', [v, dims], shape);
  const k = (name: (typeof VB_COEFS)[number]) => {
    const i = VB_COEFS.indexOf(name);
    return full(
      ops.constant('Slice', [coefs, g.constI64([i]), g.constI64([i + 1]), g.constI64([0])], [1]),
    );
  };
  const num = (x: number) => full(g.constF32([x], [1]));
  const cmul = (a: Value, b: Value) => ops.constant('Mul', [a, b], shape);
  const cadd = (a: Value, b: Value) => ops.constant('Add', [a, b], shape);
  const csub = (a: Value, b: Value) => ops.constant('Sub', [a, b], shape);
  const m1 = cadd(cmul(k('c1'), t.x0), cmul(k('c2'), t.xt));
  const m2 = cadd(cmul(k('p'), t.xt), cmul(k('q'), ops.stopGradient(t.out)));
  const lv2 = ops.add(ops.mul(t.v, k('half')), k('mid'));
  // KL(q || p)
  const dm = csub(m1, m2);
  const lv1 = k('lv1');
  const kl = ops.scale(
    ops.add(
      ops.add(ops.sub(lv2, cadd(lv1, num(1))), ops.exp(ops.sub(lv1, lv2))),
      ops.mul(cmul(dm, dm), ops.exp(ops.scale(lv2, -1))),
    ),
    0.5,
  );
  // -log p(x0 | x1), the discretized Gaussian decoder
  const centered = csub(t.x0, m2);
  const inv = ops.exp(ops.scale(lv2, -0.5));
  const phi = (u: Value) => {
    const inner = ops.add(u, ops.scale(ops.mul(u, ops.square(u)), 0.044715));
    return ops.scale(ops.add(ops.tanh(ops.scale(inner, Math.sqrt(2 / Math.PI))), num(1)), 0.5);
  };
  const cdfPlus = phi(ops.mul(inv, cadd(centered, num(1 / 255))));
  const cdfMin = phi(ops.mul(inv, csub(centered, num(1 / 255))));
  const tiny = num(1e-12);
  const logPlus = ops.log(ops.max(cdfPlus, tiny));
  const logOneMinusMin = ops.log(ops.max(ops.sub(num(1), cdfMin), tiny));
  const logDelta = ops.log(ops.max(ops.sub(cdfPlus, cdfMin), tiny));
  const mask = (op: 'Less' | 'Greater', edge: number) =>
    ops.constant('Cast', [g.node(op, [t.x0, g.constF32([edge], [])])], shape, {
      to: attr.int(1), // FLOAT
    });
  const lo = mask('Less', -0.999);
  const hi = mask('Greater', 0.999);
  const inner = csub(csub(num(1), lo), hi);
  const logProbs = ops.add(
    ops.add(ops.mul(lo, logPlus), ops.mul(hi, logOneMinusMin)),
    ops.mul(inner, logDelta),
  );
  const nll = ops.scale(logProbs, -1);
  return ops.add(ops.mul(k('wKl'), kl), ops.mul(k('wNll'), nll));
}
