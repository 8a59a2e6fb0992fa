/**
 * The DDPM pieces the trainer composes: the SR3 UNet from @dif-fusion/unet behind a small
 * interface, the convolution to use per backend, and the strided sampler for the
 * validation grids.
 */
import {
  type Conv2dFn,
  fastConv2d,
  type ParamSpec,
  TfOps,
  type TfParamSource,
} from '@dif-fusion/nn';
import { type NoiseSchedule, type Rng, stridedTimesteps } from '@dif-fusion/schedules';
import { UNet, type UNetConfig } from '@dif-fusion/unet';
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

/** The UNet config of a reference `model.unet` block. */
export function unetConfig(u: UnetJson, imageSize: number): UNetConfig {
  return {
    in_channel: u.in_channel,
    out_channel: u.out_channel,
    inner_channel: u.inner_channel,
    norm_groups: u.norm_groups ?? 32,
    channel_mults: u.channel_multiplier.slice(),
    attn_res: (u.attn_res ?? []).slice(),
    res_blocks: u.res_blocks,
    dropout: u.dropout,
    image_size: imageSize,
  };
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
  const config = unetConfig(u, imageSize);
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

/** fastConv2d where tfjs's conv gradients are slow or missing (wasm, cpu); tf.conv2d on native backends. */
export function convFor(backend: string): Conv2dFn | undefined {
  return backend === 'tensorflow' || backend === 'webgl' ? undefined : fastConv2d;
}

/**
 * Unconditional samples with the strided (respaced) DDPM sampler: `steps` timesteps spread
 * over 0..T-1, betas recomputed so alphas_cumprod match at the kept steps, the SR3 noise
 * level sqrt(alphas_cumprod) fed to the UNet, x0 clipped to [-1, 1]. Returns NCHW
 * `[n, 4, size, size]` in [-1, 1].
 */
export async function sampleImages(
  denoiser: Denoiser,
  params: TfParamSource,
  schedule: NoiseSchedule,
  options: { n: number; size: number; steps: number; rng: Rng },
): Promise<Float32Array> {
  const { n, size, rng } = options;
  const steps = Math.min(options.steps, schedule.numTimesteps);
  const kept = stridedTimesteps(schedule.numTimesteps, steps);
  const betas = schedule.respacedBetas(kept);
  const ops = new TfOps(params, { training: false });
  const shape = [n, size, size, 4];
  const count = n * size * size * 4;
  let x = tf.tensor(rng.normalArray(count), shape);
  let acp = 1;
  const acps: number[] = [];
  for (const b of betas) {
    acp *= 1 - b;
    acps.push(acp);
  }
  for (let i = steps - 1; i >= 0; i--) {
    const a = acps[i];
    const aPrev = i > 0 ? acps[i - 1] : 1;
    const beta = betas[i];
    const level = Math.sqrt(a);
    const next = tf.tidy(() => {
      const eps = denoiser.eps(ops, x, tf.fill([n, 1], level));
      const x0 = tf.clipByValue(
        tf.sub(tf.mul(x, Math.sqrt(1 / a)), tf.mul(eps, Math.sqrt(1 / a - 1))),
        -1,
        1,
      );
      const c1 = (beta * Math.sqrt(aPrev)) / (1 - a);
      const c2 = ((1 - aPrev) * Math.sqrt(1 - beta)) / (1 - a);
      const mean = tf.add(tf.mul(x0, c1), tf.mul(x, c2));
      if (i === 0) return mean;
      const variance = (beta * (1 - aPrev)) / (1 - a);
      const sd = Math.exp(0.5 * Math.log(Math.max(variance, 1e-20)));
      return tf.add(mean, tf.mul(tf.tensor(rng.normalArray(count), shape), sd));
    });
    x.dispose();
    x = next;
  }
  const nchw = tf.transpose(x, [0, 3, 1, 2]);
  const data = (await nchw.data()) as Float32Array;
  tf.dispose([x, nchw]);
  return data;
}
