/**
 * Opening a fusion method (the ONNX model or a baseline) once, and fusing image pairs with it.
 */
import { FuseError, oneLine } from './errors';
import type { Planar } from './images';
import { fuseBaseline, isBaseline, type Method } from './methods';
import { checkModelDir, resolveModelDir } from './model';
import { cellNoise, type Fuser, fusePlanar, type TilingOptions } from './pipeline';

export interface OpenOptions {
  method?: Method;
  /** Model folder; default: $DIF_FUSION_MODEL, else the shipped model. */
  model?: string;
  device?: 'auto' | 'cuda' | 'cpu';
  threads?: number;
  /** Noise seed (default 0): the same inputs and seed give the same output. */
  seed?: number;
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
  const onnx = await import('@dif-fusion/onnx');
  let model: Awaited<ReturnType<typeof onnx.loadFusionModel>>;
  try {
    model = await onnx.loadFusionModel(dir, {
      device: opts.device ?? 'auto',
      threads: opts.threads,
    });
  } catch (err) {
    throw new FuseError(oneLine(err));
  }
  const seed = opts.seed ?? 0;
  const fuser: Fuser = {
    multiple: model.config.size_multiple,
    noise: {
      steps: model.config.time_steps.length,
      channels: 4,
      // The runtime's generator (fusionNoise draws k*n*4*h*w deviates from a seed), per noise cell.
      window: cellNoise(seed, model.config.time_steps.length, 4, (s, count) =>
        onnx.fusionNoise(s, { k: 1, n: 1, height: 1, width: count / 4 }),
      ),
    },
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
