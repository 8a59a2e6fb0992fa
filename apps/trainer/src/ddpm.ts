/**
 * `dif-train ddpm`: train the 4-channel SR3 DDPM (visible RGB + infrared) as the
 * reference's train_ddpm.py does, with exact resume, data-parallel workers, progress,
 * JSONL log, sample grids and loss curve.
 *
 * One step, as the reference (GaussianDiffusion.p_losses + DDPM.optimize_parameters):
 * t ~ U{1..T} for the batch, one continuous noise level per sample uniform in
 * [sqrt_acp_prev[t-1], sqrt_acp_prev[t]), noise ~ N(0, 1),
 * loss = sum((noise - unet(level * x + sqrt(1 - level^2) * noise, level))^2) / (B*C*H*W)
 * (l1: absolute values), then one Adam/AdamW step. All randomness (batch crops, t, levels,
 * noise, dropout masks) comes from one seeded Rng whose state is in every checkpoint.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { DEFAULT_DIFFUSION_LOSS } from '@dif-fusion/diffusion';
import { GaussianDiffusion } from '@dif-fusion/diffusion/tfjs';
import type { TrainingSampler } from '@dif-fusion/io';
import { deriveSeed, NoiseSchedule, Rng } from '@dif-fusion/schedules';
import { TfParamStore } from '@dif-fusion/tfjs';
import {
  buildDenoiser,
  createDdpmEngine,
  type DdpmBatch,
  type DdpmEngine,
  type Denoiser,
  drawDdpmBatch,
  InitStopped,
  SetupStopped,
  sampleImages,
  splitConditional,
  testSlowFromEnv,
  WeightEma,
} from '@dif-fusion/train';
import { parseUNetConfig, unetConfigToJSON } from '@dif-fusion/unet';
import { type Checkpoint, networkWeights } from './checkpoint';
import { type DdpmConfig, loadDdpmConfig, resolveRunConfig, validateDdpmConfig } from './config';
import { makeSampler, openPairs } from './data';
import { UserError } from './errors';
import { writeGrid } from './images';
import { type StepFn, type TrainResult, trainingLoop } from './loop';
import { writeLossChart } from './plot';
import {
  type LoadedCheckpoint,
  noteStripped,
  RunContext,
  type RunOptions,
  resumePoint,
  runSeed,
  startBackend,
  type TrainBackend,
} from './session';

export type { TrainBackend, TrainResult };

export interface DdpmTrainOptions extends RunOptions {
  /** Config file path or object (reference format); default: the shipped small config. */
  config?: string | Partial<DdpmConfig>;
  /** train.n_iter override. */
  iters?: number;
  /** Data-parallel workers (threads computing slices of each batch); default min(cores, 2). */
  workers?: number;
  /** Sampling steps of the validation grid (strided sampler, default 50). */
  sampleSteps?: number;
  /** Samples in the validation grid (default 4). */
  sampleCount?: number;
  /** Sets model.unet.use_checkpoint (memory only, so a resumed run may switch it on). */
  gradientCheckpointing?: boolean;
}

/** The run's config; on resume the checkpoint's is authoritative. */
function resolveConfig(opts: DdpmTrainOptions, ckpt: LoadedCheckpoint | null): DdpmConfig {
  return resolveRunConfig(opts, ckpt, {
    load: loadDdpmConfig,
    validate: validateDdpmConfig,
    fixedFlags: [],
    mayChange: '--iters, --data, --keep, --workers, --backend and --gradient-checkpointing',
    always: (cfg) => {
      if (opts.iters !== undefined) cfg.train.n_iter = opts.iters;
      if (opts.data !== undefined) cfg.datasets.train.dataroot = opts.data;
      if (opts.gradientCheckpointing) cfg.model.unet.use_checkpoint = true;
    },
  });
}

export function defaultWorkers(): number {
  const cores = (globalThis as { navigator?: { hardwareConcurrency?: number } }).navigator
    ?.hardwareConcurrency;
  return Math.max(1, Math.min(2, cores ?? 1));
}

/**
 * The DDPM being trained: UNet, diffusion, the training Rng, the engine that holds the
 * weights and optimizer and runs the steps (ONNX Runtime or tfjs), and the EMA.
 */
interface DdpmModel {
  denoiser: Denoiser;
  engine: DdpmEngine;
  diffusion: GaussianDiffusion;
  schedule: NoiseSchedule;
  rng: Rng;
  /** EMA of the weights (train.ema_decay > 0), else null. */
  ema: WeightEma | null;
  /** Condition dropout probability (conditional mode). */
  dropProb: number;
}

async function buildModel(
  cfg: DdpmConfig,
  ckpt: LoadedCheckpoint | null,
  seed: number,
  opts: DdpmTrainOptions,
  backend: string,
  workers: number,
  say: (m: string) => void,
  shouldStop: () => boolean = () => false,
): Promise<DdpmModel> {
  const { resolution: crop, batch_size: batch } = cfg.datasets.train;
  const schedule = new NoiseSchedule(cfg.model.beta_schedule.train);
  const denoiser = buildDenoiser(cfg.model.unet, crop, {
    varType: cfg.model.diffusion.var_type,
    which: cfg.model.which_model_G,
  });
  if (!ckpt) say('initialising the weights (orthogonal, as the reference)');
  const diffusion = new GaussianDiffusion(denoiser.unet, schedule, {
    ...cfg.model.diffusion,
    loss: cfg.model.diffusion.loss ?? DEFAULT_DIFFUSION_LOSS,
  });
  const requested = opts.backend ?? 'onnxruntime';
  if (requested !== 'onnxruntime' && cfg.model.unet.use_checkpoint)
    say(
      'note: model.unet.use_checkpoint applies to the onnxruntime backend; tfjs keeps every activation',
    );
  const engine = await createDdpmEngine({
    backend: requested,
    tfjsBackend: backend,
    diffusion,
    schedule,
    batch,
    crop,
    optimizer: { type: cfg.train.optimizer.type, lr: cfg.train.optimizer.lr },
    optimizerState: ckpt?.optimizer,
    // a resumed checkpoint's UNet weights, checked against the UNet (errors name the file)
    weights: ckpt ? networkWeights(denoiser.params, ckpt.weights, ckpt.path) : null,
    seed,
    gradientCheckpointing: cfg.model.unet.use_checkpoint ?? false,
    workers,
    workerInit: {
      unet: cfg.model.unet,
      diffusion: cfg.model.diffusion,
      schedule: cfg.model.beta_schedule.train,
    },
    ...{ say, shouldStop, testSlow: testSlowFromEnv() },
    ...{ device: opts.device, threads: opts.threads },
  });
  const provider = await engine.provider();
  if (provider) say(`ONNX Runtime: ${provider} execution provider`);
  const rng = ckpt?.rng ? Rng.fromState(ckpt.rng) : new Rng(seed);
  const decay = cfg.train.ema_decay ?? 0;
  const ema =
    decay > 0
      ? new WeightEma(
          decay,
          ckpt?.ema ? networkWeights(denoiser.params, ckpt.ema, ckpt.path) : engine.weights(),
        )
      : null;
  const dropProb = cfg.model.diffusion.drop_prob ?? 0;
  return { denoiser, engine, diffusion, schedule, rng, ema, dropProb };
}

/** A step's inputs from a batch of pairs: drawDdpmBatch with the model's Rng and variant. */
const drawBatch = (m: DdpmModel, pairs: Float32Array, batch: number): DdpmBatch =>
  drawDdpmBatch(pairs, batch, {
    ...{ schedule: m.schedule, rng: m.rng, varType: m.diffusion.varType },
    ...{ conditional: m.diffusion.conditional, dropProb: m.dropProb },
  });

/** Data-parallel threads: --workers (default min(cores, 2)) on tfjs; ORT parallelises each op. */
function ddpmWorkers(
  opts: DdpmTrainOptions,
  skipUnet: boolean,
  batch: number,
  say: (m: string) => void,
): number {
  if (skipUnet) {
    if ((opts.workers ?? 1) > 1)
      say(
        'note: --workers is 1 with which_model_G skip_unet (BatchNorm normalises over the whole batch)',
      );
    return 1;
  }
  if ((opts.backend ?? 'onnxruntime') === 'onnxruntime') {
    if ((opts.workers ?? 1) > 1)
      say(
        'note: --workers applies to the tfjs backends; ONNX Runtime parallelises each step (--threads)',
      );
    return 1;
  }
  const workers = Math.max(1, Math.min(opts.workers ?? defaultWorkers(), batch));
  if (workers > 1) say(`workers: ${workers} (data-parallel, gradients averaged each step)`);
  return workers;
}

/**
 * One step of `dif-train ddpm`, whichever engine runs it: the batch from the sampler, the
 * step's draws from the training Rng (drawDdpmStep: t, levels, noise, dropout seed), the
 * engine's loss and gradients, then (a finite loss) its update and the EMA's.
 */
function ddpmStep(m: DdpmModel, sampler: TrainingSampler, batch: number): StepFn {
  return async () => {
    const lr = m.engine.lr;
    const s = await m.engine.step(drawBatch(m, (await sampler.next()).img, batch));
    const vb = s.terms.vb;
    return {
      loss: s.loss,
      record: { loss: s.loss, ...s.terms, lr },
      note: vb === undefined ? undefined : `vb ${vb.toPrecision(4)} bits/dim`,
      commit: () => {
        s.commit?.();
        m.ema?.update(m.engine.weights());
      },
      discard: s.discard,
    };
  };
}

/**
 * The validation grid (samples: visible RGB | infrared; conditional: infrared | sampled RGB |
 * real RGB of fixed crops) and the loss curve.
 */
async function ddpmValidation(
  run: RunContext,
  cfg: DdpmConfig,
  m: DdpmModel,
  seed: number,
  opts: DdpmTrainOptions,
  pairs: Awaited<ReturnType<typeof openPairs>>,
): Promise<(step: number) => Promise<void>> {
  const crop = cfg.datasets.train.resolution;
  const n = opts.sampleCount ?? 4;
  // The chain the UNet is trained on, as `dif-train sample` walks it: a config's
  // beta_schedule.val may be the shipped default merged in, not one chosen for this model.
  const schedule = m.schedule;
  const seedGrid = deriveSeed(seed, 'sampleGrid');
  const fixed = m.diffusion.conditional
    ? splitConditional((await makeSampler(pairs, { crop, batch: n, seed: seedGrid }).next()).img, n)
    : null;
  return async (step) => {
    // the engine's current weights, in tfjs for the sampler (any engine)
    const params = TfParamStore.fromTorch(m.denoiser.params, m.engine.weights());
    const imgs = await sampleImages(m.denoiser, params, schedule, {
      n,
      size: crop,
      steps: opts.sampleSteps ?? 50,
      rng: new Rng(seedGrid), // the same start noise each validation
      diffusion: cfg.model.diffusion,
      condition: fixed?.condition,
    });
    params.dispose();
    const path = join(run.out, 'samples', `step-${String(step).padStart(8, '0')}.png`);
    mkdirSync(join(run.out, 'samples'), { recursive: true });
    const grid = fixed
      ? [
          { data: fixed.condition, channels: 1, pick: [0] },
          { data: imgs, channels: 3, pick: [0, 1, 2] },
          { data: fixed.x, channels: 3, pick: [0, 1, 2] },
        ]
      : [
          { data: imgs, channels: 4, pick: [0, 1, 2] },
          { data: imgs, channels: 4, pick: [3] },
        ];
    await writeGrid(path, grid, n, crop);
    await writeLossChart(
      join(run.out, 'loss.png'),
      run.log.read(),
      'dif-train ddpm: training loss',
    );
    run.event({ step, event: 'samples', path });
  };
}

/** Train (or resume training) the DDPM. */
export async function trainDdpm(opts: DdpmTrainOptions): Promise<TrainResult> {
  const ckpt = resumePoint('ddpm', opts);
  const cfg = resolveConfig(opts, ckpt);
  const seed = runSeed(opts, ckpt);
  const dataroot = cfg.datasets.train.dataroot;
  if (!dataroot || dataroot === 'TBD')
    throw new UserError(
      'no training data: pass --data DIR (a folder holding ir/ and vi/) or set datasets.train.dataroot',
    );
  const run = new RunContext(opts, cfg.train.print_freq || 10);
  noteStripped(ckpt, run.say);
  let m: DdpmModel | null = null;
  try {
    const backend = await startBackend('ddpm', opts.backend, run.say);
    const { resolution: crop, batch_size: batch } = cfg.datasets.train;
    const pairs = await openPairs(dataroot);
    run.say(`data: ${pairs.length} pairs from ${dataroot}, ${crop}x${crop} crops, batch ${batch}`);
    run.writeFolder(cfg, ckpt?.step ?? null);
    const stop = () => run.stop.stopRequested;
    const skip = cfg.model.which_model_G === 'skip_unet';
    const workers = ddpmWorkers(opts, skip, batch, run.say);
    m = await buildModel(cfg, ckpt, seed, opts, backend, workers, run.say, stop).catch((e) => {
      if (e instanceof InitStopped || e instanceof SetupStopped)
        throw new UserError(`${e.message}; nothing to save yet`);
      throw e;
    });
    const samplerSeed = deriveSeed(seed, 'sampler');
    const sampler = makeSampler(pairs, { crop, batch, seed: samplerSeed, state: ckpt?.sampler });
    const params = [...m.engine.weights().values()].reduce((a, w) => a + w.data.length, 0);
    run.say(`model: ${params.toLocaleString('en-US')} parameters; run folder ${run.out}`);
    const model = m;
    const step = ddpmStep(model, sampler, batch);
    const { save_checkpoint_freq: saveFreq, val_freq: valFreq } = cfg.train;
    const validate = await ddpmValidation(run, cfg, model, seed, opts, pairs);
    if (run.stop.stopRequested)
      throw new UserError('stopped before the first step; nothing to save yet');
    run.stop.training = true;
    const r = await trainingLoop({
      run,
      start: ckpt?.step ?? 0,
      total: cfg.train.n_iter,
      resumedFrom: ckpt?.path ?? null,
      step,
      save: (step) => run.saveCheckpoint(ddpmCheckpoint(cfg, model, sampler, seed, step)),
      saveAt: (step) => saveFreq > 0 && step % saveFreq === 0,
      afterStep: async (step) => {
        if (valFreq > 0 && step % valFreq === 0) await validate(step);
      },
      onStep: opts.onStep,
      lossHook: opts.lossHook,
    });
    if (r.stopped !== 'nan')
      await writeLossChart(
        join(run.out, 'loss.png'),
        run.log.read(),
        'dif-train ddpm: training loss',
      );
    if (r.stopped === 'done') run.say(`done: step ${r.step}, checkpoint ${r.checkpoint}`);
    return { ...r, backend, workers };
  } finally {
    run.dispose();
    await m?.engine.release();
  }
}

/** The checkpoint of `step`: weights, optimizer, RNG and sampler states, config. */
function ddpmCheckpoint(
  cfg: DdpmConfig,
  m: DdpmModel,
  sampler: TrainingSampler,
  seed: number,
  step: number,
): Checkpoint {
  return {
    kind: 'ddpm',
    step,
    epoch: sampler.getState().epoch,
    config: cfg,
    // the one UNet config block (what `export` and `sample` read back)
    model: {
      ...unetConfigToJSON(
        parseUNetConfig(cfg.model.unet, {
          image_size: cfg.datasets.train.resolution,
          which: cfg.model.which_model_G ?? 'sr3',
        }),
      ),
    },
    weights: m.engine.weights(),
    ema: m.ema?.weights ?? null,
    optimizer: m.engine.optimizerState(),
    rng: m.rng.getState(),
    sampler: sampler.getState(),
    extra: { seed, schedule: cfg.model.beta_schedule.train, loss: m.diffusion.loss },
  };
}
