/**
 * The building blocks of the SR3 UNet (Saharia et al., "Image Super-Resolution via
 * Iterative Refinement"), as Dif-Fusion's `model/sr3_modules/unet.py` defines them.
 * Each block is written once against `Ops<T>`, so the same code trains on tfjs and emits
 * ONNX nodes. Parameter names are the official state_dict keys.
 */
import {
  Conv2d,
  GroupNorm,
  Linear,
  Module,
  type Ops,
  type ParamSpec,
  type WeightInit,
} from '@dif-fusion/nn';

/**
 * Noise-level embedding (WaveGrad eq. 8 as used by SR3): sinusoidal encoding of the
 * continuous level sqrt(alpha_cumprod), then Linear(C, 4C), Swish, Linear(4C, C).
 * Keys `noise_level_mlp.1` and `noise_level_mlp.3` (index 0 is the encoding, 2 the Swish).
 */
export class NoiseLevelMlp extends Module {
  readonly fc1: Linear;
  readonly fc2: Linear;
  constructor(
    prefix: string,
    readonly dim: number,
    init?: WeightInit,
  ) {
    super(prefix);
    this.fc1 = new Linear(this.key('1'), dim, dim * 4, true, init);
    this.fc2 = new Linear(this.key('3'), dim * 4, dim, true, init);
  }
  params(): ParamSpec[] {
    return [...this.fc1.params(), ...this.fc2.params()];
  }
  forward<T>(ops: Ops<T>, level: T): T {
    return this.fc2.forward(
      ops,
      ops.swish(this.fc1.forward(ops, ops.positionalEncoding(level, this.dim))),
    );
  }
}

/**
 * FeatureWiseAffine: x + Linear(emb) broadcast over H, W, or with `use_affine_level`
 * (1 + gamma) * x + beta where [gamma, beta] = Linear(emb) split along channels.
 */
export class FeatureWiseAffine extends Module {
  readonly fc: Linear;
  constructor(
    prefix: string,
    embDim: number,
    readonly channels: number,
    readonly affine: boolean,
    init?: WeightInit,
  ) {
    super(prefix);
    this.fc = new Linear(this.key('noise_func.0'), embDim, channels * (affine ? 2 : 1), true, init);
  }
  params(): ParamSpec[] {
    return this.fc.params();
  }
  forward<T>(ops: Ops<T>, x: T, emb: T): T {
    const v = this.fc.forward(ops, emb);
    if (!this.affine) return ops.addChannel(x, v);
    const gamma = ops.sliceFeatures(v, 0, this.channels);
    const beta = ops.sliceFeatures(v, this.channels, 2 * this.channels);
    return ops.addChannel(ops.add(x, ops.mulChannel(x, gamma)), beta);
  }
}

/** Block: GroupNorm, Swish, Dropout (when > 0), 3x3 conv. Keys `block.0` (norm), `block.3` (conv). */
export class Block extends Module {
  readonly norm: GroupNorm;
  readonly conv: Conv2d;
  constructor(
    prefix: string,
    dim: number,
    dimOut: number,
    groups: number,
    readonly dropout = 0,
    init?: WeightInit,
  ) {
    super(prefix);
    this.norm = new GroupNorm(this.key('block.0'), groups, dim);
    this.conv = new Conv2d(this.key('block.3'), dim, dimOut, 3, { padding: 1, init });
  }
  params(): ParamSpec[] {
    return [...this.norm.params(), ...this.conv.params()];
  }
  /** `afterNorm` modulates the GroupNorm output (improved-diffusion's scale-shift norm). */
  forward<T>(ops: Ops<T>, x: T, afterNorm?: (h: T) => T): T {
    let h = this.norm.forward(ops, x);
    if (afterNorm) h = afterNorm(h);
    h = ops.swish(h);
    if (this.dropout > 0) h = ops.dropout(h, this.dropout);
    return this.conv.forward(ops, h);
  }
}

/**
 * ResnetBlock: block2(affine(block1(x), emb)) + res_conv(x) (1x1 conv when channels change).
 * With `scaleShift` (improved-diffusion's `use_scale_shift_norm`) the embedding modulates
 * block2's normalised input instead: conv(dropout(swish(GN(h) * (1 + scale) + shift))),
 * `[scale, shift] = Linear(emb)` (the same `noise_func` key, 2C outputs).
 */
export class ResnetBlock extends Module {
  readonly noiseFunc: FeatureWiseAffine | null;
  readonly scaleShift: boolean;
  readonly block1: Block;
  readonly block2: Block;
  readonly resConv: Conv2d | null;
  constructor(
    prefix: string,
    dim: number,
    dimOut: number,
    o: {
      embDim: number | null;
      groups: number;
      dropout: number;
      affine: boolean;
      scaleShift?: boolean;
      init?: WeightInit;
    },
  ) {
    super(prefix);
    this.scaleShift = o.scaleShift ?? false;
    this.noiseFunc = o.embDim
      ? new FeatureWiseAffine(
          this.key('noise_func'),
          o.embDim,
          dimOut,
          o.affine || this.scaleShift,
          o.init,
        )
      : null;
    this.block1 = new Block(this.key('block1'), dim, dimOut, o.groups, 0, o.init);
    this.block2 = new Block(this.key('block2'), dimOut, dimOut, o.groups, o.dropout, o.init);
    this.resConv =
      dim !== dimOut ? new Conv2d(this.key('res_conv'), dim, dimOut, 1, { init: o.init }) : null;
  }
  params(): ParamSpec[] {
    return [
      ...(this.noiseFunc?.params() ?? []),
      ...this.block1.params(),
      ...this.block2.params(),
      ...(this.resConv?.params() ?? []),
    ];
  }
  forward<T>(ops: Ops<T>, x: T, emb: T | null): T {
    let h = this.block1.forward(ops, x);
    const nf = emb ? this.noiseFunc : null;
    if (nf && this.scaleShift) h = this.block2.forward(ops, h, (n) => nf.forward(ops, n, emb!));
    else h = this.block2.forward(ops, nf ? nf.forward(ops, h, emb!) : h);
    return ops.add(h, this.resConv ? this.resConv.forward(ops, x) : x);
  }
}

/**
 * SelfAttention: GroupNorm, 1x1 qkv conv (no bias), softmax(q·k / sqrt(C)) v per head,
 * 1x1 output conv, residual.
 */
export class SelfAttention extends Module {
  readonly norm: GroupNorm;
  readonly qkv: Conv2d;
  readonly out: Conv2d;
  constructor(
    prefix: string,
    channels: number,
    groups: number,
    readonly nHead = 1,
    init?: WeightInit,
  ) {
    super(prefix);
    this.norm = new GroupNorm(this.key('norm'), groups, channels);
    this.qkv = new Conv2d(this.key('qkv'), channels, channels * 3, 1, { bias: false, init });
    this.out = new Conv2d(this.key('out'), channels, channels, 1, { init });
  }
  params(): ParamSpec[] {
    return [...this.norm.params(), ...this.qkv.params(), ...this.out.params()];
  }
  forward<T>(ops: Ops<T>, x: T): T {
    const qkv = this.qkv.forward(ops, this.norm.forward(ops, x));
    return ops.add(this.out.forward(ops, ops.selfAttention(qkv, this.nHead)), x);
  }
}

/** ResnetBlocWithAttn: ResnetBlock, then SelfAttention where the resolution is in attn_res. */
export class ResnetBlocWithAttn extends Module {
  readonly resBlock: ResnetBlock;
  readonly attn: SelfAttention | null;
  constructor(
    prefix: string,
    dim: number,
    readonly dimOut: number,
    o: {
      embDim: number | null;
      groups: number;
      dropout: number;
      affine: boolean;
      scaleShift?: boolean;
      withAttn: boolean;
      nHead?: number;
      init?: WeightInit;
    },
  ) {
    super(prefix);
    this.resBlock = new ResnetBlock(this.key('res_block'), dim, dimOut, o);
    this.attn = o.withAttn
      ? new SelfAttention(this.key('attn'), dimOut, o.groups, o.nHead ?? 1, o.init)
      : null;
  }
  params(): ParamSpec[] {
    return [...this.resBlock.params(), ...(this.attn?.params() ?? [])];
  }
  /** One gradient-checkpointing segment (`ops.checkpoint`), where the realisation has it. */
  forward<T>(ops: Ops<T>, x: T, emb: T | null): T {
    const run = ([h0, e]: T[]): T => {
      const h = this.resBlock.forward(ops, h0, e ?? null);
      return this.attn ? this.attn.forward(ops, h) : h;
    };
    const inputs = emb ? [x, emb] : [x];
    return ops.checkpoint ? ops.checkpoint(inputs, run) : run(inputs);
  }
}

/** Downsample: 3x3 conv, stride 2, padding 1. */
export class Downsample extends Module {
  readonly conv: Conv2d;
  constructor(prefix: string, dim: number, init?: WeightInit) {
    super(prefix);
    this.conv = new Conv2d(this.key('conv'), dim, dim, 3, { stride: 2, padding: 1, init });
  }
  params(): ParamSpec[] {
    return this.conv.params();
  }
  forward<T>(ops: Ops<T>, x: T): T {
    return this.conv.forward(ops, x);
  }
}

/** Upsample: nearest x2, then 3x3 conv. */
export class Upsample extends Module {
  readonly conv: Conv2d;
  constructor(prefix: string, dim: number, init?: WeightInit) {
    super(prefix);
    this.conv = new Conv2d(this.key('conv'), dim, dim, 3, { padding: 1, init });
  }
  params(): ParamSpec[] {
    return this.conv.params();
  }
  forward<T>(ops: Ops<T>, x: T): T {
    return this.conv.forward(ops, ops.upsampleNearest2x(x));
  }
}
