/**
 * FLOP counting by running a network's forward code on shapes (the fusion graph's count,
 * `fusionFlops`, is @dif-fusion/export's): `FlopOps` realises `Ops`
 * on logical shapes (images [N, C, H, W], vectors [N, F]) and tallies multiply-adds of
 * convolutions, linear layers and attention matmuls (2 FLOPs each) plus element-wise work.
 */
import type { Ops } from '@dif-fusion/nn';

export type Shape = number[];

export interface FlopCount {
  /** 2 x multiply-adds of Conv, Gemm and attention MatMul: the arithmetic that bounds speed. */
  matmul: number;
  /** One per output element of every other op (norms, activations, adds, resizes...). */
  elementwise: number;
}

const size = (s: Shape) => s.reduce((a, b) => a * b, 1);

export class FlopOps implements Ops<Shape> {
  readonly kind = 'onnx' as const;
  readonly training = false;
  readonly count: FlopCount = { matmul: 0, elementwise: 0 };

  constructor(private readonly paramShapes: ReadonlyMap<string, { shape: readonly number[] }>) {}

  private ew(s: Shape, perElement = 1): Shape {
    this.count.elementwise += size(s) * perElement;
    return s;
  }

  param(name: string): Shape {
    const p = this.paramShapes.get(name);
    if (!p) throw new Error(`missing weight ${name}`);
    return p.shape.slice();
  }
  conv2d(
    x: Shape,
    w: Shape,
    bias: Shape | null,
    o: { stride?: number; padding?: number } = {},
  ): Shape {
    const [n, , h, wd] = x;
    const [out, inC, kh, kw] = w;
    const s = o.stride ?? 1;
    const p = o.padding ?? 0;
    const ho = Math.floor((h + 2 * p - kh) / s) + 1;
    const wo = Math.floor((wd + 2 * p - kw) / s) + 1;
    this.count.matmul += 2 * n * out * ho * wo * inC * kh * kw;
    const y = [n, out, ho, wo];
    if (bias) this.ew(y);
    return y;
  }
  linear(x: Shape, w: Shape, bias: Shape | null): Shape {
    this.count.matmul += 2 * x[0] * w[0] * w[1];
    return bias ? this.ew([x[0], w[0]]) : [x[0], w[0]];
  }
  groupNorm(x: Shape): Shape {
    return this.ew(x.slice(), 5);
  }
  batchNorm2d(x: Shape): Shape {
    return this.ew(x.slice(), 2);
  }
  avgPool2x2(x: Shape): Shape {
    const [n, c, h, w] = x;
    this.ew(x.slice());
    return [n, c, h / 2, w / 2];
  }
  add(a: Shape): Shape {
    return this.ew(a.slice());
  }
  mul(a: Shape): Shape {
    return this.ew(a.slice());
  }
  max(a: Shape): Shape {
    return this.ew(a.slice());
  }
  scale(x: Shape): Shape {
    return this.ew(x.slice());
  }
  axpby(_a: number, x: Shape): Shape {
    return this.ew(x.slice(), 3);
  }
  swish(x: Shape): Shape {
    return this.ew(x.slice(), 2);
  }
  relu(x: Shape): Shape {
    return this.ew(x.slice());
  }
  leakyRelu(x: Shape): Shape {
    return this.ew(x.slice());
  }
  sigmoid(x: Shape): Shape {
    return this.ew(x.slice());
  }
  tanh(x: Shape): Shape {
    return this.ew(x.slice());
  }
  dropout(x: Shape): Shape {
    return x;
  }
  addChannel(x: Shape): Shape {
    return this.ew(x.slice());
  }
  mulChannel(x: Shape): Shape {
    return this.ew(x.slice());
  }
  mulSpatial(x: Shape): Shape {
    return this.ew(x.slice());
  }
  sliceFeatures(v: Shape, start: number, end: number): Shape {
    return [v[0], end - start];
  }
  concatChannels(xs: Shape[]): Shape {
    const c = xs.reduce((a, s) => a + s[1], 0);
    return this.ew([xs[0][0], c, xs[0][2], xs[0][3]]);
  }
  concatBatch(xs: Shape[]): Shape {
    return [xs.reduce((a, s) => a + s[0], 0), ...xs[0].slice(1)];
  }
  splitBatch(x: Shape, parts: number): Shape[] {
    return Array.from({ length: parts }, () => [x[0] / parts, ...x.slice(1)]);
  }
  meanSpatial(x: Shape): Shape {
    this.ew(x);
    return [x[0], x[1]];
  }
  upsampleNearest2x(x: Shape): Shape {
    return this.ew([x[0], x[1], 2 * x[2], 2 * x[3]]);
  }
  upsampleBilinear2x(x: Shape): Shape {
    return this.ew([x[0], x[1], 2 * x[2], 2 * x[3]], 4);
  }
  selfAttention(qkv: Shape): Shape {
    const [n, c3, h, w] = qkv;
    const c = c3 / 3;
    const hw = h * w;
    this.count.matmul += 2 * (2 * n * hw * hw * c);
    this.count.elementwise += n * hw * hw * 3;
    return [n, c, h, w];
  }
  positionalEncoding(level: Shape, dim: number): Shape {
    return this.ew([level[0], dim]);
  }
  // loss maths: one element-wise operation per output element, reductions per input element
  sub(a: Shape): Shape {
    return this.ew(a.slice());
  }
  abs(x: Shape): Shape {
    return this.ew(x.slice());
  }
  square(x: Shape): Shape {
    return this.ew(x.slice());
  }
  sqrt(x: Shape): Shape {
    return this.ew(x.slice());
  }
  exp(x: Shape): Shape {
    return this.ew(x.slice());
  }
  log(x: Shape): Shape {
    return this.ew(x.slice());
  }
  addScalar(x: Shape): Shape {
    return this.ew(x.slice());
  }
  maxScalar(x: Shape): Shape {
    return this.ew(x.slice());
  }
  compareScalar(x: Shape): Shape {
    return this.ew(x.slice());
  }
  mulSample(x: Shape): Shape {
    return this.ew(x.slice());
  }
  broadcastLike(_s: Shape, like: Shape): Shape {
    return like.slice();
  }
  sumAll(x: Shape): Shape {
    this.ew(x);
    return [];
  }
  meanAll(x: Shape): Shape {
    this.ew(x);
    return [];
  }
  sliceChannels(x: Shape, start: number, end: number): Shape {
    return [x[0], end - start, x[2], x[3]];
  }
  stopGradient(x: Shape): Shape {
    return x;
  }
  constConv(
    x: Shape,
    _kernel: Float32Array,
    k: [number, number, number, number],
    o: { groups?: number; padding?: number } = {},
  ): Shape {
    const [n, , h, w] = x;
    const p = o.padding ?? 0;
    const y = [n, k[0], h + 2 * p - k[2] + 1, w + 2 * p - k[3] + 1];
    this.count.matmul += 2 * size(y) * k[1] * k[2] * k[3];
    return y;
  }
}
