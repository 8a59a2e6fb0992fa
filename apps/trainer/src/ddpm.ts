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
import {
  DEFAULT_DIFFUSION_LOSS,
  learnsVariance,
  lossCoefs,
  needsLossCoefs,
  trainingLevels,
} from '@dif-fusion/diffusion';
import { GaussianDiffusion } from '@dif-fusion/diffusion/tfjs';
import type { TrainingSampler } from '@dif-fusion/io';
import {
  type BatchStatValues,
  type TorchWeights,
  trainableSpecs,
  updateRunningStats,
} from '@dif-fusion/nn';
import type { AdamF32 } from '@dif-fusion/onnx/train';
import { deriveSeed, drawDdpmStep, NoiseSchedule, Rng } from '@dif-fusion/schedules';
import type { BackendName } from '@dif-fusion/tfjs';
import {
  Adam,
  type Conv2dFn,
  conv2dFor,
  TfParamStore,
  TrainOps,
  takeBatchStats,
} from '@dif-fusion/tfjs';
import { parseUNetConfig, unetConfigToJSON } from '@dif-fusion/unet';
import * as tf from '@tensorflow/tfjs-core';
import { type Checkpoint, networkWeights } from './checkpoint';
import { type DdpmConfig, loadDdpmConfig, resolveRunConfig, validateDdpmConfig } from './config';
import { makeSampler, openPairs } from './data';
import { CONDITION_CHANNELS, dropConditions, splitConditional, WeightEma } from './ddpm-variants';
import { UserError } from './errors';
import { InitStopped, initWeightsFast } from './fast-init';
import { writeGrid } from './images';
import { type StepFn, type TrainResult, trainingLoop } from './loop';
import { buildDenoiser, type Denoiser, sampleImages } from './model';
import { OrtDdpmEngine, SetupStopped, secondsSince, testSlowFromEnv } from './ort-ddpm';
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
import { type ShardResult, type StepArgs, WorkerPool } from './workers';

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
 * The DDPM being trained: UNet, diffusion, the training Rng, and where its weights and
 * optimizer live: tfjs variables (`store`, `optimizer`) or, on ONNX Runtime, the engine's
 * Float32Arrays (`ort`; `store` then holds nothing).
 */
interface DdpmModel {
  denoiser: Denoiser;
  store: TfParamStore;
  optimizer: Adam | null;
  ort: OrtDdpmEngine | null;
  diffusion: GaussianDiffusion;
  schedule: NoiseSchedule;
  rng: Rng;
  /** EMA of the weights (train.ema_decay > 0), else null. */
  ema: WeightEma | null;
  /** Condition dropout probability (conditional mode). */
  dropProb: number;
}

/** The optimizer whichever backend runs the steps. */
const optimizerOf = (m: DdpmModel): Adam | AdamF32 => (m.ort?.optimizer ?? m.optimizer)!;

/** The current weights (PyTorch layouts). */
const weightsOf = (m: DdpmModel): TorchWeights => m.ort?.weights ?? m.store.toTorch();

/** A resumed checkpoint's UNet weights, checked against the UNet (errors name the file). */
const checkpointWeights = (denoiser: Denoiser, ckpt: LoadedCheckpoint): TorchWeights =>
  networkWeights(denoiser.params, ckpt.weights, ckpt.path);

async function buildModel(
  cfg: DdpmConfig,
  ckpt: LoadedCheckpoint | null,
  seed: number,
  opts: DdpmTrainOptions,
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
  const optimCfg = { type: cfg.train.optimizer.type, lr: cfg.train.optimizer.lr };
  const loss = cfg.model.diffusion.loss ?? DEFAULT_DIFFUSION_LOSS;
  const diffusion = new GaussianDiffusion(denoiser.unet, schedule, {
    ...cfg.model.diffusion,
    loss,
  });
  const rng = ckpt?.rng ? Rng.fromState(ckpt.rng) : new Rng(seed);
  const decay = cfg.train.ema_decay ?? 0;
  const emaOf = (w: TorchWeights) =>
    decay > 0
      ? new WeightEma(decay, ckpt?.ema ? networkWeights(denoiser.params, ckpt.ema, ckpt.path) : w)
      : null;
  const dropProb = cfg.model.diffusion.drop_prob ?? 0;
  if ((opts.backend ?? 'onnxruntime') === 'onnxruntime') {
    const t0 = performance.now();
    const testSlow = testSlowFromEnv();
    const weights = ckpt
      ? checkpointWeights(denoiser, ckpt)
      : await initWeightsFast(denoiser.params, seed, {
          shouldStop,
          threads: opts.threads,
          testDelayMs: testSlow.init,
        });
    if (!ckpt) say(`weights initialised in ${secondsSince(t0)} s`);
    const ort = await OrtDdpmEngine.create({
      ...{ unet: denoiser.unet, batch, crop, loss, optimizer: optimCfg },
      meanType: diffusion.meanType,
      condition: diffusion.conditional ? CONDITION_CHANNELS : 0,
      vbWeight: learnsVariance(diffusion.varType)
        ? diffusion.vlbWeight * schedule.numTimesteps
        : undefined,
      checkpoint: cfg.model.unet.use_checkpoint ?? false,
      weights,
      ...{ optimizerState: ckpt?.optimizer, device: opts.device, threads: opts.threads, say },
      ...{ shouldStop, testSlow },
    });
    say(`ONNX Runtime: ${ort.provider} execution provider`);
    // The sample grids load the current weights into tfjs when they are drawn.
    const store = TfParamStore.fromTorch([], new Map());
    const ema = emaOf(ort.weights);
    return { denoiser, store, optimizer: null, ort, diffusion, schedule, rng, ema, dropProb };
  }
  if (cfg.model.unet.use_checkpoint)
    say(
      'note: model.unet.use_checkpoint applies to the onnxruntime backend; tfjs keeps every activation',
    );
  const store = ckpt
    ? TfParamStore.fromTorch(denoiser.params, checkpointWeights(denoiser, ckpt))
    : TfParamStore.init(denoiser.params, seed);
  const trained = trainableSpecs(denoiser.params).map((p) => p.name);
  const optimizer = new Adam(new Map(trained.map((n) => [n, store.get(n)])), optimCfg);
  if (ckpt?.optimizer) optimizer.load(ckpt.optimizer);
  const ema = decay > 0 ? emaOf(store.toTorch()) : null;
  return { denoiser, store, optimizer, ort: null, diffusion, schedule, rng, ema, dropProb };
}

/**
 * The data part of a batch and, conditional, its condition (the infrared, after condition
 * dropout); the step's draws (drawDdpmStep over the data part's elements).
 */
function drawBatch(m: DdpmModel, pairs: Float32Array, batch: number) {
  const split = m.diffusion.conditional ? splitConditional(pairs, batch) : null;
  const x = split?.x ?? pairs;
  const draws = drawDdpmStep(m.schedule, m.rng, batch, x.length);
  const condition = split && dropConditions(split.condition, batch, m.dropProb, draws.stepSeed);
  // learned_range trains on the discrete level of t (see trainingLevels); others as drawn
  const levels = trainingLevels(m.schedule, m.diffusion.varType, draws.t, draws.levels);
  return { x, condition: condition ?? undefined, ...draws, levels };
}

/** Data-parallel threads: --workers (default min(cores, 2)) on tfjs; ORT parallelises each op. */
function ddpmWorkers(
  opts: DdpmTrainOptions,
  m: DdpmModel,
  batch: number,
  say: (m: string) => void,
): number {
  if (m.denoiser.which === 'skip_unet') {
    if ((opts.workers ?? 1) > 1)
      say(
        'note: --workers is 1 with which_model_G skip_unet (BatchNorm normalises over the whole batch)',
      );
    return 1;
  }
  if (m.ort) {
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

/** Worker threads for data-parallel steps (`workers - 1` of them; null for one thread). */
async function startWorkers(
  workers: number,
  backendName: TrainBackend | undefined,
  cfg: DdpmConfig,
  m: DdpmModel,
): Promise<WorkerPool | null> {
  if (workers <= 1) return null;
  const names = m.store.names();
  return WorkerPool.create(
    workers - 1,
    {
      backend: backendName as BackendName, // workers run on tfjs backends only
      unet: cfg.model.unet,
      crop: cfg.datasets.train.resolution,
      weights: m.store.toTorch(),
      optimizer: optimizerOf(m).state(),
      lossType: m.diffusion.loss,
      diffusion: cfg.model.diffusion,
      schedule: cfg.model.beta_schedule.train,
    },
    names,
    names.map((n) => m.store.get(n).shape.slice()),
  );
}

/**
 * The tfjs step of `dif-train ddpm`: the batch from the sampler, the step's draws from the
 * training Rng (drawDdpmStep: t, levels, noise, dropout seed), loss and gradients on this
 * thread and the workers, then one Adam/AdamW update on every replica.
 */
function ddpmStep(
  m: DdpmModel,
  sampler: TrainingSampler,
  pool: WorkerPool | null,
  conv2d: Conv2dFn | undefined,
  crop: number,
  batch: number,
): StepFn {
  const shard: StepArgs['main'] = (x, levels, noise, stepSeed, offset, n, denom, t, condition) =>
    shardLossAndGrads(m.diffusion, m.store, conv2d, {
      ...{ x, levels, noise, stepSeed, offset, n, crop, denom },
      ...{ t, condition },
    });
  return async () => {
    const { x, condition, t, levels, noise, stepSeed } = drawBatch(
      m,
      (await sampler.next()).img,
      batch,
    );
    const denom = x.length; // B*C*H*W: the reference's mean
    // data-parallel workers never run BatchNorm networks (skip_unet trains on one thread)
    const { loss, vb, grads, stats } = pool
      ? await pool.step({ x, levels, noise, stepSeed, batch, denom, t, condition, main: shard })
      : shard(x, levels, noise, stepSeed, 0, batch, denom, t, condition);
    return {
      loss,
      record: { loss, ...(vb === undefined ? {} : { vb }), lr: optimizerOf(m).lr },
      note: vbNote(vb),
      commit: () => {
        m.optimizer?.apply(grads);
        if (stats?.length) applyBatchStats(m.store, stats);
        pool?.apply();
        tf.dispose([...grads.values()]);
        m.ema?.updateFromStore(m.store);
      },
      discard: () => {
        tf.dispose([...grads.values()]);
        pool?.discard();
      },
    };
  };
}

/** The progress line's bound term (learned_range: vb in bits per dimension). */
const vbNote = (vb: number | undefined) =>
  vb === undefined ? undefined : `vb ${vb.toPrecision(4)} bits/dim`;

/** The ONNX Runtime step: the same draws, loss and gradients from the UNet's training graph. */
function ortDdpmStep(
  m: DdpmModel,
  ort: OrtDdpmEngine,
  sampler: TrainingSampler,
  batch: number,
): StepFn {
  const meanType = m.diffusion.meanType;
  const learned = learnsVariance(m.diffusion.varType);
  return async () => {
    const d = drawBatch(m, (await sampler.next()).img, batch);
    const coefs = needsLossCoefs(meanType, learned)
      ? lossCoefs(m.diffusion.chain(), meanType, d.t)
      : undefined;
    const { loss, vb, grads, stats } = await ort.lossAndGrads(d.x, d.levels, d.noise, d.stepSeed, {
      coefs,
      condition: d.condition,
    });
    return {
      loss,
      record: { loss, ...(vb === undefined ? {} : { vb }), lr: ort.optimizer.lr },
      note: vbNote(vb),
      commit: () => {
        ort.optimizer.apply(grads);
        ort.applyBatchStats(stats);
        m.ema?.update(ort.weights);
      },
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
    const params = m.ort ? TfParamStore.fromTorch(m.denoiser.params, m.ort.weights) : m.store;
    const imgs = await sampleImages(m.denoiser, params, schedule, {
      n,
      size: crop,
      steps: opts.sampleSteps ?? 50,
      rng: new Rng(seedGrid), // the same start noise each validation
      diffusion: cfg.model.diffusion,
      condition: fixed?.condition,
    });
    if (params !== m.store) params.dispose();
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
  let pool: WorkerPool | null = null;
  try {
    const backend = await startBackend('ddpm', opts.backend, run.say);
    const { resolution: crop, batch_size: batch } = cfg.datasets.train;
    const pairs = await openPairs(dataroot);
    run.say(`data: ${pairs.length} pairs from ${dataroot}, ${crop}x${crop} crops, batch ${batch}`);
    run.writeFolder(cfg, ckpt?.step ?? null);
    m = await buildModel(cfg, ckpt, seed, opts, run.say, () => run.stop.stopRequested).catch(
      (e) => {
        if (e instanceof InitStopped || e instanceof SetupStopped)
          throw new UserError(`${e.message}; nothing to save yet`);
        throw e;
      },
    );
    const samplerSeed = deriveSeed(seed, 'sampler');
    const sampler = makeSampler(pairs, { crop, batch, seed: samplerSeed, state: ckpt?.sampler });
    const workers = ddpmWorkers(opts, m, batch, run.say);
    pool = await startWorkers(workers, opts.backend, cfg, m);
    const params = [...weightsOf(m).values()].reduce((a, w) => a + w.data.length, 0);
    run.say(`model: ${params.toLocaleString('en-US')} parameters; run folder ${run.out}`);
    const model = m;
    const step = model.ort
      ? ortDdpmStep(model, model.ort, sampler, batch)
      : ddpmStep(model, sampler, pool, conv2dFor(backend), crop, batch);
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
    await pool?.close();
    await m?.ort?.release();
    m?.optimizer?.dispose();
    m?.store.dispose();
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
    weights: weightsOf(m),
    ema: m.ema?.weights ?? null,
    optimizer: optimizerOf(m).state(),
    rng: m.rng.getState(),
    sampler: sampler.getState(),
    extra: { seed, schedule: cfg.model.beta_schedule.train, loss: m.diffusion.loss },
  };
}

/**
 * Loss (sum over the shard / denom) and gradients for a slice of the batch: shared by the
 * main thread and the workers. `x`, `noise` hold only the slice (NCHW), `levels` its levels.
 */
export function shardLossAndGrads(
  diffusion: GaussianDiffusion,
  store: TfParamStore,
  conv2d: Conv2dFn | undefined,
  a: {
    x: Float32Array;
    levels: Float32Array;
    noise: Float32Array;
    stepSeed: number;
    offset: number;
    n: number;
    crop: number;
    denom: number;
    /** The batch's time step (mean type x_prev). */
    t?: number;
    /** The slice's condition images (conditional mode), NCHW. */
    condition?: Float32Array;
  },
): ShardResult {
  const { n, crop } = a;
  const nhwc = (v: Float32Array) =>
    tf.transpose(tf.tensor(v, [n, v.length / (n * crop * crop), crop, crop]), [0, 2, 3, 1]);
  const names = trainableSpecs(store.specs).map((s) => s.name);
  const vars = names.map((k) => store.get(k));
  let vb: number | undefined;
  const ops = new TrainOps(store, { conv2d, stepSeed: a.stepSeed, sampleOffset: a.offset });
  const { value, grads } = tf.tidy(() => {
    const x = nhwc(a.x);
    const noise = nhwc(a.noise);
    const condition = a.condition && nhwc(a.condition);
    return tf.variableGrads(() => {
      const terms = diffusion.pLossTerms(
        ops,
        x,
        { levels: a.levels, noise, t: a.t, condition },
        a.denom,
      );
      if (terms.vb) vb = terms.vb.dataSync()[0];
      return terms.loss;
    }, vars);
  });
  const loss = value.dataSync()[0];
  value.dispose();
  const out = new Map<string, tf.Tensor>();
  for (const [i, k] of names.entries()) out.set(k, grads[vars[i].name]);
  return { loss, vb, grads: out, stats: takeBatchStats(ops) };
}

/** PyTorch's running-statistics update of the BatchNorm buffers held in a tfjs store. */
function applyBatchStats(store: TfParamStore, stats: readonly BatchStatValues[]): void {
  const current = new Map(
    stats.flatMap((s) =>
      ['running_mean', 'running_var', 'num_batches_tracked'].map((b) => {
        const k = `${s.site}.${b}`;
        return [k, { shape: store.get(k).shape, data: store.get(k).dataSync() }] as const;
      }),
    ),
  );
  for (const [k, v] of updateRunningStats(current, stats)) {
    const t = tf.tensor(v.data, v.shape);
    store.get(k).assign(t);
    t.dispose();
  }
}
