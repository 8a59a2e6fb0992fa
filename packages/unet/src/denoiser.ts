import { Module, type Ops, type ParamSpec } from '@dif-fusion/nn';

export interface FeatureOptions {
  /**
   * Lowest index (into the reversed decoder features) that is needed: the up path stops
   * as soon as `fd[minDecoderIndex]` exists, so later layers cost nothing (and are absent
   * from an exported graph). Default 0: the whole up path.
   */
  minDecoderIndex?: number;
}

export interface UNetFeatures<T> {
  /** Encoder features: the init conv output, then every down-path layer's output. */
  fe: T[];
  /**
   * Decoder features: each up-path ResnetBlocWithAttn output, reversed as the official
   * code returns them (`fd[0]` is the last, full-resolution block). Entries below
   * `minDecoderIndex` are undefined.
   */
  fd: T[];
}

/**
 * What diffusion, training graphs and feature extraction need of a denoiser network: the
 * SR3 `UNet` (`which_model_G: "sr3"`) and `SkipUNet` (`"skip_unet"`) both are one.
 */
export interface DenoiserNet {
  readonly config: { in_channel: number; out_channel: number; channel_multiplier: number[] };
  /** Parameters and buffers (official state_dict keys). */
  params(): ParamSpec[];
  /** The network's output for x `[N, in, H, W]` at levels `[N, 1]`. */
  forward<T>(ops: Ops<T>, x: T, level: T): T;
  /** Encoder and reversed decoder features (`fd[0]` = the last up block). */
  features<T>(ops: Ops<T>, x: T, level: T, options?: FeatureOptions): UNetFeatures<T>;
  readonly decoderCount: number;
  decoderChannels(): number[];
  decoderScale(i: number): number;
  /** Input height and width must be multiples of this. */
  readonly sizeMultiple: number;
}

/**
 * The decoder bookkeeping both networks share: each constructor records its up blocks'
 * channels and scales in `upBlocks` (execution order) and implements `run`, one pass that
 * stops after `fd[minIndex]` unless `final` asks for the network's output.
 */
export abstract class DecoderNet extends Module implements DenoiserNet {
  abstract readonly config: DenoiserNet['config'];
  /** Channels and scale (downsampling factor) of each up block's output, in execution order. */
  protected readonly upBlocks: Array<{ channels: number; scale: number }> = [];

  abstract params(): ParamSpec[];

  protected abstract run<T>(
    ops: Ops<T>,
    x: T,
    level: T,
    minIndex: number,
    final: boolean,
  ): UNetFeatures<T> & { out?: T };

  /** Number of decoder features (`fd.length`): one per up block. */
  get decoderCount(): number {
    return this.upBlocks.length;
  }

  /** Channels of `fd[i]`, in the reversed order of `fd`. */
  decoderChannels(): number[] {
    return this.upBlocks.map((b) => b.channels).reverse();
  }

  /** Downsampling factor of `fd[i]` relative to the input (1 = full resolution). */
  decoderScale(i: number): number {
    const b = this.upBlocks[this.upBlocks.length - 1 - i];
    if (!b)
      throw new Error(`decoder feature index ${i} out of range 0..${this.upBlocks.length - 1}`);
    return b.scale;
  }

  /** Input height and width must be multiples of this. */
  get sizeMultiple(): number {
    return 2 ** (this.config.channel_multiplier.length - 1);
  }

  /** The network's output (the noise prediction): x `[N, in, H, W]`, level `[N, 1]`. */
  forward<T>(ops: Ops<T>, x: T, level: T): T {
    return this.run(ops, x, level, 0, true).out as T;
  }

  /** Encoder and reversed decoder features (the official `feat_need=True` path for SR3). */
  features<T>(ops: Ops<T>, x: T, level: T, options: FeatureOptions = {}): UNetFeatures<T> {
    const min = options.minDecoderIndex ?? 0;
    if (!Number.isInteger(min) || min < 0 || min >= this.decoderCount)
      throw new Error(`minDecoderIndex ${min} out of range 0..${this.decoderCount - 1}`);
    const { fe, fd } = this.run(ops, x, level, min, false);
    return { fe, fd };
  }
}
