/**
 * `Ops` realised as ONNX nodes (NCHW) appended to a GraphBuilder: running a network's
 * forward code with an OnnxOps instance writes its graph. Parameters become initializers
 * holding the PyTorch-layout weights unchanged (ONNX Conv/Gemm use the same layouts).
 */
import type { Ops, TorchWeightsLike } from '@dif-fusion/nn';
import { type Attr, attr, convAttrs, type GraphBuilder, type Value } from './graph';

export type { TorchTensor, TorchWeights, TorchWeightsLike } from '@dif-fusion/nn';

export interface OnnxOpsOptions {
  /** Prefix for initializer names (e.g. `unet.`), to keep several networks apart. */
  prefix?: string;
  /**
   * GroupNorm realisation: 'instancenorm' (Reshape -> InstanceNormalization -> Reshape ->
   * affine; fast on ORT CPU) or 'reduce' (ReduceMean / Sub / Mul / Sqrt / Reciprocal chain;
   * the training graphs' form, whose statistics their backward pass reads).
   */
  groupNorm?: 'instancenorm' | 'reduce';
}

export class OnnxOps implements Ops<Value> {
  readonly kind = 'onnx' as const;
  readonly training = false;
  private readonly prefix: string;
  private readonly gnMode: 'instancenorm' | 'reduce';
  private readonly params = new Map<string, Value>();
  /** Reshaped [C,1,1] views of per-channel parameters (GroupNorm affine). */
  private readonly channelViews = new Map<Value, Value>();

  constructor(
    readonly g: GraphBuilder,
    private readonly weights: TorchWeightsLike,
    options: OnnxOpsOptions = {},
  ) {
    this.prefix = options.prefix ?? '';
    this.gnMode = options.groupNorm ?? 'instancenorm';
  }

  param(name: string): Value {
    const hit = this.params.get(name);
    if (hit) return hit;
    const w = this.weights.get(name);
    if (!w) throw new Error(`missing weight ${name}`);
    const data = w.data instanceof Float32Array ? w.data : Float32Array.from(w.data);
    const v = this.g.initializer(`${this.prefix}${name}`, w.shape.slice(), data);
    this.params.set(name, v);
    return v;
  }

  conv2d(
    x: Value,
    weight: Value,
    bias: Value | null,
    options: { stride?: number; padding?: number } = {},
  ): Value {
    const s = options.stride ?? 1;
    const p = options.padding ?? 0;
    const inputs = bias ? [x, weight, bias] : [x, weight];
    return this.g.node('Conv', inputs, convAttrs(s, p));
  }

  linear(x: Value, weight: Value, bias: Value | null): Value {
    const inputs = bias ? [x, weight, bias] : [x, weight];
    return this.g.node('Gemm', inputs, { transB: attr.int(1) });
  }

  private channelView(p: Value): Value {
    let v = this.channelViews.get(p);
    if (!v) {
      v = this.g.node('Unsqueeze', [p, this.g.constI64([1, 2])]);
      this.channelViews.set(p, v);
    }
    return v;
  }

  groupNorm(x: Value, groups: number, weight: Value, bias: Value, eps = 1e-5): Value {
    return this.groupNormParts(x, groups, weight, bias, eps).y;
  }

  /**
   * The nodes of `groupNorm` and, in 'reduce' mode, the values a backward pass reads
   * (GradOps differentiates these): `xhat` (normalised, `[N, G, L]`), `rstd`
   * (1/sqrt(var + eps), `[N, G, 1]`), `normed` (xhat back in x's shape) and the weight's
   * `[C, 1, 1]` view.
   */
  groupNormParts(
    x: Value,
    groups: number,
    weight: Value,
    bias: Value,
    eps = 1e-5,
  ): { y: Value; xhat: Value; rstd: Value | null; normed: Value; weightView: Value } {
    const g = this.g;
    const grouped = g.node('Reshape', [x, g.constI64([0, groups, -1])]);
    let xhat: Value;
    let rstd: Value | null = null;
    if (this.gnMode === 'instancenorm') {
      // InstanceNormalization over [N, G, L] normalises each (n, g) row: exactly GroupNorm
      // before its affine part.
      xhat = g.node(
        'InstanceNormalization',
        [
          grouped,
          g.constF32(new Float32Array(groups).fill(1)),
          g.constF32(new Float32Array(groups)),
        ],
        { epsilon: attr.float(eps) },
      );
    } else {
      const mean = g.reduce('ReduceMean', grouped, [2], true);
      const d = g.node('Sub', [grouped, mean]);
      const variance = g.reduce('ReduceMean', g.node('Mul', [d, d]), [2], true);
      rstd = g.node('Reciprocal', [
        g.node('Sqrt', [g.node('Add', [variance, g.constF32([eps], [])])]),
      ]);
      xhat = g.node('Mul', [d, rstd]);
    }
    const normed = g.node('Reshape', [xhat, g.node('Shape', [x])]);
    const weightView = this.channelView(weight);
    const y = g.node('Add', [g.node('Mul', [normed, weightView]), this.channelView(bias)]);
    return { y, xhat, rstd, normed, weightView };
  }

  batchNorm2d(
    x: Value,
    weight: Value,
    bias: Value,
    running: { mean: Value; variance: Value } | null,
    options: { site: string; eps?: number },
  ): Value {
    if (!running)
      throw new Error(
        `OnnxOps writes inference graphs: BatchNorm2d ${options.site} needs its running statistics`,
      );
    return this.g.node('BatchNormalization', [x, weight, bias, running.mean, running.variance], {
      epsilon: attr.float(options.eps ?? 1e-5),
    });
  }

  avgPool2x2(x: Value): Value {
    return this.g.node('AveragePool', [x], {
      kernel_shape: attr.ints([2, 2]),
      strides: attr.ints([2, 2]),
    });
  }

  add(a: Value, b: Value): Value {
    return this.g.node('Add', [a, b]);
  }
  mul(a: Value, b: Value): Value {
    return this.g.node('Mul', [a, b]);
  }
  max(a: Value, b: Value): Value {
    return this.g.node('Max', [a, b]);
  }
  scale(x: Value, s: number): Value {
    if (s === 1) return x;
    return this.g.node('Mul', [x, this.g.constF32([s], [])]);
  }
  axpby(a: number, x: Value, b: number, y: Value): Value {
    return this.g.node('Add', [this.scale(x, a), this.scale(y, b)]);
  }
  swish(x: Value): Value {
    return this.g.node('Mul', [x, this.g.node('Sigmoid', [x])]);
  }
  relu(x: Value): Value {
    return this.g.node('Relu', [x]);
  }
  leakyRelu(x: Value, slope: number): Value {
    return this.g.node('LeakyRelu', [x], { alpha: attr.float(slope) });
  }
  sigmoid(x: Value): Value {
    return this.g.node('Sigmoid', [x]);
  }
  tanh(x: Value): Value {
    return this.g.node('Tanh', [x]);
  }
  dropout(x: Value, _rate: number): Value {
    return x; // inference graph
  }

  addChannel(x: Value, v: Value): Value {
    return this.g.node('Add', [x, this.g.node('Unsqueeze', [v, this.g.constI64([2, 3])])]);
  }
  mulChannel(x: Value, v: Value): Value {
    return this.g.node('Mul', [x, this.g.node('Unsqueeze', [v, this.g.constI64([2, 3])])]);
  }
  mulSpatial(x: Value, s: Value): Value {
    return this.g.node('Mul', [x, s]);
  }
  sliceFeatures(v: Value, start: number, end: number): Value {
    const g = this.g;
    return g.node('Slice', [v, g.constI64([start]), g.constI64([end]), g.constI64([1])]);
  }
  concatChannels(xs: Value[]): Value {
    if (xs.length === 1) return xs[0];
    return this.g.node('Concat', xs, { axis: attr.int(1) });
  }
  concatBatch(xs: Value[]): Value {
    if (xs.length === 1) return xs[0];
    return this.g.node('Concat', xs, { axis: attr.int(0) });
  }
  splitBatch(x: Value, parts: number, name?: string): Value[] {
    if (parts === 1) return [x];
    // Equal parts along axis 0; opset 18 made the part count an attribute.
    const attrs: Record<string, Attr> =
      this.g.opset >= 18
        ? { axis: attr.int(0), num_outputs: attr.int(parts) }
        : { axis: attr.int(0) };
    return this.g.nodeN('Split', [x], parts, attrs, name);
  }
  meanSpatial(x: Value): Value {
    return this.g.reduce('ReduceMean', x, [2, 3], false);
  }
  upsampleNearest2x(x: Value): Value {
    const g = this.g;
    return g.node('Resize', [x, '', g.constF32([1, 1, 2, 2])], {
      mode: attr.string('nearest'),
      coordinate_transformation_mode: attr.string('asymmetric'),
      nearest_mode: attr.string('floor'),
    });
  }
  upsampleBilinear2x(x: Value): Value {
    const g = this.g;
    return g.node('Resize', [x, '', g.constF32([1, 1, 2, 2])], {
      mode: attr.string('linear'),
      coordinate_transformation_mode: attr.string('align_corners'),
    });
  }

  // ------------------------------------------------------------ loss maths

  sub(a: Value, b: Value): Value {
    return this.g.node('Sub', [a, b]);
  }
  abs(x: Value): Value {
    return this.g.node('Abs', [x]);
  }
  square(x: Value): Value {
    return this.g.node('Mul', [x, x]);
  }
  sqrt(x: Value): Value {
    return this.g.node('Sqrt', [x]);
  }
  exp(x: Value): Value {
    return this.g.node('Exp', [x]);
  }
  log(x: Value): Value {
    return this.g.node('Log', [x]);
  }
  addScalar(x: Value, s: number): Value {
    return this.g.node('Add', [x, this.g.constF32([s], [])]);
  }
  maxScalar(x: Value, s: number): Value {
    return this.g.node('Max', [x, this.g.constF32([s], [])]);
  }
  compareScalar(x: Value, op: 'less' | 'greater', s: number): Value {
    const c = this.g.node(op === 'less' ? 'Less' : 'Greater', [x, this.g.constF32([s], [])]);
    return this.g.node('Cast', [c], { to: attr.int(1) }); // FLOAT
  }
  mulSample(x: Value, s: Value): Value {
    return this.g.node('Mul', [x, this.g.node('Unsqueeze', [s, this.g.constI64([2, 3])])]);
  }
  broadcastLike(s: Value, like: Value): Value {
    return this.g.node('Expand', [s, this.g.node('Shape', [like])]);
  }
  sumAll(x: Value): Value {
    return this.g.reduce('ReduceSum', x, [], false);
  }
  meanAll(x: Value): Value {
    return this.g.reduce('ReduceMean', x, [], false);
  }
  sliceChannels(x: Value, start: number, end: number): Value {
    const g = this.g;
    return g.node('Slice', [x, g.constI64([start]), g.constI64([end]), g.constI64([1])]);
  }
  stopGradient(x: Value): Value {
    return x; // inference graph: no gradients
  }
  constConv(
    x: Value,
    kernel: Float32Array,
    kernelShape: [number, number, number, number],
    options: { groups?: number; padding?: number } = {},
  ): Value {
    const w = this.g.constF32(kernel, kernelShape);
    return this.g.node('Conv', [x, w], convAttrs(1, options.padding ?? 0, options.groups ?? 1));
  }

  selfAttention(qkv: Value, nHead: number): Value {
    return this.attention(qkv, nHead).y;
  }

  /**
   * The nodes of `selfAttention` and the values a backward pass reads (GradOps differentiates
   * these): q, k, v `[N, nH, hd, HW]`, `invSqrtC` (1/sqrt(C), a graph value), `qs` = q * it,
   * `attn` (the softmax, `[N, nH, HW, HW]`) and the output `y`.
   */
  attention(
    qkv: Value,
    nHead: number,
  ): { q: Value; k: Value; v: Value; invSqrtC: Value; qs: Value; attn: Value; y: Value } {
    const g = this.g;
    // qkv [N, 3C, H, W]; C is not known statically here, so derive everything from shapes:
    // view as [N, nHead, 3, hd, HW] (channel = head*3hd + part*hd + j).
    const shape = g.node('Shape', [qkv]);
    const n = g.node('Slice', [shape, g.constI64([0]), g.constI64([1]), g.constI64([0])]);
    const c3 = g.node('Slice', [shape, g.constI64([1]), g.constI64([2]), g.constI64([0])]);
    const hw = g.node('Slice', [shape, g.constI64([2]), g.constI64([4]), g.constI64([0])]);
    const hwProd = g.reduce('ReduceProd', hw, [], true);
    const hd = g.node('Div', [c3, g.constI64([3 * nHead])]);
    const view = g.node('Concat', [n, g.constI64([nHead, 3]), hd, hwProd], { axis: attr.int(0) });
    const r = g.node('Reshape', [qkv, view]); // [N, nH, 3, hd, HW]
    const part = (i: number) => g.node('Gather', [r, g.constI64([i], [])], { axis: attr.int(2) }); // [N, nH, hd, HW]
    const q = part(0);
    const k = part(1);
    const v = part(2);
    // scores[hw, yx] = sum_c q[c, hw] k[c, yx] / sqrt(C), C = 3C/3 channels in total.
    const c = g.node('Div', [c3, g.constI64([3])]);
    const invSqrtC = g.node('Reciprocal', [
      g.node('Sqrt', [g.node('Cast', [c], { to: attr.int(1) })]),
    ]);
    // Scale q (HW x hd values) rather than the scores (HW x HW).
    const qs = g.node('Mul', [q, invSqrtC]);
    const qT = g.node('Transpose', [qs], { perm: attr.ints([0, 1, 3, 2]) }); // [N, nH, HW, hd]
    const scores = g.node('MatMul', [qT, k]); // [N, nH, HW, HW]
    const attn = g.node('Softmax', [scores], { axis: attr.int(-1) });
    const vT = g.node('Transpose', [v], { perm: attr.ints([0, 1, 3, 2]) }); // [N, nH, HW, hd]
    const outT = g.node('MatMul', [attn, vT]); // [N, nH, HW, hd]
    const out = g.node('Transpose', [outT], { perm: attr.ints([0, 1, 3, 2]) }); // [N, nH, hd, HW]
    const outShape = g.node('Concat', [n, c, hw], { axis: attr.int(0) });
    return { q, k, v, invSqrtC, qs, attn, y: g.node('Reshape', [out, outShape]) };
  }

  positionalEncoding(level: Value, dim: number): Value {
    const g = this.g;
    const count = Math.floor(dim / 2);
    const freqs = new Float32Array(count);
    for (let k = 0; k < count; k++) freqs[k] = Math.exp(-Math.log(1e4) * (k / count));
    const enc = g.node('Mul', [level, g.constF32(freqs, [1, count])]); // [N, count]
    return g.node('Concat', [g.node('Sin', [enc]), g.node('Cos', [enc])], { axis: attr.int(1) });
  }
}
