/**
 * Dif-Fusion's fusion head (official models/fs_modules/fs_head.py), written once against
 * `Ops<T>`: the same code runs on TensorFlow.js (training, tests) and emits ONNX nodes.
 * Parameter names are the official `state_dict` keys.
 */
import { Conv2d, collectParams, Linear, Module, type Ops, type ParamSpec } from '@dif-fusion/nn';
import type { UNetDecoderConfig } from '@dif-fusion/unet';
import {
  type FusionHeadConfig,
  type FusionHeadConfigInput,
  headConfigToJSON,
  normalizeHeadConfig,
  scaleChannels,
} from './config';

/** The official heads use orthogonal init for every conv and linear (networks.init_weights). */
const INIT = 'orthogonal' as const;

/**
 * Concurrent spatial and channel squeeze & excitation (Roy et al. 2018; the `se.py` the
 * official head imports): cSE(x) + sSE(x). The official module combines the two branches by
 * addition, not by the element-wise max of the original paper's code: verified against
 * the golden output (addition matches to ~2e-6; max is off by ~50%).
 * - cSE: mean over H, W -> fc1 (C -> C/r) -> ReLU -> fc2 (C/r -> C) -> sigmoid, scales channels;
 * - sSE: 1x1 conv C -> 1 -> sigmoid, scales positions.
 */
export class ChannelSpatialSE extends Module {
  readonly fc1: Linear;
  readonly fc2: Linear;
  readonly sseConv: Conv2d;

  constructor(
    prefix: string,
    readonly channels: number,
    readonly reduction = 2,
  ) {
    super(prefix);
    const reduced = Math.floor(channels / reduction);
    this.fc1 = new Linear(this.key('cSE.fc1'), channels, reduced, true, INIT);
    this.fc2 = new Linear(this.key('cSE.fc2'), reduced, channels, true, INIT);
    this.sseConv = new Conv2d(this.key('sSE.conv'), channels, 1, 1, { init: INIT });
  }

  params(): ParamSpec[] {
    return collectParams([this.fc1, this.fc2, this.sseConv]);
  }

  forward<T>(ops: Ops<T>, x: T): T {
    const squeeze = ops.meanSpatial(x);
    const excite = ops.sigmoid(this.fc2.forward(ops, ops.relu(this.fc1.forward(ops, squeeze))));
    const cse = ops.mulChannel(x, excite);
    const sse = ops.mulSpatial(x, ops.sigmoid(this.sseConv.forward(ops, x)));
    return ops.add(cse, sse);
  }
}

/** Official AttentionBlock: Conv3x3 -> ReLU -> ChannelSpatialSE (keys block.0, block.2). */
export class AttentionBlock extends Module {
  readonly conv: Conv2d;
  readonly se: ChannelSpatialSE;

  constructor(prefix: string, dim: number, dimOut: number) {
    super(prefix);
    this.conv = new Conv2d(this.key('block.0'), dim, dimOut, 3, { padding: 1, init: INIT });
    this.se = new ChannelSpatialSE(this.key('block.2'), dimOut, 2);
  }

  params(): ParamSpec[] {
    return collectParams([this.conv, this.se]);
  }

  forward<T>(ops: Ops<T>, x: T): T {
    return this.se.forward(ops, ops.relu(this.conv.forward(ops, x)));
  }
}

/**
 * Official Block: with several time steps, Conv1x1 (dim*K -> dim) -> ReLU -> Conv3x3 -> ReLU
 * (keys block.0, block.2); with one time step only the Conv3x3 (key block.2: the official
 * nn.Sequential keeps `None` in slots 0 and 1), unless `merge` keeps the Conv1x1 (dim -> dim).
 */
export class Block extends Module {
  readonly merge: Conv2d | null;
  readonly conv: Conv2d;

  constructor(
    prefix: string,
    dim: number,
    dimOut: number,
    nTimeSteps: number,
    merge = nTimeSteps > 1,
  ) {
    super(prefix);
    this.merge =
      merge || nTimeSteps > 1
        ? new Conv2d(this.key('block.0'), dim * nTimeSteps, dim, 1, { init: INIT })
        : null;
    this.conv = new Conv2d(this.key('block.2'), dim, dimOut, 3, { padding: 1, init: INIT });
  }

  params(): ParamSpec[] {
    return collectParams([this.merge, this.conv]);
  }

  forward<T>(ops: Ops<T>, x: T): T {
    const m = this.merge ? ops.relu(this.merge.forward(ops, x)) : x;
    return ops.relu(this.conv.forward(ops, m));
  }
}

/**
 * Official HeadLeakyRelu2d (conv3x3, leaky ReLU 0.2) and HeadTanh2d (conv3x3, tanh); the
 * `luma` and `weight` variants end in 2 tanh and sigmoid.
 */
export class HeadConv extends Module {
  readonly conv: Conv2d;

  constructor(
    prefix: string,
    inChannels: number,
    outChannels: number,
    readonly activation: 'leakyRelu' | 'tanh' | 'tanh2' | 'sigmoid',
  ) {
    super(prefix);
    this.conv = new Conv2d(this.key('conv'), inChannels, outChannels, 3, {
      padding: 1,
      init: INIT,
    });
  }

  params(): ParamSpec[] {
    return this.conv.params();
  }

  forward<T>(ops: Ops<T>, x: T): T {
    const y = this.conv.forward(ops, x);
    switch (this.activation) {
      case 'tanh':
        return ops.tanh(y);
      case 'tanh2':
        return ops.scale(ops.tanh(y), 2);
      case 'sigmoid':
        return ops.sigmoid(y);
      default:
        return ops.leakyRelu(y, 0.2);
    }
  }
}

/**
 * The fusion head. `forward(ops, feats)` takes `feats[k][i]`: reversed decoder feature `i`
 * (as the UNet's feature extraction returns `fd`) of time step `k` (in `time_steps` order),
 * each an image tensor `[N, C, H, W]` (logical layout of `ops`), and returns the fused
 * image `[N, out_channels, H, W]` in (-1, 1) at the resolution of the finest feature scale.
 * Only the indices in `requiredFeatureIndices()` are read; the others may be absent.
 */
export class FusionHead extends Module {
  readonly config: FusionHeadConfig;
  /** The decoder keys of the UNet whose features the head reads (its one config's). */
  readonly unet: UNetDecoderConfig;
  /** `decoder.{2i}`: Block of feat_scales[i] (coarsest first). */
  readonly blocks: Block[] = [];
  /** `decoder.{2i+1}`: AttentionBlock from feat_scales[i] to feat_scales[i+1]. */
  readonly attentions: AttentionBlock[] = [];
  readonly rgbDecode2: HeadConv;
  readonly rgbDecode1: HeadConv;

  /**
   * @param unet the config of the UNet whose decoder features the head reads (a `UNetConfig`
   * or its decoder keys): the head's channels are its.
   */
  constructor(config: FusionHeadConfigInput, unet: UNetDecoderConfig) {
    super('');
    const cfg = normalizeHeadConfig(config, unet);
    this.config = cfg;
    this.unet = {
      inner_channel: unet.inner_channel,
      channel_multiplier: unet.channel_multiplier.slice(),
      res_blocks: unet.res_blocks,
    };
    const scales = cfg.feat_scales;
    const k = cfg.time_steps.length;
    let idx = 0;
    for (let i = 0; i < scales.length; i++) {
      const dim = scaleChannels(unet, scales[i]);
      this.blocks.push(new Block(`decoder.${idx++}`, dim, dim, k, cfg.merge));
      if (i !== scales.length - 1) {
        const dimOut = scaleChannels(unet, scales[i + 1]);
        this.attentions.push(new AttentionBlock(`decoder.${idx++}`, dim, dimOut));
      }
    }
    // The official code hard-codes 128 = inner_channel 128 x channel_multiplier[0]: the
    // channels of the finest scale (for the default feat_scales, inner_channel x mult[0]).
    const finest = scaleChannels(unet, scales[scales.length - 1]);
    const output = cfg.output ?? 'rgb';
    this.rgbDecode2 = new HeadConv(
      'rgb_decode2',
      finest + (cfg.source_skip ? 4 : 0),
      64,
      'leakyRelu',
    );
    this.rgbDecode1 =
      output === 'rgb'
        ? new HeadConv('rgb_decode1', 64, cfg.out_channels, 'tanh')
        : new HeadConv('rgb_decode1', 64, 1, output === 'luma' ? 'tanh2' : 'sigmoid');
  }

  /** Rebuild from `toJSON()` output (or any FusionHeadConfigInput, e.g. with `t`) and its UNet's config. */
  static fromJSON(json: FusionHeadConfigInput | string, unet: UNetDecoderConfig): FusionHead {
    return new FusionHead(typeof json === 'string' ? JSON.parse(json) : json, unet);
  }

  toJSON(): FusionHeadConfig {
    return headConfigToJSON(this.config);
  }

  get mode(): FusionHeadConfig['mode'] {
    return this.config.mode;
  }

  /** Every parameter of the official state_dict, in its order. */
  params(): ParamSpec[] {
    const decoder: Module[] = [];
    for (let i = 0; i < this.blocks.length; i++) {
      decoder.push(this.blocks[i]);
      if (i < this.attentions.length) decoder.push(this.attentions[i]);
    }
    return collectParams([...decoder, this.rgbDecode2, this.rgbDecode1]);
  }

  /** The Blocks whose output reaches the result in this mode. */
  private liveBlocks(): Block[] {
    if (this.config.mode === 'full') return this.blocks;
    // reference: with one time step the official forward skips the Blocks entirely; the
    // finest Block is computed but discarded.
    if (this.config.time_steps.length === 1) return [];
    return this.blocks.slice(0, -1);
  }

  /**
   * The parameters the forward pass of this mode actually reads (the trainable set). In
   * `reference` mode the finest Block's parameters are not among them: they exist only so
   * that official checkpoints load.
   */
  usedParams(): ParamSpec[] {
    const live = new Set(
      collectParams([
        ...this.liveBlocks(),
        ...this.attentions,
        this.rgbDecode2,
        this.rgbDecode1,
      ]).map((p) => p.name),
    );
    return this.params().filter((p) => live.has(p.name));
  }

  /**
   * Reversed decoder feature indices the forward pass reads, ascending. `reference` does not
   * need the finest scale (its Block's output is dead); `full` needs every scale.
   */
  requiredFeatureIndices(): number[] {
    const scales =
      this.config.mode === 'full' ? this.config.feat_scales : this.config.feat_scales.slice(0, -1);
    return scales.slice().sort((a, b) => a - b);
  }

  /** Channels of reversed decoder feature `scale` (inner_channel x channel_multiplier of its level). */
  featureChannels(scale: number): number {
    return scaleChannels(this.unet, scale);
  }

  /** Whether `forward` needs the source images (variants `luma`, `weight`, `source_skip`). */
  get needsSources(): boolean {
    return (this.config.output ?? 'rgb') !== 'rgb' || this.config.source_skip === true;
  }

  /**
   * @param sources the visible `[N,3,H,W]` and infrared `[N,1,H,W]` images in [-1, 1], at the
   * output resolution: needed by the variants (`needsSources`), ignored otherwise.
   */
  forward<T>(ops: Ops<T>, feats: T[][], sources?: { vis: T; ir: T }): T {
    const cfg = this.config;
    if (this.needsSources && !sources)
      throw new Error('FusionHead: this head variant needs the source images');
    const k = cfg.time_steps.length;
    if (feats.length !== k)
      throw new Error(`FusionHead: expected features of ${k} time steps, got ${feats.length}`);
    const applyBlocks = cfg.mode === 'full' || k > 1;
    const nScales = cfg.feat_scales.length;
    // reference mode never reads the finest scale: its Block output is discarded.
    const lastLive = cfg.mode === 'full' ? nScales : nScales - 1;
    let x: T | null = null;
    for (let lvl = 0; lvl < lastLive; lvl++) {
      const scale = cfg.feat_scales[lvl];
      const stacked = feats.map((f, t) => {
        const v = f[scale];
        if (v === undefined || v === null)
          throw new Error(`FusionHead: missing feature ${scale} of time step index ${t}`);
        return v;
      });
      let fs = k > 1 ? ops.concatChannels(stacked) : stacked[0];
      if (applyBlocks) fs = this.blocks[lvl].forward(ops, fs);
      if (x !== null) fs = ops.add(fs, x);
      if (lvl < nScales - 1) {
        x = ops.upsampleBilinear2x(this.attentions[lvl].forward(ops, fs));
      } else {
        x = fs; // full mode: the finest Block's output (including + x) feeds the final layers
      }
    }
    let last = x as T;
    if (cfg.source_skip && sources) last = ops.concatChannels([last, sources.vis, sources.ir]);
    const y = this.rgbDecode1.forward(ops, this.rgbDecode2.forward(ops, last));
    const output = cfg.output ?? 'rgb';
    if (output === 'rgb' || !sources) return y;
    if (output === 'luma') return ops.add(sources.vis, ops.concatChannels([y, y, y])); // F = V + d
    // F = w V + (1 - w) I = I + w (V - I), the infrared image on every channel
    const ir3 = ops.concatChannels([sources.ir, sources.ir, sources.ir]);
    return ops.add(ir3, ops.mulSpatial(ops.axpby(1, sources.vis, -1, ir3), y));
  }
}
