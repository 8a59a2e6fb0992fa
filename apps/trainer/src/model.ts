/**
 * The DDPM pieces the trainer composes: the SR3 UNet from @dif-fusion/unet behind a small
 * interface, and the validation-grid samples.
 */
import { GaussianDiffusion } from '@dif-fusion/diffusion';
import { type ParamSpec, TfOps, type TfParamSource } from '@dif-fusion/nn';
import type { NoiseSchedule, Rng } from '@dif-fusion/schedules';
import { UNet, type UNetConfig, unetConfigFromReference } from '@dif-fusion/unet';
import * as tf from '@tensorflow/tfjs-core';
import type { UnetJson } from './config';

export interface Denoiser {
  readonly unet: UNet;
  readonly config: UNetConfig;
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

/**
 * The UNet of a `model.unet` block. `init` decides the spec of fresh weights: `orthogonal`
 * (default) as the official training script (`init_weights(netG, init_type='orthogonal')`).
 */
export function buildDenoiser(
  u: UnetJson,
  imageSize: number,
  init: 'torch' | 'orthogonal' = 'orthogonal',
): Denoiser {
  const config = unetConfigFromReference(u, imageSize);
  const unet = new UNet(config, { init });
  return {
    unet,
    config,
    params: unet.params(),
    eps: (ops, x, level) => unet.forward(ops, x, level),
    features: (ops, x, level, minDecoderIndex = 0) =>
      unet.features(ops, x, level, { minDecoderIndex }).fd,
  };
}

/**
 * Unconditional samples for the validation grids: GaussianDiffusion.sampleStrided (`steps`
 * timesteps spread over 0..T-1, the schedule respaced, x0 clipped). Returns NCHW
 * `[n, 4, size, size]` in [-1, 1].
 */
export async function sampleImages(
  denoiser: Denoiser,
  params: TfParamSource,
  schedule: NoiseSchedule,
  options: { n: number; size: number; steps: number; rng: Rng },
): Promise<Float32Array> {
  const { n, size } = options;
  const ops = new TfOps(params, { training: false });
  const x = new GaussianDiffusion(denoiser.unet, schedule).sampleStrided(
    ops,
    [n, size, size, 4],
    options.steps,
    options.rng,
  );
  const nchw = tf.transpose(x, [0, 3, 1, 2]);
  const data = (await nchw.data()) as Float32Array;
  tf.dispose([x, nchw]);
  return data;
}
