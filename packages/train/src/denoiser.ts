/**
 * The DDPM pieces the engines and the trainer compose: the SR3 UNet from @dif-fusion/unet behind a small
 * interface, and the validation-grid samples.
 */
import {
  type DiffusionConfig,
  learnsVariance,
  type SamplerName,
  type VarType,
} from '@dif-fusion/diffusion';
import { GaussianDiffusion } from '@dif-fusion/diffusion/tfjs';
import type { ParamSpec } from '@dif-fusion/nn';
import type { NoiseSchedule, Rng } from '@dif-fusion/schedules';
import { TfOps, type TfParamSource } from '@dif-fusion/tfjs';
import {
  type DenoiserNet,
  parseUNetConfig,
  SkipUNet,
  skipUnetConfig,
  UNet,
  type UNetConfigInput,
} from '@dif-fusion/unet';
import * as tf from '@tensorflow/tfjs-core';

/** A `model.unet` block (@dif-fusion/unet's one config, the official key names). */
type UnetJson = UNetConfigInput;
/** The denoiser network (official `model.which_model_G`; default sr3). */
export type WhichModelG = 'sr3' | 'skip_unet';

export interface Denoiser {
  /** The network (`which_model_G`): the SR3 UNet or skip_unet's. */
  readonly unet: DenoiserNet;
  readonly which: WhichModelG;
  readonly config: DenoiserNet['config'];
  /** Channels of the data (the config's out_channel; the UNet has twice them with learned_range). */
  readonly dataChannels: number;
  readonly params: ParamSpec[];
  /** Noise prediction for NHWC `[N,H,W,4]` at levels `[N,1]`. */
  eps(ops: TfOps, xNoisy: tf.Tensor, level: tf.Tensor): tf.Tensor;
  /**
   * Reversed decoder features (fd[0] = full resolution) for the fusion head, forward only.
   * The up path stops once fd[minDecoderIndex] exists; entries below it are undefined.
   */
  features(
    ops: TfOps,
    xNoisy: tf.Tensor,
    level: tf.Tensor,
    minDecoderIndex?: number,
  ): (tf.Tensor | undefined)[];
}

export interface DenoiserOptions {
  /**
   * The spec of fresh weights: `orthogonal` (default) as the official training script
   * (`init_weights(netG, init_type='orthogonal')`; BatchNorm weight 1, bias 0), or
   * PyTorch's `torch` default.
   */
  init?: 'torch' | 'orthogonal';
  /**
   * `model.diffusion.var_type`: with `learned_range` the network's final conv has twice
   * `out_channel` outputs ([mean output, v], improved-diffusion's `learn_sigma`); the
   * `model.unet` block keeps the data's channel count.
   */
  varType?: VarType;
  /**
   * `model.which_model_G`: the SR3 UNet (default) or the official skip_unet variant (which
   * reads no norm_groups or attn_res).
   */
  which?: WhichModelG;
}

/** The network of a `model.unet` block (and of the `model.diffusion` var type it serves). */
export function buildDenoiser(
  u: UnetJson,
  imageSize: number,
  options: DenoiserOptions = {},
): Denoiser {
  const init = options.init ?? 'orthogonal';
  const which = options.which ?? 'sr3';
  const double = <C extends { out_channel: number }>(c: C): C =>
    learnsVariance(options.varType) ? { ...c, out_channel: 2 * c.out_channel } : c;
  const unet: DenoiserNet =
    which === 'skip_unet'
      ? new SkipUNet(double(skipUnetConfig(u)), { init })
      : new UNet(double(parseUNetConfig({ ...u, image_size: imageSize })), { init });
  return {
    unet,
    which,
    config: unet.config,
    dataChannels: u.out_channel,
    params: unet.params(),
    eps: (ops, x, level) => unet.forward(ops, x, level),
    features: (ops, x, level, minDecoderIndex = 0) =>
      unet.features(ops, x, level, { minDecoderIndex }).fd,
  };
}

/** What {@link sampleImages} draws: counts, the sampler, and a conditional model's inputs. */
export interface SampleImagesOptions {
  n: number;
  /** Image width; also the height unless `height` is given. */
  size: number;
  /** Image height (default `size`): any multiple of the UNet's downsampling. */
  height?: number;
  /** Network passes (the chain respaced when fewer than T). */
  steps: number;
  rng: Rng;
  /** The `model.diffusion` block (@dif-fusion/diffusion's DiffusionConfig). */
  diffusion?: DiffusionConfig;
  sampler?: SamplerName;
  eta?: number;
  /** Conditional models: the condition images, NCHW `[n, 1, size, size]`. */
  condition?: Float32Array;
  guidance?: number;
  onStep?: (done: number, total: number) => void;
  /** Each state of the chain (GaussianDiffusion.run's onState), NCHW like the result. */
  onState?: (i: number, nchw: Float32Array) => void;
}

/**
 * Samples for the validation grids and `dif-train sample`: GaussianDiffusion.run (`steps`
 * timesteps spread over 0..T-1, the schedule respaced, x0 clipped; ancestral or DDIM).
 * Returns NCHW `[n, out_channel, height, size]` in [-1, 1].
 */
export async function sampleImages(
  denoiser: Denoiser,
  params: TfParamSource,
  schedule: NoiseSchedule,
  options: SampleImagesOptions,
): Promise<Float32Array> {
  const { n, size } = options;
  const height = options.height ?? size;
  const ops = new TfOps(params, { training: false });
  const c = denoiser.dataChannels;
  const condition =
    options.condition &&
    tf.transpose(
      tf.tensor(options.condition, [
        n,
        options.condition.length / (n * size * height),
        height,
        size,
      ]),
      [0, 2, 3, 1],
    );
  const x = new GaussianDiffusion(denoiser.unet, schedule, options.diffusion).run(
    ops,
    [n, height, size, c],
    options.rng,
    {
      steps: options.steps,
      sampler: options.sampler,
      eta: options.eta,
      condition,
      guidance: options.guidance,
      onStep: options.onStep,
      onState:
        options.onState &&
        ((i, x) => {
          const t = tf.transpose(x, [0, 3, 1, 2]);
          options.onState!(i, t.dataSync() as Float32Array);
          t.dispose();
        }),
    },
  );
  const nchw = tf.transpose(x, [0, 3, 1, 2]);
  const data = (await nchw.data()) as Float32Array;
  tf.dispose([x, nchw]);
  condition?.dispose();
  return data;
}
