/**
 * The third realisation of `Ops`: training graphs. Running a network's forward code with a
 * `GradOps` writes the forward ONNX nodes (NCHW, static shapes) and records, per op, how to
 * write its reverse-mode gradient nodes. The forward nodes are OnnxOps' (the inference
 * lowering, written once; GroupNorm in its 'reduce' form): GradOps adds the shapes and
 * differentiates them. Still lowered here: BatchNorm2d (the training mode has no inference
 * form), dropout (a mask input) and stopGradient. `gradients(loss, wrt)` then appends the backward
 * pass, so one graph takes the parameters (graph inputs named by their official PyTorch
 * keys), the batch, noise levels, noise and dropout masks, and returns the loss and every
 * gradient. The networks stay defined once (unet, fusion-head); nothing here knows them.
 *
 * Conventions follow TensorFlow.js's gradients where a choice exists (relu'(0) = 0,
 * max(a, b) sends the gradient to `a` on ties), so the two training backends agree.
 */
import type { BatchStat, Ops } from '@dif-fusion/nn';
import { type Attr, attr, convAttrs, type GraphBuilder, type Value } from '../graph';
import { OnnxOps } from '../onnx-ops';

type Backward = (gy: Value) => Array<Value | null>;

interface TapeEntry {
  inputs: Value[];
  output: Value;
  backward: Backward;
}

/** A dropout site: the mask input the graph reads (values 0 or 1/(1-rate)). */
export interface DropoutMaskSpec {
  input: Value;
  shape: number[];
  rate: number;
}

export interface GradOpsOptions {
  /** Prefix for parameter input names (default none). */
  prefix?: string;
  /** Training mode: dropout reads mask inputs. Default true. */
  training?: boolean;
  /** Which parameters get gradients (default all that the forward pass reads). */
  trainable?: (name: string) => boolean;
  /**
   * Gradient checkpointing: the segments a network marks with `ops.checkpoint` (the UNet's
   * ResnetBlocWithAttn) keep no activations for the backward pass; it recomputes them from
   * the segment's inputs. Default false (the graph is then exactly the plain one).
   */
  checkpoint?: boolean;
}

const numel = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

export class GradOps implements Ops<Value> {
  readonly kind = 'onnx' as const;
  readonly training: boolean;
  /** Logical shape (images NCHW, vectors [N, F], scalars []) of every value written. */
  readonly shapes = new Map<Value, number[]>();
  /** Parameters the forward pass read: official name -> graph input. */
  readonly paramInputs = new Map<string, Value>();
  /** Dropout sites in call order (the order of TrainOps' seeded masks). */
  readonly dropoutMasks: DropoutMaskSpec[] = [];
  /** Training-mode BatchNorm2d statistics ([C] values), in call order: graph outputs for the trainer. */
  readonly batchStats: BatchStat<Value>[] = [];
  private readonly tape: TapeEntry[] = [];
  private readonly needsGrad = new Set<Value>();
  private readonly prefix: string;
  private readonly trainable: (name: string) => boolean;
  private readonly checkpointing: boolean;
  /** While a segment is recomputed: its dropout masks, reused in call order. */
  private replayMasks: DropoutMaskSpec[] | null = null;
  /**
   * The forward nodes: the inference realisation writes them (one lowering of each op);
   * GradOps adds the shapes and the backward rules. Parameters stay GradOps' own (inputs).
   */
  private readonly f: OnnxOps;

  /**
   * @param paramShape PyTorch shape of a parameter by official name (throws when unknown)
   */
  constructor(
    readonly g: GraphBuilder,
    private readonly paramShape: (name: string) => number[],
    options: GradOpsOptions = {},
  ) {
    this.prefix = options.prefix ?? '';
    this.training = options.training ?? true;
    this.trainable = options.trainable ?? (() => true);
    this.checkpointing = options.checkpoint ?? false;
    this.f = new OnnxOps(g, new Map(), { groupNorm: 'reduce' });
  }

  shape(v: Value): number[] {
    const s = this.shapes.get(v);
    if (!s) throw new Error(`GradOps: unknown value ${v}`);
    return s;
  }

  /** Whether gradients flow into `v`. */
  requiresGrad(v: Value): boolean {
    return this.needsGrad.has(v);
  }

  /**
   * A float32 graph input (batch, levels, noise, features). It carries no gradient unless
   * `grad` is set (then `gradients` can return dloss/dinput).
   */
  input(name: string, shape: number[], options: { grad?: boolean } = {}): Value {
    const v = this.g.input(name, shape);
    this.shapes.set(v, shape.slice());
    if (options.grad) this.needsGrad.add(v);
    return v;
  }

  /**
   * Adopt a value written outside this GradOps (e.g. by `OnnxOps` for a frozen network) as a
   * constant of known shape: it carries no gradient.
   */
  adopt(v: Value, shape: number[]): Value {
    this.shapes.set(v, shape.slice());
    return v;
  }

  param(name: string): Value {
    const hit = this.paramInputs.get(name);
    if (hit) return hit;
    const shape = this.paramShape(name);
    const v = this.g.input(`${this.prefix}${name}`, shape);
    this.shapes.set(v, shape.slice());
    if (this.trainable(name)) this.needsGrad.add(v);
    this.paramInputs.set(name, v);
    return v;
  }

  // ---------------------------------------------------------------- plumbing

  /** A node whose output has `shape`; with a backward rule when an input needs gradients. */
  private op(
    opType: string,
    inputs: Value[],
    shape: number[],
    backward: Backward | null,
    attrs: Record<string, Attr> = {},
  ): Value {
    const y = this.g.node(opType, inputs, attrs);
    this.record(y, shape, inputs, backward);
    return y;
  }

  /** Register `y` (already written) as computed from `inputs`, differentiable by `backward`. */
  private record(y: Value, shape: number[], inputs: Value[], backward: Backward | null): void {
    this.shapes.set(y, shape.slice());
    if (backward && inputs.some((i) => this.needsGrad.has(i))) {
      this.needsGrad.add(y);
      this.tape.push({ inputs, output: y, backward });
    }
  }

  /**
   * Register `y`, a forward value OnnxOps wrote, as computed from `inputs` with the backward
   * rule `backward` (null: no gradient flows, e.g. a comparison); returns y.
   */
  private via(y: Value, shape: number[], inputs: Value[], backward: Backward | null): Value {
    this.record(y, shape, inputs, backward);
    return y;
  }

  /** A node outside the tape (shape bookkeeping only), for gradient and constant maths. */
  private raw(opType: string, inputs: Value[], attrs: Record<string, Attr> = {}): Value {
    return this.g.node(opType, inputs, attrs);
  }

  private reduceSum(x: Value, axes: number[], keepdims: boolean): Value {
    return this.raw('ReduceSum', [x, this.g.constI64(axes)], {
      keepdims: attr.int(keepdims ? 1 : 0),
    });
  }

  private reshape(x: Value, shape: number[]): Value {
    return this.raw('Reshape', [x, this.g.constI64(shape)]);
  }

  private scalar(s: number): Value {
    return this.g.constF32([s], []);
  }

  private need(v: Value): boolean {
    return this.needsGrad.has(v);
  }

  // ---------------------------------------------------------------- Ops

  conv2d(
    x: Value,
    weight: Value,
    bias: Value | null,
    options: { stride?: number; padding?: number } = {},
  ): Value {
    const s = options.stride ?? 1;
    const p = options.padding ?? 0;
    const [n, ci, h, w] = this.shape(x);
    const [co, wi, kh, kw] = this.shape(weight);
    if (wi !== ci)
      throw new Error(`GradOps conv2d: input has ${ci} channels, weight expects ${wi}`);
    const ho = Math.floor((h + 2 * p - kh) / s) + 1;
    const wo = Math.floor((w + 2 * p - kw) / s) + 1;
    const inputs = bias ? [x, weight, bias] : [x, weight];
    const y = this.f.conv2d(x, weight, bias, options);
    this.record(y, [n, co, ho, wo], inputs, (gy) => [
      this.need(x) ? this.convInputGrad(gy, weight, [h, w], [ho, wo], s, p) : null,
      this.need(weight) ? this.convWeightGrad(gy, x, [co, ci, kh, kw], [ho, wo], s, p) : null,
      bias && this.need(bias) ? this.reduceSum(gy, [0, 2, 3], false) : null,
    ]);
    return y;
  }

  /**
   * dL/dx of a convolution. Stride 1: a forward Conv of the output gradient with the
   * kernel transposed (in <-> out) and flipped, padding k-1-p (cheaper than ConvTranspose on
   * ORT's CPU provider). Other strides: ConvTranspose with the output padding that restores
   * the input size.
   */
  private convInputGrad(
    gy: Value,
    weight: Value,
    [h, w]: number[],
    [ho, wo]: number[],
    s: number,
    p: number,
  ): Value {
    const [, , kh, kw] = this.shape(weight);
    if (s === 1 && kh - 1 - p >= 0 && kw - 1 - p >= 0) {
      let wt = this.raw('Transpose', [weight], { perm: attr.ints([1, 0, 2, 3]) });
      if (kh > 1 || kw > 1)
        wt = this.raw('Slice', [
          wt,
          this.g.constI64([-1, -1]),
          this.g.constI64([-(2 ** 62), -(2 ** 62)]),
          this.g.constI64([2, 3]),
          this.g.constI64([-1, -1]),
        ]);
      return this.raw('Conv', [gy, wt], {
        ...convAttrs(1, 0),
        pads: attr.ints([kh - 1 - p, kw - 1 - p, kh - 1 - p, kw - 1 - p]),
      });
    }
    const opH = h - (s * (ho - 1) + kh - 2 * p);
    const opW = w - (s * (wo - 1) + kw - 2 * p);
    return this.raw('ConvTranspose', [gy, weight], {
      strides: attr.ints([s, s]),
      pads: attr.ints([p, p, p, p]),
      output_padding: attr.ints([opH, opW]),
    });
  }

  /**
   * dL/dW of a convolution as im2col + GEMM: the padded input's kh*kw shifted (strided)
   * views concatenated on channels give cols [N, kh*kw*I, Ho*Wo]; per sample
   * dW_flat += gy_n [O, HoWo] · cols_n^T (Gemm transB, no transpose written), then the
   * [O, kh, kw, I] result is permuted to PyTorch's [O, I, kh, kw].
   */
  private convWeightGrad(
    gy: Value,
    x: Value,
    wShape: number[],
    outHw: number[],
    s: number,
    p: number,
  ): Value {
    const [co, ci, kh, kw] = wShape;
    const [n] = this.shape(x);
    const [ho, wo] = outHw;
    const hw = ho * wo;
    const xp = p > 0 ? this.raw('Pad', [x, this.g.constI64([0, 0, p, p, 0, 0, p, p])]) : x;
    const taps: Value[] = [];
    for (let ky = 0; ky < kh; ky++)
      for (let kx = 0; kx < kw; kx++) {
        if (kh === 1 && kw === 1 && s === 1) {
          taps.push(xp);
          continue;
        }
        taps.push(
          this.raw('Slice', [
            xp,
            this.g.constI64([ky, kx]),
            this.g.constI64([ky + s * (ho - 1) + 1, kx + s * (wo - 1) + 1]),
            this.g.constI64([2, 3]),
            this.g.constI64([s, s]),
          ]),
        );
      }
    const cols = taps.length === 1 ? taps[0] : this.raw('Concat', taps, { axis: attr.int(1) });
    const k = kh * kw * ci;
    const per: Value[] = [];
    if (n === 1) {
      per.push(
        this.raw('Gemm', [this.reshape(gy, [co, hw]), this.reshape(cols, [k, hw])], {
          transB: attr.int(1),
        }),
      );
    } else {
      const ones = this.g.constI64(new Array(n).fill(1));
      const gys = this.g.nodeN('Split', [gy, ones], n, { axis: attr.int(0) });
      const cs = this.g.nodeN('Split', [cols, ones], n, { axis: attr.int(0) });
      for (let i = 0; i < n; i++)
        per.push(
          this.raw('Gemm', [this.reshape(gys[i], [co, hw]), this.reshape(cs[i], [k, hw])], {
            transB: attr.int(1),
          }),
        );
    }
    const flat = per.length === 1 ? per[0] : this.raw('Sum', per);
    if (kh === 1 && kw === 1) return this.reshape(flat, [co, ci, 1, 1]);
    return this.raw('Transpose', [this.reshape(flat, [co, kh, kw, ci])], {
      perm: attr.ints([0, 3, 1, 2]),
    });
  }

  linear(x: Value, weight: Value, bias: Value | null): Value {
    const [n, f] = this.shape(x);
    const [out, inF] = this.shape(weight);
    if (inF !== f)
      throw new Error(`GradOps linear: input has ${f} features, weight expects ${inF}`);
    const inputs = bias ? [x, weight, bias] : [x, weight];
    const y = this.f.linear(x, weight, bias);
    this.record(y, [n, out], inputs, (gy) => [
      this.need(x) ? this.raw('MatMul', [gy, weight]) : null,
      this.need(weight) ? this.raw('Gemm', [gy, x], { transA: attr.int(1) }) : null,
      bias && this.need(bias) ? this.reduceSum(gy, [0], false) : null,
    ]);
    return y;
  }

  /**
   * GroupNorm, OnnxOps' 'reduce' nodes: xhat = (x - mean) * rstd per (sample, group),
   * y = xhat * weight + bias. Backward (per group of L values):
   * dx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)).
   */
  groupNorm(x: Value, groups: number, weight: Value, bias: Value, eps = 1e-5): Value {
    const shape = this.shape(x);
    if (shape.length !== 4)
      throw new Error(`GradOps groupNorm: an image [N,C,H,W], got [${shape}]`);
    const [n] = shape;
    const l = numel(shape) / (n * groups);
    const p = this.f.groupNormParts(x, groups, weight, bias, eps);
    const rstd = p.rstd!;
    const mean2 = (v: Value) =>
      this.raw('ReduceMean', [v], { axes: attr.ints([2]), keepdims: attr.int(1) });
    return this.via(p.y, shape, [x, weight, bias], (gy) => {
      let dx: Value | null = null;
      if (this.need(x)) {
        const dxhat = this.reshape(this.raw('Mul', [gy, p.weightView]), [n, groups, l]);
        const m1 = mean2(dxhat);
        const m2 = mean2(this.raw('Mul', [dxhat, p.xhat]));
        const inner = this.raw('Sub', [
          this.raw('Sub', [dxhat, m1]),
          this.raw('Mul', [p.xhat, m2]),
        ]);
        dx = this.reshape(this.raw('Mul', [inner, rstd]), shape);
      }
      return [
        dx,
        this.need(weight)
          ? this.reduceSum(this.raw('Mul', [gy, p.normed]), [0, 2, 3], false)
          : null,
        this.need(bias) ? this.reduceSum(gy, [0, 2, 3], false) : null,
      ];
    });
  }

  /**
   * BatchNorm2d: xhat = (x - mean) * rstd per channel, y = xhat * weight + bias. Training
   * (batch statistics over N, H, W; m = N*H*W values): dx = rstd * (dxhat - mean(dxhat) -
   * xhat * mean(dxhat * xhat)), dxhat = dy * weight, as GroupNorm's. Eval (running
   * statistics, constants): dx = dy * weight * rstd.
   */
  batchNorm2d(
    x: Value,
    weight: Value,
    bias: Value,
    running: { mean: Value; variance: Value } | null,
    options: { site: string; eps?: number },
  ): Value {
    const shape = this.shape(x);
    const [n, c, h, w] = shape;
    const eps = this.scalar(options.eps ?? 1e-5);
    const axes = { axes: attr.ints([0, 2, 3]), keepdims: attr.int(1) };
    const cv = (v: Value) => this.raw('Unsqueeze', [v, this.g.constI64([1, 2])]); // [C,1,1]
    const mean = running ? cv(running.mean) : this.raw('ReduceMean', [x], axes);
    const d = this.raw('Sub', [x, mean]);
    const variance = running
      ? cv(running.variance)
      : this.raw('ReduceMean', [this.raw('Mul', [d, d])], axes);
    if (!running) {
      const stat = (v: Value) => {
        const r = this.reshape(v, [c]);
        this.shapes.set(r, [c]);
        return r;
      };
      this.batchStats.push({
        site: options.site,
        mean: stat(mean),
        variance: stat(variance),
        count: n * h * w,
      });
    }
    const rstd = this.raw('Reciprocal', [this.raw('Sqrt', [this.raw('Add', [variance, eps])])]);
    const xhat = this.raw('Mul', [d, rstd]);
    const wv = cv(weight);
    const y = this.raw('Add', [this.raw('Mul', [xhat, wv]), cv(bias)]);
    this.record(y, shape, [x, weight, bias], (gy) => {
      let dx: Value | null = null;
      if (this.need(x)) {
        const dxhat = this.raw('Mul', [gy, wv]);
        if (running) dx = this.raw('Mul', [dxhat, rstd]);
        else {
          const m1 = this.raw('ReduceMean', [dxhat], axes);
          const m2 = this.raw('ReduceMean', [this.raw('Mul', [dxhat, xhat])], axes);
          const inner = this.raw('Sub', [
            this.raw('Sub', [dxhat, m1]),
            this.raw('Mul', [xhat, m2]),
          ]);
          dx = this.raw('Mul', [inner, rstd]);
        }
      }
      return [
        dx,
        this.need(weight) ? this.reduceSum(this.raw('Mul', [gy, xhat]), [0, 2, 3], false) : null,
        this.need(bias) ? this.reduceSum(gy, [0, 2, 3], false) : null,
      ];
    });
    return y;
  }

  /** AvgPool2d(2, 2): dx spreads dy / 4 over each 2x2 block. */
  avgPool2x2(x: Value): Value {
    const [n, c, h, w] = this.shape(x);
    const y = this.f.avgPool2x2(x);
    this.record(y, [n, c, h / 2, w / 2], [x], (gy) => {
      const spread = this.raw('Expand', [
        this.reshape(gy, [n, c, h / 2, 1, w / 2, 1]),
        this.g.constI64([n, c, h / 2, 2, w / 2, 2]),
      ]);
      return [this.raw('Mul', [this.reshape(spread, [n, c, h, w]), this.scalar(0.25)])];
    });
    return y;
  }

  private elementwise(a: Value, b: Value, what: string): number[] {
    const sa = this.shape(a);
    const sb = this.shape(b);
    if (!sameShape(sa, sb)) throw new Error(`GradOps ${what}: shapes [${sa}] and [${sb}] differ`);
    return sa;
  }

  add(a: Value, b: Value): Value {
    const s = this.elementwise(a, b, 'add');
    return this.via(this.f.add(a, b), s, [a, b], (gy) => [gy, gy]);
  }

  /** a - b (loss maths). */
  sub(a: Value, b: Value): Value {
    const s = this.elementwise(a, b, 'sub');
    return this.via(this.f.sub(a, b), s, [a, b], (gy) => [
      gy,
      this.need(b) ? this.raw('Neg', [gy]) : null,
    ]);
  }

  mul(a: Value, b: Value): Value {
    const s = this.elementwise(a, b, 'mul');
    return this.via(this.f.mul(a, b), s, [a, b], (gy) => [
      this.need(a) ? this.raw('Mul', [gy, b]) : null,
      this.need(b) ? this.raw('Mul', [gy, a]) : null,
    ]);
  }

  max(a: Value, b: Value): Value {
    const s = this.elementwise(a, b, 'max');
    return this.via(this.f.max(a, b), s, [a, b], (gy) => {
      const zero = this.scalar(0);
      const ge = this.raw('GreaterOrEqual', [a, b]);
      return [
        this.need(a) ? this.raw('Where', [ge, gy, zero]) : null,
        this.need(b) ? this.raw('Where', [ge, zero, gy]) : null,
      ];
    });
  }

  scale(x: Value, s: number): Value {
    if (s === 1) return x;
    return this.via(this.f.scale(x, s), this.shape(x), [x], (gy) => [
      this.raw('Mul', [gy, this.scalar(s)]),
    ]);
  }

  axpby(a: number, x: Value, b: number, y: Value): Value {
    return this.add(this.scale(x, a), this.scale(y, b));
  }

  swish(x: Value): Value {
    // d/dx x*s(x) = s * (1 + x * (1 - s)), s = sigmoid(x) written again for the backward pass
    return this.via(this.f.swish(x), this.shape(x), [x], (gy) => {
      const s = this.raw('Sigmoid', [x]);
      const oneMinus = this.raw('Sub', [this.scalar(1), s]);
      const k = this.raw('Add', [this.scalar(1), this.raw('Mul', [x, oneMinus])]);
      return [this.raw('Mul', [gy, this.raw('Mul', [s, k])])];
    });
  }

  relu(x: Value): Value {
    return this.via(this.f.relu(x), this.shape(x), [x], (gy) => [
      this.raw('Where', [this.raw('Greater', [x, this.scalar(0)]), gy, this.scalar(0)]),
    ]);
  }

  leakyRelu(x: Value, slope: number): Value {
    return this.via(this.f.leakyRelu(x, slope), this.shape(x), [x], (gy) => [
      this.raw('Where', [
        this.raw('Greater', [x, this.scalar(0)]),
        gy,
        this.raw('Mul', [gy, this.scalar(slope)]),
      ]),
    ]);
  }

  sigmoid(x: Value): Value {
    const y = this.f.sigmoid(x);
    return this.via(y, this.shape(x), [x], (gy) => [
      this.raw('Mul', [gy, this.raw('Mul', [y, this.raw('Sub', [this.scalar(1), y])])]),
    ]);
  }

  tanh(x: Value): Value {
    const y = this.f.tanh(x);
    return this.via(y, this.shape(x), [x], (gy) => [
      this.raw('Mul', [gy, this.raw('Sub', [this.scalar(1), this.raw('Mul', [y, y])])]),
    ]);
  }

  /** Dropout reads a mask input (0 or 1/(1-rate) per element) that the trainer draws. */
  dropout(x: Value, rate: number): Value {
    if (!this.training || !(rate > 0)) return x;
    const shape = this.shape(x);
    let mask: Value;
    if (this.replayMasks) {
      const m = this.replayMasks.shift();
      if (!m || m.rate !== rate || !sameShape(m.shape, shape))
        throw new Error('GradOps checkpoint: the recomputed segment draws other dropout sites');
      mask = m.input;
    } else {
      mask = this.input(`dropout_mask_${this.dropoutMasks.length}`, shape);
      this.dropoutMasks.push({ input: mask, shape, rate });
    }
    return this.op('Mul', [x, mask], shape, (gy) => [this.raw('Mul', [gy, mask]), null]);
  }

  private unsqueeze23(v: Value): Value {
    return this.raw('Unsqueeze', [v, this.g.constI64([2, 3])]);
  }

  addChannel(x: Value, v: Value): Value {
    return this.via(this.f.addChannel(x, v), this.shape(x), [x, v], (gy) => [
      gy,
      this.need(v) ? this.reduceSum(gy, [2, 3], false) : null,
    ]);
  }

  mulChannel(x: Value, v: Value): Value {
    return this.via(this.f.mulChannel(x, v), this.shape(x), [x, v], (gy) => [
      this.need(x) ? this.raw('Mul', [gy, this.unsqueeze23(v)]) : null,
      this.need(v) ? this.reduceSum(this.raw('Mul', [gy, x]), [2, 3], false) : null,
    ]);
  }

  mulSpatial(x: Value, s: Value): Value {
    return this.via(this.f.mulSpatial(x, s), this.shape(x), [x, s], (gy) => [
      this.need(x) ? this.raw('Mul', [gy, s]) : null,
      this.need(s) ? this.reduceSum(this.raw('Mul', [gy, x]), [1], true) : null,
    ]);
  }

  sliceFeatures(v: Value, start: number, end: number): Value {
    const [n, f] = this.shape(v);
    return this.via(this.f.sliceFeatures(v, start, end), [n, end - start], [v], (gy) => [
      this.raw('Pad', [gy, this.g.constI64([0, start, 0, f - end])]),
    ]);
  }

  concatChannels(xs: Value[]): Value {
    if (xs.length === 1) return xs[0];
    const shapes = xs.map((x) => this.shape(x));
    const sizes = shapes.map((s) => s[1]);
    const out = shapes[0].slice();
    out[1] = sizes.reduce((a, b) => a + b, 0);
    return this.via(this.f.concatChannels(xs), out, xs, (gy) =>
      this.g.nodeN('Split', [gy, this.g.constI64(sizes)], xs.length, { axis: attr.int(1) }),
    );
  }

  concatBatch(xs: Value[]): Value {
    if (xs.length === 1) return xs[0];
    const shapes = xs.map((x) => this.shape(x));
    const sizes = shapes.map((s) => s[0]);
    const out = shapes[0].slice();
    out[0] = sizes.reduce((a, b) => a + b, 0);
    return this.via(this.f.concatBatch(xs), out, xs, (gy) =>
      this.g.nodeN('Split', [gy, this.g.constI64(sizes)], xs.length, { axis: attr.int(0) }),
    );
  }

  splitBatch(x: Value, parts: number, name?: string): Value[] {
    if (parts === 1) return [x];
    const shape = this.shape(x);
    const n = shape[0] / parts;
    const rest = shape.slice(1);
    const zeros = rest.map(() => 0);
    // each part's gradient is gy padded with zeros to x's batch: the parts' sum is dL/dx
    return this.f
      .splitBatch(x, parts, name)
      .map((y, j) =>
        this.via(y, [n, ...rest], [x], (gy) => [
          this.raw('Pad', [
            gy,
            this.g.constI64([j * n, ...zeros, shape[0] - (j + 1) * n, ...zeros]),
          ]),
        ]),
      );
  }

  meanSpatial(x: Value): Value {
    const shape = this.shape(x);
    const [n, c, h, w] = shape;
    return this.via(this.f.meanSpatial(x), [n, c], [x], (gy) => [
      this.raw('Expand', [
        this.raw('Mul', [this.unsqueeze23(gy), this.scalar(1 / (h * w))]),
        this.g.constI64(shape),
      ]),
    ]);
  }

  upsampleNearest2x(x: Value): Value {
    const [n, c, h, w] = this.shape(x);
    return this.via(this.f.upsampleNearest2x(x), [n, c, 2 * h, 2 * w], [x], (gy) => [
      this.reduceSum(this.reshape(gy, [n, c, h, 2, w, 2]), [3, 5], false),
    ]);
  }

  /**
   * Bilinear x2 with align_corners is linear per axis: y = A_h x A_w^T. Its gradient is
   * dx = A_h^T dy A_w, two MatMuls with constant interpolation matrices.
   */
  upsampleBilinear2x(x: Value): Value {
    const [n, c, h, w] = this.shape(x);
    return this.via(this.f.upsampleBilinear2x(x), [n, c, 2 * h, 2 * w], [x], (gy) => {
      const aw = bilinearMatrix(w); // [2w, w]
      const ahT = transpose2d(bilinearMatrix(h), 2 * h, h); // [h, 2h]
      const t = this.raw('MatMul', [gy, this.g.constF32(aw, [2 * w, w])]); // [n,c,2h,w]
      return [this.raw('MatMul', [this.g.constF32(ahT, [h, 2 * h]), t])];
    });
  }

  /**
   * OnnxOps' attention nodes, differentiated: with s = 1/sqrt(C), scores = (s q)^T k,
   * attn = softmax(scores), out = v attn^T:
   * dv = gout attn, dattn = gout^T v, dscores = attn * (dattn - rowsum(dattn * attn)),
   * dq = s k dscores^T, dk = (s q) dscores; dqkv = the three stacked back on the part axis.
   */
  selfAttention(qkv: Value, nHead: number): Value {
    const [n, c3, h, w] = this.shape(qkv);
    const c = c3 / 3;
    const hd = c / nHead;
    const hw = h * w;
    const a = this.f.attention(qkv, nHead);
    const t = (x: Value) => this.raw('Transpose', [x], { perm: attr.ints([0, 1, 3, 2]) });
    return this.via(a.y, [n, c, h, w], [qkv], (gy) => {
      const gout = this.reshape(gy, [n, nHead, hd, hw]);
      const dv = this.raw('MatMul', [gout, a.attn]);
      const dattn = this.raw('MatMul', [t(gout), a.v]);
      const dot = this.reduceSum(this.raw('Mul', [dattn, a.attn]), [3], true);
      const dscores = this.raw('Mul', [a.attn, this.raw('Sub', [dattn, dot])]);
      const dq = this.raw('Mul', [this.raw('MatMul', [a.k, t(dscores)]), a.invSqrtC]);
      const dk = this.raw('MatMul', [a.qs, dscores]);
      const u = (x: Value) => this.reshape(x, [n, nHead, 1, hd, hw]);
      const cat = this.raw('Concat', [u(dq), u(dk), u(dv)], { axis: attr.int(2) });
      return [this.reshape(cat, [n, c3, h, w])];
    });
  }

  positionalEncoding(level: Value, dim: number): Value {
    const [n] = this.shape(level);
    const count = Math.floor(dim / 2);
    const y = this.f.positionalEncoding(level, dim);
    return this.via(y, [n, 2 * count], [level], (gy) => {
      const freqs = new Float32Array(count);
      for (let k = 0; k < count; k++) freqs[k] = Math.exp(-Math.log(1e4) * (k / count));
      const split = (v: Value) =>
        this.g.nodeN('Split', [v, this.g.constI64([count, count])], 2, { axis: attr.int(1) });
      // y = [sin(l f), cos(l f)]: d sin/dl = f cos, d cos/dl = -f sin, read from y itself
      const [sin, cos] = split(y);
      const [gs, gc] = split(gy);
      const d = this.raw('Sub', [this.raw('Mul', [gs, cos]), this.raw('Mul', [gc, sin])]);
      return [this.reduceSum(this.raw('Mul', [d, this.g.constF32(freqs, [1, count])]), [1], true)];
    });
  }

  // ---------------------------------------------------------------- loss maths

  abs(x: Value): Value {
    return this.via(this.f.abs(x), this.shape(x), [x], (gy) => [
      this.raw('Mul', [gy, this.raw('Sign', [x])]),
    ]);
  }

  square(x: Value): Value {
    return this.via(this.f.square(x), this.shape(x), [x], (gy) => [
      this.raw('Mul', [gy, this.raw('Mul', [x, this.scalar(2)])]),
    ]);
  }

  /** e^x (loss maths); d/dx = e^x. */
  exp(x: Value): Value {
    const y = this.f.exp(x);
    return this.via(y, this.shape(x), [x], (gy) => [this.raw('Mul', [gy, y])]);
  }

  /** ln x (loss maths); d/dx = 1 / x. */
  log(x: Value): Value {
    return this.via(this.f.log(x), this.shape(x), [x], (gy) => [this.raw('Div', [gy, x])]);
  }

  /** sqrt(x); d/dx = 1 / (2 sqrt(x)). */
  sqrt(x: Value): Value {
    const y = this.f.sqrt(x);
    return this.via(y, this.shape(x), [x], (gy) => [
      this.raw('Div', [gy, this.raw('Mul', [y, this.scalar(2)])]),
    ]);
  }

  addScalar(x: Value, s: number): Value {
    return this.via(this.f.addScalar(x, s), this.shape(x), [x], (gy) => [gy]);
  }

  /** max(x, s): the gradient reaches x where x >= s (as `max`, TensorFlow.js's convention). */
  maxScalar(x: Value, s: number): Value {
    return this.via(this.f.maxScalar(x, s), this.shape(x), [x], (gy) => [
      this.raw('Where', [this.raw('GreaterOrEqual', [x, this.scalar(s)]), gy, this.scalar(0)]),
    ]);
  }

  /** A 0/1 mask of `x < s` or `x > s`; no gradient flows through it. */
  compareScalar(x: Value, op: 'less' | 'greater', s: number): Value {
    return this.via(this.f.compareScalar(x, op, s), this.shape(x), [x], null);
  }

  /** image [N,C,H,W] * per-sample [N,1]. */
  mulSample(x: Value, s: Value): Value {
    const shape = this.shape(x);
    const [n] = shape;
    return this.via(this.f.mulSample(x, s), shape, [x, s], (gy) => [
      this.need(x) ? this.raw('Mul', [gy, this.reshape(s, [n, 1, 1, 1])]) : null,
      this.need(s)
        ? this.reshape(this.reduceSum(this.raw('Mul', [gy, x]), [1, 2, 3], false), [n, 1])
        : null,
    ]);
  }

  /** A one-element value broadcast to the shape of `like`; the gradient sums back. */
  broadcastLike(s: Value, like: Value): Value {
    const from = this.shape(s);
    if (numel(from) !== 1)
      throw new Error(`GradOps broadcastLike: [${from}] is not a one-element value`);
    return this.via(this.f.broadcastLike(s, like), this.shape(like), [s], (gy) => [
      this.reshape(this.raw('ReduceSum', [gy], { keepdims: attr.int(0) }), from),
    ]);
  }

  /** Channels [start, end) of an NCHW value; the gradient is zero-padded back. */
  sliceChannels(x: Value, start: number, end: number): Value {
    const shape = this.shape(x);
    const out = shape.slice();
    out[1] = end - start;
    return this.via(this.f.sliceChannels(x, start, end), out, [x], (gy) => [
      this.raw('Pad', [gy, this.g.constI64([0, start, 0, 0, 0, shape[1] - end, 0, 0])]),
    ]);
  }

  /** x forward, no gradient backward (PyTorch's `detach`). */
  stopGradient(x: Value): Value {
    const y = this.raw('Identity', [x]);
    this.shapes.set(y, this.shape(x).slice());
    return y;
  }

  /** Sum of every element -> scalar. */
  sumAll(x: Value): Value {
    const shape = this.shape(x);
    return this.via(this.f.sumAll(x), [], [x], (gy) => [
      this.raw('Expand', [gy, this.g.constI64(shape)]),
    ]);
  }

  /** Mean of every element -> scalar. */
  meanAll(x: Value): Value {
    return this.scale(this.sumAll(x), 1 / numel(this.shape(x)));
  }

  /**
   * Convolution with a constant kernel `[O, I/group, kh, kw]` (stride 1, zero padding `p`):
   * Sobel filters, colour transforms. Gradient: the transposed, flipped kernel.
   */
  constConv(
    x: Value,
    kernel: Float32Array,
    kShape: [number, number, number, number],
    options: { groups?: number; padding?: number } = {},
  ): Value {
    const group = options.groups ?? 1;
    const p = options.padding ?? 0;
    const [n, ci, h, w] = this.shape(x);
    const [co, cig, kh, kw] = kShape;
    if (cig * group !== ci)
      throw new Error(`GradOps constConv: kernel expects ${cig * group} channels, got ${ci}`);
    const y = this.f.constConv(x, kernel, kShape, options);
    this.record(y, [n, co, h + 2 * p - kh + 1, w + 2 * p - kw + 1], [x], (gy) => {
      const cog = co / group;
      const back = new Float32Array(kernel.length); // [ci, co/group, kh, kw]
      for (let gi = 0; gi < group; gi++)
        for (let o = 0; o < cog; o++)
          for (let i = 0; i < cig; i++)
            for (let ky = 0; ky < kh; ky++)
              for (let kx = 0; kx < kw; kx++)
                back[(((gi * cig + i) * cog + o) * kh + (kh - 1 - ky)) * kw + (kw - 1 - kx)] =
                  kernel[(((gi * cog + o) * cig + i) * kh + ky) * kw + kx];
      return [
        this.raw(
          'Conv',
          [gy, this.g.constF32(back, [ci, cog, kh, kw])],
          convAttrs(1, kh - 1 - p, group),
        ),
      ];
    });
    return y;
  }

  /** An ONNX node outside the tape, for values that need no gradient (loss targets). */
  constant(
    opType: string,
    inputs: Value[],
    shape: number[],
    attrs: Record<string, Attr> = {},
  ): Value {
    for (const i of inputs)
      if (this.needsGrad.has(i))
        throw new Error(`GradOps.constant: ${opType} reads ${i}, which carries gradients`);
    const y = this.raw(opType, inputs, attrs);
    this.shapes.set(y, shape.slice());
    return y;
  }

  // ---------------------------------------------------------------- checkpointing

  /**
   * A checkpointed segment y = fn(inputs) (Chen et al. 2016, "Training Deep Nets with
   * Sublinear Memory Cost"). Forward: fn's nodes as usual, but its tape entries are dropped,
   * so the backward pass reads none of its intermediate values. The tape gets one entry
   * whose backward rule runs fn again on the inputs and differentiates that copy. The copy
   * reads `input + 0 * gy[0]`: the data dependency on the incoming gradient keeps ORT from
   * running it before the backward pass reaches the segment, and from merging it with the
   * forward copy (common-subexpression elimination). Dropout reuses the forward's masks.
   * Without the `checkpoint` option it is fn(inputs).
   */
  checkpoint(inputs: Value[], fn: (inputs: Value[]) => Value): Value {
    if (!this.checkpointing || this.replayMasks) return fn(inputs);
    const tapeStart = this.tape.length;
    const maskStart = this.dropoutMasks.length;
    const y = fn(inputs);
    const inner = this.tape.splice(tapeStart);
    if (inner.length === 0) return y;
    const masks = this.dropoutMasks.slice(maskStart);
    const made = new Set(inner.map((e) => e.output));
    // Everything with a gradient the segment reads: its inputs and the parameters.
    const leaves = [...new Set(inner.flatMap((e) => e.inputs))].filter(
      (v) => !made.has(v) && this.needsGrad.has(v),
    );
    this.needsGrad.add(y);
    this.tape.push({
      inputs: leaves,
      output: y,
      backward: (gy) => {
        const zero = this.raw('Mul', [
          this.raw('Slice', [
            this.reshape(gy, [-1]),
            this.g.constI64([0]),
            this.g.constI64([1]),
            this.g.constI64([0]),
          ]),
          this.scalar(0),
        ]);
        const copies = new Map<Value, Value>();
        const again = inputs.map((x) => {
          const c = this.raw('Add', [x, zero]);
          this.shapes.set(c, this.shape(x).slice());
          if (this.needsGrad.has(x)) this.needsGrad.add(c);
          copies.set(x, c);
          return c;
        });
        const start = this.tape.length;
        this.replayMasks = masks.slice();
        let y2: Value;
        try {
          y2 = fn(again);
        } finally {
          this.replayMasks = null;
        }
        const acc = this.backprop(this.tape.splice(start), y2, gy);
        return leaves.map((v) => acc(copies.get(v) ?? v));
      },
    });
    return y;
  }

  // ---------------------------------------------------------------- backward

  /** Reverse pass over `tape` seeded with dloss/dy = gy; returns the summed gradient of a value. */
  private backprop(tape: TapeEntry[], y: Value, gy: Value): (v: Value) => Value | null {
    const acc = new Map<Value, Value[]>();
    const push = (v: Value, gv: Value) => {
      const l = acc.get(v);
      if (l) l.push(gv);
      else acc.set(v, [gv]);
    };
    const total = (v: Value): Value | null => {
      const l = acc.get(v);
      if (!l) return null;
      if (l.length === 1) return l[0];
      const s = this.raw('Sum', l);
      acc.set(v, [s]);
      return s;
    };
    push(y, gy);
    for (let i = tape.length - 1; i >= 0; i--) {
      const e = tape[i];
      const g = total(e.output);
      if (!g) continue;
      const gs = e.backward(g);
      e.inputs.forEach((inp, j) => {
        const gv = gs[j];
        if (gv && this.needsGrad.has(inp)) push(inp, gv);
      });
    }
    return total;
  }

  /**
   * Append the reverse pass for scalar `loss` and return dloss/dv for each `wrt` (a
   * zero-filled constant where `loss` does not depend on it).
   */
  gradients(loss: Value, wrt: Value[]): Map<Value, Value> {
    if (this.shape(loss).length !== 0) throw new Error('GradOps.gradients: loss must be a scalar');
    const total = this.backprop(this.tape, loss, this.scalar(1));
    const out = new Map<Value, Value>();
    for (const v of wrt) {
      const gv = total(v);
      out.set(v, gv ?? this.g.constF32(new Float32Array(numel(this.shape(v))), this.shape(v)));
    }
    return out;
  }
}

/** The [2n, n] matrix of align_corners bilinear x2 upsampling along one axis. */
export function bilinearMatrix(n: number): Float32Array {
  const m = 2 * n;
  const a = new Float32Array(m * n);
  for (let o = 0; o < m; o++) {
    if (n === 1) {
      a[o] = 1;
      continue;
    }
    const src = (o * (n - 1)) / (m - 1);
    const i0 = Math.min(Math.floor(src), n - 2);
    const f = src - i0;
    a[o * n + i0] += 1 - f;
    a[o * n + i0 + 1] += f;
  }
  return a;
}

function transpose2d(a: Float32Array, rows: number, cols: number): Float32Array {
  const t = new Float32Array(a.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) t[c * rows + r] = a[r * cols + c];
  return t;
}
