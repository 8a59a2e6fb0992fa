/**
 * Opening a fusion method (the ONNX model or a baseline) once, and fusing image pairs with it.
 */

import { homedir } from 'node:os';
import { join } from 'node:path';
import type { FusionBlocks } from '@dif-fusion/fusion-head';
import { formatError } from '@dif-fusion/io';
import { cellNoise } from '@dif-fusion/schedules';
import { FuseError } from './errors';
import type { Planar } from './images';
import { fuseBaseline, isBaseline, type Method } from './methods';
import { checkModelDir, resolveModelDir } from './model';
import { type Fuser, fusePlanar, type TilingOptions } from './pipeline';

export interface OpenOptions {
  method?: Method;
  /** Model folder; default: $DIF_FUSION_MODEL, else the shipped model. */
  model?: string;
  device?: 'auto' | 'cuda' | 'cpu';
  threads?: number;
  /** Noise seed (default 0): the same inputs and seed give the same output. */
  seed?: number;
  /**
   * Where ONNX Runtime's optimised CPU graph of the model is kept, so later runs skip the
   * optimiser (bit-identical outputs; @dif-fusion/onnx LoadOptions.cacheDir). Default
   * {@link sessionCacheDir}: $DIF_FUSION_CACHE/ort, else ~/.cache/dif-fusion/ort; null: off.
   */
  cacheDir?: string | null;
}

/**
 * The default folder of optimised session graphs: `$DIF_FUSION_CACHE/ort` (`off` or `0`: no
 * cache), else `$XDG_CACHE_HOME/dif-fusion/ort`, else `~/.cache/dif-fusion/ort`.
 */
export function sessionCacheDir(env: NodeJS.ProcessEnv = process.env): string | null {
  const v = env.DIF_FUSION_CACHE;
  if (v === 'off' || v === '0') return null;
  if (v) return join(v, 'ort');
  return join(env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'dif-fusion', 'ort');
}

export interface OpenedFuser {
  method: Method;
  /** The ONNX Runtime execution provider actually used (model only). */
  provider?: string;
  modelDir?: string;
  fuser: Fuser;
  release(): Promise<void>;
}

export async function openFuser(opts: OpenOptions = {}): Promise<OpenedFuser> {
  const method = opts.method ?? 'model';
  if (isBaseline(method)) {
    return {
      method,
      fuser: {
        multiple: 1,
        run: async (ir, vis, _noise, h, w) => fuseBaseline(method, ir, vis, h, w),
      },
      release: async () => {},
    };
  }
  if (method !== 'model') throw new FuseError(`unknown method ${method}`);
  const { dir } = resolveModelDir(opts.model);
  checkModelDir(dir);
  // Loaded lazily: the baselines never need ONNX Runtime.
  const [onnx, { parseFusionBlocks }] = await Promise.all([
    import('@dif-fusion/onnx'),
    import('@dif-fusion/fusion-head'),
  ]);
  let model: Awaited<
    ReturnType<typeof onnx.loadFusionModel<FusionBlocks['unet'], FusionBlocks['head']>>
  >;
  try {
    model = await onnx.loadFusionModel(dir, {
      // config.json's UNet and head blocks, read by the networks' own parsers
      blocks: parseFusionBlocks,
      device: opts.device ?? 'auto',
      threads: opts.threads,
      cacheDir: (opts.cacheDir === undefined ? sessionCacheDir() : opts.cacheDir) ?? undefined,
    });
  } catch (err) {
    throw new FuseError(formatError(err));
  }
  const seed = opts.seed ?? 0;
  const memory = modelMemory(model.config);
  const fuser: Fuser = {
    multiple: model.config.size_multiple,
    noise: {
      steps: model.config.head.time_steps.length,
      channels: 4,
      // The one noise definition: the library's fuse({ seed }) draws the same (imageNoise).
      window: cellNoise(seed, model.config.head.time_steps.length, 4),
    },
    memory,
    run: (ir, vis, noise, height, width) =>
      model.fuse({ ir, vis, noise: noise!, n: 1, height, width }),
  };
  return {
    method,
    provider: model.provider,
    modelDir: dir,
    fuser,
    release: async () => {
      await model.release();
    },
  };
}

/** Fuses one pair ([1,H,W] IR and [3,H,W] visible in [-1,1]) with an opened method. */
export async function fuseImages(
  ir: Planar,
  vis: Planar,
  opened: OpenedFuser,
  tiling: TilingOptions = {},
): Promise<Planar> {
  return fusePlanar(ir, vis, opened.fuser, tiling);
}

/**
 * Working memory in bytes of one model run at h x w, for 'auto' tiling. Two terms, checked
 * against measured peak RSS of exported models on ORT CPU:
 * - self-attention (SR3: one head over every position) at each level whose resolution is in
 *   `attn_res`, and in the middle block: K scores + softmax matrices of (h*w/s^2)^2 floats.
 *   It grows with the square of the pixel count and dominates above ~200x200 (640x480 at
 *   inner_channel 16, attention at 1/4 scale: 2 x 3 x 19200^2 x 4 B = 8.8 GB).
 * - convolution activations: about 16 live full-resolution tensors of K x inner_channel.
 */
export function modelMemory(config: {
  /** The model folder's UNet block (parseFusionBlocks has read old key names). */
  unet: Partial<
    Pick<FusionBlocks['unet'], 'image_size' | 'attn_res' | 'channel_multiplier' | 'inner_channel'>
  >;
  /** The head block: its time steps (K, the UNet passes). */
  head: { time_steps: readonly number[] };
}): ((h: number, w: number) => number) | undefined {
  const u = config.unet;
  const mults = u.channel_multiplier;
  if (!Array.isArray(mults) || typeof u.inner_channel !== 'number') return undefined;
  const K = config.head.time_steps.length;
  const scales: number[] = [2 ** (mults.length - 1)]; // the middle block
  if (typeof u.image_size === 'number' && Array.isArray(u.attn_res))
    for (let l = 0; l < mults.length; l++)
      if (u.attn_res.includes(Math.floor(u.image_size / 2 ** l))) scales.push(2 ** l);
  const finest = Math.min(...scales);
  const inner = u.inner_channel;
  return (h, w) => {
    const tokens = Math.ceil(h / finest) * Math.ceil(w / finest);
    return 2 * K * tokens * tokens * 4 + 16 * K * inner * h * w * 4;
  };
}
