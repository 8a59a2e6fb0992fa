import type { Ops, ParamSpec } from '@dif-fusion/nn';
import type { FeatureOptions, UNetFeatures } from './unet';

/**
 * What diffusion, training graphs and feature extraction need of a denoiser network: the
 * SR3 `UNet` (`which_model_G: "sr3"`) and `SkipUNet` (`"skip_unet"`) both are one.
 */
export interface DenoiserNet {
  readonly config: { in_channel: number; out_channel: number; channel_mults: number[] };
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
