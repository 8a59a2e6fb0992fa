/**
 * FLOP counting by running a network's forward code on shapes: `FlopOps` realises `Ops`
 * on logical shapes (images [N, C, H, W], vectors [N, F]) and tallies multiply-adds of
 * convolutions, linear layers and attention matmuls (2 FLOPs each) plus element-wise work.
 */
import type { FusionHead } from '@dif-fusion/fusion-head';
import type { Ops } from '@dif-fusion/nn';
import type { UNet } from '@dif-fusion/unet';

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

export interface FusionFlops {
  /** All of the fusion graph: K pruned UNet passes + the head (matmul + element-wise). */
  total: FlopCount;
  /** The pruned UNet passes alone (all K steps). */
  unet: FlopCount;
  /** One full UNet pass (eps, no pruning) for one time step, for comparison. */
  fullPass: FlopCount;
  head: FlopCount;
}

/** Shapes of a network's parameters, as FlopOps takes them. */
function shapesOf(
  params: Array<{ name: string; shape: number[] }>,
): Map<string, { shape: number[] }> {
  return new Map(params.map((p) => [p.name, { shape: p.shape }]));
}

/**
 * FLOPs of the exported fusion graph for an `n x 3 x height x width` input: the UNet's
 * feature pass on K*N noisy inputs, stopped at the head's finest feature, then the head.
 */
export function fusionFlops(
  unet: UNet,
  head: FusionHead,
  shape: { n?: number; height: number; width: number },
): FusionFlops {
  const n = shape.n ?? 1;
  const k = head.config.time_steps.length;
  const { height: h, width: w } = shape;
  const u = new FlopOps(shapesOf(unet.params()));
  const min = Math.min(...head.requiredFeatureIndices());
  const { fd } = unet.features(u, [k * n, unet.config.in_channel, h, w], [k * n, 1], {
    minDecoderIndex: min,
  });
  const full = new FlopOps(shapesOf(unet.params()));
  unet.forward(full, [n, unet.config.in_channel, h, w], [n, 1]);
  const hd = new FlopOps(shapesOf(head.params()));
  const feats = Array.from({ length: k }, () => fd.map((s) => (s ? [n, s[1], s[2], s[3]] : s)));
  head.forward(hd, feats, { vis: [n, 3, h, w], ir: [n, 1, h, w] });
  return {
    total: {
      matmul: u.count.matmul + hd.count.matmul,
      elementwise: u.count.elementwise + hd.count.elementwise,
    },
    unet: u.count,
    fullPass: full.count,
    head: hd.count,
  };
}
