/**
 * The boundary where a backend is chosen: `createDdpmEngine` and `createHeadEngine` build
 * the ONNX Runtime engine (`backend: 'onnxruntime'`, the default) or the tfjs one; the
 * caller sees the {@link TrainingEngine} interface only.
 */
import { learnsVariance, lossCoefs, needsLossCoefs } from '@dif-fusion/diffusion';
import type { GaussianDiffusion } from '@dif-fusion/diffusion/tfjs';
import type { FusionHead, fusionLossOptions } from '@dif-fusion/fusion-head';
import type { OptimizerState, TorchWeights } from '@dif-fusion/nn';
import type { Device } from '@dif-fusion/onnx';
import { NoiseSchedule, type NoiseScheduleConfig } from '@dif-fusion/schedules';
import type { BackendName } from '@dif-fusion/tfjs';
import { CONDITION_CHANNELS } from './ddpm-variants';
import type { Denoiser } from './denoiser';
import type { DdpmEngine, HeadEngine, TrainBackend } from './engine';
import { initWeightsFast } from './fast-init';
import { initWeights, OrtDdpmEngine, secondsSince, type TestSlow } from './ort-ddpm';
import { OrtHeadEngine } from './ort-head';
import { TfjsDdpmEngine } from './tfjs-ddpm';
import { TfjsHeadEngine } from './tfjs-head';
import type { WorkerInit } from './workers';

/** The settings every engine takes. */
interface EngineOptions {
  /** Where the steps run: 'onnxruntime' or a tfjs backend (useBackend already called). */
  backend: TrainBackend;
  /** The tfjs backend useBackend started (tfjs engines: picks its conv2d). */
  tfjsBackend?: string;
  optimizer: { type: 'adam' | 'adamw'; lr: number };
  /** A resumed optimizer state. */
  optimizerState?: OptimizerState | null;
  /** Fresh weights are drawn from this seed (and the feature noise of a head). */
  seed: number;
  /** ONNX Runtime: device and intra-op threads. */
  device?: Device;
  threads?: number;
}

export interface DdpmEngineOptions extends EngineOptions {
  /** The diffusion over the UNet (`denoiser`) being trained. */
  diffusion: GaussianDiffusion;
  schedule: NoiseSchedule;
  batch: number;
  crop: number;
  /** Resumed weights (checked against the UNet), or null: fresh orthogonal ones from `seed`. */
  weights: TorchWeights | null;
  /** model.unet.use_checkpoint: recompute blocks in the backward pass (ONNX Runtime). */
  gradientCheckpointing?: boolean;
  /** Channels of a conditional model's condition (default 1: the infrared). */
  conditionChannels?: number;
  /** tfjs: threads computing slices of each batch, and what their replicas are built from. */
  workers?: number;
  workerInit?: Omit<WorkerInit, 'weights' | 'optimizer' | 'crop' | 'lossType' | 'backend'>;
  /**
   * Polled while drawing fresh weights and after each phase of the ONNX Runtime set-up
   * (Ctrl-C): the init throws InitStopped, the set-up SetupStopped.
   */
  shouldStop?: () => boolean;
  /** Where the set-up's phases report their times (init, graph, session; ONNX Runtime). */
  say?: (message: string) => void;
  /** Tests (DIF_FUSION_TEST_SLOW, see testSlowFromEnv): stretched set-up phases and steps. */
  testSlow?: TestSlow;
}

/** The DDPM engine of `o.backend`. */
export async function createDdpmEngine(o: DdpmEngineOptions): Promise<DdpmEngine> {
  const { diffusion, schedule } = o;
  const params = diffusion.denoiser.params();
  if (o.backend === 'onnxruntime') {
    const meanType = diffusion.meanType;
    const learned = learnsVariance(diffusion.varType);
    let weights = o.weights;
    if (!weights) {
      const t0 = performance.now();
      weights = await initWeightsFast(params, o.seed, {
        ...{ shouldStop: o.shouldStop, threads: o.threads, testDelayMs: o.testSlow?.init },
      });
      o.say?.(`weights initialised in ${secondsSince(t0)} s`);
    }
    return OrtDdpmEngine.create({
      ...{ unet: diffusion.denoiser, batch: o.batch, crop: o.crop, loss: diffusion.loss },
      optimizer: o.optimizer,
      meanType,
      coefsOf: needsLossCoefs(meanType, learned)
        ? (t) => lossCoefs(diffusion.chain(), meanType, t)
        : undefined,
      condition: diffusion.conditional ? (o.conditionChannels ?? CONDITION_CHANNELS) : 0,
      vbWeight: learned ? diffusion.vlbWeight * schedule.numTimesteps : undefined,
      checkpoint: o.gradientCheckpointing ?? false,
      weights,
      ...{ optimizerState: o.optimizerState, device: o.device, threads: o.threads },
      ...{ say: o.say, shouldStop: o.shouldStop, testSlow: o.testSlow },
    });
  }
  return TfjsDdpmEngine.create({
    backend: o.tfjsBackend ?? o.backend,
    diffusion,
    crop: o.crop,
    weights: o.weights,
    seed: o.seed,
    optimizer: o.optimizer,
    optimizerState: o.optimizerState,
    workers: o.workers,
    workerInit: o.workerInit && { ...o.workerInit, backend: o.backend as BackendName },
  });
}

export interface HeadEngineOptions extends EngineOptions {
  head: FusionHead;
  /** The frozen DDPM whose decoder features the head reads, and its weights (checked). */
  denoiser: Denoiser;
  denoiserWeights: TorchWeights;
  /** Starting head weights (resumed or --init; checked), or null: fresh ones from `seed`. */
  weights: TorchWeights | null;
  crop: number;
  /** The fusion loss: fusionLossOptions(train.loss), its defaults filled in. */
  loss: ReturnType<typeof fusionLossOptions>;
  noise: 'fixed' | 'random';
  schedule: NoiseScheduleConfig;
  /** The run trains on a feature cache (ONNX Runtime: validation reads cached features too). */
  featureCache?: boolean;
}

/** The fusion-head engine of `o.backend`. */
export function createHeadEngine(o: HeadEngineOptions): HeadEngine {
  if (o.backend === 'onnxruntime')
    return new OrtHeadEngine({
      head: o.head,
      unet: o.denoiser.unet,
      unetWeights: o.denoiserWeights,
      weights: o.weights ?? initWeights(o.head.params(), o.seed),
      optimizer: o.optimizer,
      optimizerState: o.optimizerState,
      crop: o.crop,
      ...o.loss,
      ...{ noise: o.noise, seed: o.seed, schedule: new NoiseSchedule(o.schedule) },
      ...{ device: o.device, threads: o.threads, cacheValidation: o.featureCache },
    });
  return new TfjsHeadEngine({
    backend: o.tfjsBackend ?? o.backend,
    head: o.head,
    denoiser: o.denoiser,
    denoiserWeights: o.denoiserWeights,
    weights: o.weights,
    seed: o.seed,
    optimizer: o.optimizer,
    optimizerState: o.optimizerState,
    crop: o.crop,
    loss: o.loss,
    noise: o.noise,
    schedule: o.schedule,
  });
}
