/**
 * The official `skip_unet` variant (`model/sr3_modules/skip_unet.py`, `which_model_G:
 * "skip_unet"`): a BigGAN-style residual UNet with BatchNorm, additive skip connections
 * and the WaveGrad noise-level encoding without an MLP. Defined once against `Ops<T>` like
 * the SR3 UNet; parameter names are the official state_dict keys (BatchNorm buffers
 * included, flagged `buffer`).
 */
import {
  BatchNorm2d,
  Conv2d,
  Module,
  type Ops,
  type ParamSpec,
  type WeightInit,
} from '@dif-fusion/nn';
import { FeatureWiseAffine } from './blocks';
import { parseUNetConfig, type UNetConfig } from './config';
import { DecoderNet, type UNetFeatures } from './denoiser';

/** WaveGrad's LINEAR_SCALE: the encoding reads 5000 * level. */
export const SKIP_UNET_LINEAR_SCALE = 5000;

/** The official default skip_range: skips on the last 1/sqrt(2) of the up path. */
export const DEFAULT_SKIP_RANGE = 1 / Math.sqrt(2);

/**
 * skip_unet's options: the keys of the one `model.unet` block ({@link UNetConfig}) it reads;
 * the others (`norm_groups`, `attn_res`, `image_size`, `with_noise_level_emb`) have no effect
 * on it, as in the official code.
 */
export type SkipUNetConfig = Pick<
  UNetConfig,
  'in_channel' | 'out_channel' | 'inner_channel' | 'channel_multiplier' | 'res_blocks' | 'dropout'
> &
  Pick<UNetConfig, 'use_affine_level' | 'skip_range'>;

/**
 * skip_unet's config from a `model.unet` block (checked as the block is, with skip_unet's
 * rules: res_blocks >= 2, no sr3-only option); throws one-line errors.
 */
export function skipUnetConfig(u: unknown): SkipUNetConfig {
  const o = (u && typeof u === 'object' ? u : {}) as Record<string, unknown>;
  const c = parseUNetConfig(
    // skip_unet has no GroupNorm nor attention: those keys are not checked against it.
    { ...o, norm_groups: 1, attn_res: [], image_size: 1 },
    { which: 'skip_unet' },
  );
  const out: SkipUNetConfig = {
    in_channel: c.in_channel,
    out_channel: c.out_channel,
    inner_channel: c.inner_channel,
    channel_multiplier: c.channel_multiplier,
    // res_blocks 1 gives the up path more blocks than there are skip features (the official
    // forward pops an empty list).
    res_blocks: c.res_blocks,
    dropout: c.dropout,
    use_affine_level: c.use_affine_level ?? false,
  };
  if (c.skip_range !== undefined) out.skip_range = c.skip_range;
  return out;
}

/** nn.Sequential(nn.Conv2d(...)) style: index `i` of a Sequential under `prefix`. */
const at = (prefix: string, i: number) => `${prefix}.${i}`;

/**
 * ResBlockDown: x -> ReLU, 3x3 conv (`model_base1.1`), FeatureWiseAffine (`noise_func`),
 * ReLU, Dropout, 3x3 conv (`model_base2.2`), AvgPool2d(2) when stride 2; plus the bypass
 * 1x1 conv (`bypass.0`) + AvgPool2d(2).
 */
export class ResBlockDown extends Module {
  readonly conv1: Conv2d;
  readonly conv2: Conv2d;
  readonly bypass: Conv2d;
  readonly noise: FeatureWiseAffine;
  constructor(
    prefix: string,
    inCh: number,
    outCh: number,
    noiseCh: number,
    readonly o: { stride: 1 | 2; dropout: number; affine: boolean; init?: WeightInit },
  ) {
    super(prefix);
    const init = o.init;
    this.noise = new FeatureWiseAffine(this.key('noise_func'), noiseCh, outCh, o.affine, init);
    this.conv1 = new Conv2d(at(this.key('model_base1'), 1), inCh, outCh, 3, { padding: 1, init });
    this.conv2 = new Conv2d(at(this.key('model_base2'), 2), outCh, outCh, 3, { padding: 1, init });
    this.bypass = new Conv2d(at(this.key('bypass'), 0), inCh, outCh, 1, { init });
  }
  params(): ParamSpec[] {
    return [this.noise, this.conv1, this.conv2, this.bypass].flatMap((m) => m.params());
  }
  forward<T>(ops: Ops<T>, x: T, emb: T): T {
    const pool = (t: T) => (this.o.stride === 2 ? ops.avgPool2x2(t) : t);
    let h = this.noise.forward(ops, this.conv1.forward(ops, ops.relu(x)), emb);
    h = pool(this.conv2.forward(ops, ops.dropout(ops.relu(h), this.o.dropout)));
    return ops.add(h, pool(this.bypass.forward(ops, x)));
  }
}

/**
 * ResBlockUp: x -> BatchNorm (`model1.0`), ReLU, nearest x2 when stride 2, 3x3 conv
 * (`model1.3`), FeatureWiseAffine, BatchNorm (`model2.0`), ReLU, Dropout, 3x3 conv
 * (`model2.3`); plus the bypass nearest x2 + 1x1 conv (`bypass.1`).
 */
export class ResBlockUp extends Module {
  readonly bn1: BatchNorm2d;
  readonly conv1: Conv2d;
  readonly bn2: BatchNorm2d;
  readonly conv2: Conv2d;
  readonly bypass: Conv2d;
  readonly noise: FeatureWiseAffine;
  constructor(
    prefix: string,
    inCh: number,
    outCh: number,
    noiseCh: number,
    readonly o: { stride: 1 | 2; dropout: number; affine: boolean; init?: WeightInit },
  ) {
    super(prefix);
    const init = o.init;
    this.noise = new FeatureWiseAffine(this.key('noise_func'), noiseCh, outCh, o.affine, init);
    this.bn1 = new BatchNorm2d(at(this.key('model1'), 0), inCh);
    this.conv1 = new Conv2d(at(this.key('model1'), 3), inCh, outCh, 3, { padding: 1, init });
    this.bn2 = new BatchNorm2d(at(this.key('model2'), 0), outCh);
    this.conv2 = new Conv2d(at(this.key('model2'), 3), outCh, outCh, 3, { padding: 1, init });
    this.bypass = new Conv2d(at(this.key('bypass'), 1), inCh, outCh, 1, { init });
  }
  params(): ParamSpec[] {
    return [this.noise, this.bn1, this.conv1, this.bn2, this.conv2, this.bypass].flatMap((m) =>
      m.params(),
    );
  }
  forward<T>(ops: Ops<T>, x: T, emb: T): T {
    const up = (t: T) => (this.o.stride === 2 ? ops.upsampleNearest2x(t) : t);
    let h = this.conv1.forward(ops, up(ops.relu(this.bn1.forward(ops, x))));
    h = this.noise.forward(ops, h, emb);
    h = ops.dropout(ops.relu(this.bn2.forward(ops, h)), this.o.dropout);
    return ops.add(this.conv2.forward(ops, h), this.bypass.forward(ops, up(x)));
  }
}

/**
 * skip_unet's UNet: emb = PositionalEncoding(4 * inner_channel)(5000 * level) (no MLP),
 * start_conv 3x3, the down path (per level res_blocks - 1 ResBlockDown, then a stride-2 one
 * except at the last level), the up path (per level, deepest first: a ResBlockUp changing
 * channels, a stride-2 one except at the deepest level, res_blocks - 2 more), where up
 * block k >= skip_start = floor((1 - skip_range) * levels * res_blocks) adds the matching
 * down-path output, and final_conv = BatchNorm, ReLU, 3x3 conv.
 */
export class SkipUNet extends DecoderNet {
  readonly config: SkipUNetConfig;
  readonly startConv: Conv2d;
  readonly downs: ResBlockDown[] = [];
  readonly ups: ResBlockUp[] = [];
  readonly finalNorm: BatchNorm2d;
  readonly finalConv: Conv2d;
  readonly noiseChannels: number;
  readonly skipStart: number;

  constructor(config: SkipUNetConfig, options: { init?: WeightInit } = {}) {
    super('');
    const c = skipUnetConfig(config);
    this.config = c;
    const init = options.init;
    const noiseCh = c.inner_channel * 4;
    this.noiseChannels = noiseCh;
    const levels = c.channel_multiplier.length;
    this.skipStart = Math.trunc((1 - (c.skip_range ?? DEFAULT_SKIP_RANGE)) * levels * c.res_blocks);
    const o = (stride: 1 | 2) => ({
      stride,
      dropout: c.dropout,
      affine: !!c.use_affine_level,
      init,
    });
    this.startConv = new Conv2d('start_conv', c.in_channel, c.inner_channel, 3, {
      padding: 1,
      init,
    });
    let pre = c.inner_channel;
    let scale = 1;
    const down = (inCh: number, outCh: number, stride: 1 | 2) =>
      this.downs.push(
        new ResBlockDown(`downs.${this.downs.length}`, inCh, outCh, noiseCh, o(stride)),
      );
    for (let i = 0; i < levels; i++) {
      const ch = c.inner_channel * c.channel_multiplier[i];
      for (let r = 0; r < c.res_blocks - 1; r++) {
        down(pre, ch, 1);
        pre = ch;
      }
      if (i < levels - 1) {
        down(pre, pre, 2);
        scale *= 2;
      }
    }
    const up = (inCh: number, outCh: number, stride: 1 | 2) => {
      this.ups.push(new ResBlockUp(`ups.${this.ups.length}`, inCh, outCh, noiseCh, o(stride)));
      if (stride === 2) scale /= 2;
      this.upBlocks.push({ channels: outCh, scale });
    };
    for (let i = levels - 1; i >= 0; i--) {
      const ch = c.inner_channel * c.channel_multiplier[i];
      up(pre, ch, 1);
      pre = ch;
      if (i < levels - 1) up(pre, pre, 2);
      for (let r = 0; r < c.res_blocks - 2; r++) {
        up(pre, ch, 1);
        pre = ch;
      }
    }
    this.finalNorm = new BatchNorm2d('final_conv.0', pre);
    this.finalConv = new Conv2d('final_conv.2', pre, c.out_channel, 3, { padding: 1, init });
  }

  params(): ParamSpec[] {
    return [
      ...this.startConv.params(),
      ...this.downs.flatMap((l) => l.params()),
      ...this.ups.flatMap((l) => l.params()),
      ...this.finalNorm.params(),
      ...this.finalConv.params(),
    ];
  }

  protected run<T>(
    ops: Ops<T>,
    x: T,
    level: T,
    minIndex: number,
    final: boolean,
  ): UNetFeatures<T> & { out?: T } {
    const emb = ops.positionalEncoding(
      ops.scale(level, SKIP_UNET_LINEAR_SCALE),
      this.noiseChannels,
    );
    let h = this.startConv.forward(ops, x);
    const fe: T[] = [h];
    const feats: T[] = [];
    for (const layer of this.downs) {
      h = layer.forward(ops, h, emb);
      feats.push(h);
      fe.push(h);
    }
    const n = this.decoderCount;
    const fd: T[] = new Array(n);
    for (const [k, layer] of this.ups.entries()) {
      const info = feats.pop()!;
      h = layer.forward(ops, h, emb);
      if (k >= this.skipStart) h = ops.add(h, info);
      fd[n - 1 - k] = h;
      if (!final && n - 1 - k <= minIndex) break;
    }
    const out = final
      ? this.finalConv.forward(ops, ops.relu(this.finalNorm.forward(ops, h)))
      : undefined;
    return { fe, fd, out };
  }
}
