/**
 * `dif-train head`: train the fusion head on the decoder features of a frozen DDPM
 * (reference train_fusion_head_msrs.py + Fusion_model.py), with the same checkpoint /
 * resume / progress / log / Ctrl-C / NaN behaviour as `dif-train ddpm`.
 *
 * Each step: a batch of random crops (seeded, resumable), the frozen UNet's features at the
 * configured time steps (forward only, outside the gradient tape; deterministic noise by
 * default), the head's forward pass, the fusion loss (intensity + gradient), one Adam step.
 * Each epoch: the learning rate of the configured scheduler, validation loss on centre
 * crops of the validation pairs, and a PNG of fused | visible | infrared.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Progress } from '@dif-fusion/cli-kit';
import { FusionHead, fusionLossOptions, headConfigFromReference } from '@dif-fusion/fusion-head';
import { headLearningRate } from '@dif-fusion/fusion-head/tfjs';
import { centerCrops, type PairDataset, type TrainingSampler } from '@dif-fusion/io';
import type { ParamSpec, TorchWeights } from '@dif-fusion/nn';
import { deriveSeed, Rng } from '@dif-fusion/schedules';
import {
  buildDenoiser,
  buildFeatureCache,
  type CachedBatch,
  cacheOrder,
  createHeadEngine,
  type Denoiser,
  type HeadBatch,
  type HeadEngine,
} from '@dif-fusion/train';
import { type Checkpoint, loadCheckpoint, networkWeights } from './checkpoint';
import {
  ddpmModelOf,
  type HeadTrainConfig,
  headScheduler,
  loadHeadConfig,
  resolveRunConfig,
  type UnetJson,
  validateHeadConfig,
} from './config';
import { makeSampler, openPairs } from './data';
import { UserError } from './errors';
import { writeGrid } from './images';
import { type StepFn, type TrainResult, trainingLoop } from './loop';
import { writeLossChart } from './plot';
import type { LogRecord } from './run';
import {
  type LoadedCheckpoint,
  noteStripped,
  RunContext,
  type RunOptions,
  resumePoint,
  runSeed,
  startBackend,
} from './session';

export interface HeadTrainOptions extends RunOptions {
  /** Config file path or object (reference fusion_train.json format). */
  config?: string | Partial<HeadTrainConfig>;
  /** DDPM checkpoint file, checkpoint folder or ddpm run folder. Not needed with --resume. */
  ddpm?: string;
  /** Features from the DDPM's EMA weights (train.ema_decay); kept on resume. */
  ema?: boolean;
  /** Validation pairs (ir/ + vi/); default datasets.val.dataroot, else none. */
  val?: string;
  /** train.n_epoch override. */
  epochs?: number;
  /** Head forward pass: `full` (default) or the official `reference`. */
  mode?: 'reference' | 'full';
  /** Head output variant (model_df.output): rgb (official), luma or weight. */
  output?: 'rgb' | 'luma' | 'weight';
  /** Feed the sources to the final layers (model_df.source_skip). */
  sourceSkip?: boolean;
  /** Feature noise: `fixed` (default, deterministic) or `random` (official feats()). */
  noise?: 'fixed' | 'random';
  /**
   * Start from the weights of this head checkpoint (file or run/checkpoints folder) with a
   * fresh optimizer and schedule: fine-tuning, or training on with other settings.
   */
  init?: string;
  /** train.loss.color_weight override: weight of the chroma term (0 = official loss). */
  colorWeight?: number;
  /** train.loss.alpha override: weight of the gradient term (official 1). */
  alpha?: number;
  /** train.loss.space override: where the loss compares intensities (rgb, official, or luma). */
  lossSpace?: 'rgb' | 'luma';
  /** train.loss.target override: max (official) or salient (luma space). */
  target?: 'max' | 'salient';
  /** train.feature_cache override: crops per training pair whose features are cached. */
  featureCache?: number;
}

/** The run's config; on resume the checkpoint's is authoritative. */
function resolveConfig(opts: HeadTrainOptions, ckpt: LoadedCheckpoint | null): HeadTrainConfig {
  return resolveRunConfig(opts, ckpt, {
    load: loadHeadConfig,
    validate: validateHeadConfig,
    fixedFlags: [
      ['--mode', opts.mode],
      ['--output', opts.output],
      ['--source-skip', opts.sourceSkip],
      ['--noise', opts.noise],
      ['--init', opts.init],
      ['--color-weight', opts.colorWeight],
      ['--loss-space', opts.lossSpace],
      ['--alpha', opts.alpha],
      ['--target', opts.target],
      ['--feature-cache', opts.featureCache],
    ],
    mayChange: '--epochs, --data, --val, --keep and --backend',
    fresh: (cfg) => {
      if (opts.mode !== undefined) cfg.model_df.mode = opts.mode;
      if (opts.output !== undefined) cfg.model_df.output = opts.output;
      if (opts.sourceSkip !== undefined) cfg.model_df.source_skip = opts.sourceSkip;
      if (opts.noise !== undefined) cfg.model_df.noise = opts.noise;
      if (opts.colorWeight !== undefined)
        cfg.train.loss = { ...(cfg.train.loss ?? {}), color_weight: opts.colorWeight };
      if (opts.alpha !== undefined)
        cfg.train.loss = { ...(cfg.train.loss ?? {}), alpha: opts.alpha };
      if (opts.lossSpace !== undefined)
        cfg.train.loss = { ...(cfg.train.loss ?? {}), space: opts.lossSpace };
      if (opts.target !== undefined)
        cfg.train.loss = { ...(cfg.train.loss ?? {}), target: opts.target };
      if (opts.featureCache !== undefined) cfg.train.feature_cache = opts.featureCache;
    },
    always: (cfg) => {
      if (opts.epochs !== undefined) cfg.train.n_epoch = opts.epochs;
      if (opts.data !== undefined) cfg.datasets.train.dataroot = opts.data;
      if (opts.val !== undefined)
        cfg.datasets.val = { ...(cfg.datasets.val ?? {}), dataroot: opts.val };
    },
  });
}

/** The frozen DDPM the head reads features of. */
interface FrozenDdpm {
  ckpt: LoadedCheckpoint;
  denoiser: Denoiser;
  unet: UnetJson;
  /** Its weights, checked against its UNet. */
  weights: TorchWeights;
  noise: 'fixed' | 'random';
  /** The features come from the DDPM's EMA weights. */
  ema: boolean;
}

function frozenDdpm(
  cfg: HeadTrainConfig,
  path: string,
  say: (m: string) => void,
  ema = false,
): FrozenDdpm {
  const ckpt = loadCheckpoint(path, 'ddpm', { ema });
  const { unet, schedule: ddpmSchedule, varType } = ddpmModelOf(ckpt.config, ckpt.path);
  const crop = cfg.datasets.train.resolution;
  const levels = unet.channel_multiplier.length - 1;
  if (crop % 2 ** levels !== 0)
    throw new UserError(
      `crop ${crop} must be a multiple of ${2 ** levels} for this DDPM (${levels + 1} levels)`,
    );
  const denoiser = buildDenoiser(unet, crop, { varType });
  const weights = networkWeights(denoiser.params, ckpt.weights, ckpt.path, 'DDPM weight');
  const train = cfg.model.beta_schedule.train;
  if (ddpmSchedule && JSON.stringify(ddpmSchedule) !== JSON.stringify(train))
    say(
      `warning: model.beta_schedule.train ${JSON.stringify(train)} differs from the DDPM's ${JSON.stringify(ddpmSchedule)}`,
    );
  const noise = cfg.model_df.noise ?? 'fixed';
  return { ckpt, denoiser, unet, weights, noise, ema };
}

/** The head being trained: its network, the engine (weights, optimizer, steps), the Rng. */
interface HeadModel {
  head: FusionHead;
  engine: HeadEngine;
  rng: Rng;
}

function buildHead(
  cfg: HeadTrainConfig,
  ddpm: FrozenDdpm,
  source: LoadedCheckpoint | null,
  resumed: LoadedCheckpoint | null,
  seed: number,
  backend: string,
  opts: HeadTrainOptions,
): HeadModel {
  // the head's channels are the DDPM's UNet's (its checkpoint's config is authoritative)
  const head = new FusionHead(
    headConfigFromReference(cfg, ddpm.unet, { mode: cfg.model_df.mode ?? 'full' }),
    ddpm.unet,
  );
  const engine = createHeadEngine({
    backend: opts.backend ?? 'onnxruntime',
    tfjsBackend: backend,
    head,
    denoiser: ddpm.denoiser,
    denoiserWeights: ddpm.weights,
    weights: source ? headWeights(head.params(), source) : null,
    seed,
    optimizer: { type: cfg.train.optimizer.type, lr: cfg.train.optimizer.lr },
    optimizerState: resumed?.optimizer,
    crop: cfg.datasets.train.resolution,
    loss: fusionLossOptions(cfg.train.loss ?? {}),
    noise: ddpm.noise,
    schedule: cfg.model.beta_schedule.train,
    featureCache: (cfg.train.feature_cache ?? 0) > 0,
    ...{ device: opts.device, threads: opts.threads },
  });
  const rng = resumed?.rng ? Rng.fromState(resumed.rng) : new Rng(seed);
  return { head, engine, rng };
}

/**
 * The weights of a head checkpoint, which must fit the head being trained: every parameter
 * with its shape, and no other key (a head of another shape has fewer or more convolutions).
 */
function headWeights(specs: ParamSpec[], source: LoadedCheckpoint): TorchWeights {
  const known = new Set(specs.map((p) => p.name));
  const unexpected = [...source.weights.keys()].filter((k) => !known.has(k));
  const problem =
    specs
      .map((p) => [p, source.weights.get(p.name)] as const)
      .map(([p, w]) =>
        !w
          ? `${p.name} is missing`
          : w.shape.join(',') !== p.shape.join(',')
            ? `${p.name} has shape [${w.shape}], expected [${p.shape}]`
            : null,
      )
      .find((m) => m !== null) ??
    (unexpected.length > 0 ? `unexpected key(s) ${unexpected.slice(0, 5).join(', ')}` : null);
  if (problem) throw new UserError(`${source.path}: its weights do not fit this head (${problem})`);
  return networkWeights(specs, source.weights, source.path, 'head weight');
}

/**
 * The feature cache: the features of `feature_cache` sampler epochs of crops, computed once
 * (empty when off; null when a stop was requested while building it).
 */
async function featureCache(
  cfg: HeadTrainConfig,
  pairs: PairDataset,
  m: HeadModel,
  seed: number,
  run: RunContext,
): Promise<CachedBatch[] | null> {
  const epochs = cfg.train.feature_cache ?? 0;
  if (epochs === 0) return [];
  const cacheFeatures = m.engine.cacheFeatures.bind(m.engine);
  const { resolution: crop, batch_size: batch } = cfg.datasets.train;
  const sampler = makeSampler(pairs, { crop, batch, seed: deriveSeed(seed, 'featureCache') });
  const k = epochs * sampler.batchesPerEpoch;
  // The progress style of every dif-fusion tool, as lines through `say`.
  const progress = new Progress({
    label: 'feature cache',
    unit: 'batches',
    stream: { write: (s: string) => run.say(s.replace(/\n$/, '')) },
    bar: false,
    every: 50,
  });
  progress.start(k);
  return buildFeatureCache(k, async () => cacheFeatures((await sampler.next()).img, batch), {
    progress: (done, bytes) =>
      progress.update(done, { extra: `${(bytes / 2 ** 30).toFixed(2)} GiB` }),
    stopRequested: () => run.stop.stopRequested,
  });
}

/**
 * One step of `dif-train head`, whichever engine runs it: the epoch's learning rate, a batch
 * (fresh crops, or a cached batch in the epoch's shuffled order), one engine step (which
 * leaves the weights unchanged when its loss is not finite).
 */
function headStep(
  cfg: HeadTrainConfig,
  m: HeadModel,
  sampler: TrainingSampler,
  cache: CachedBatch[],
  stepsPerEpoch: number,
  seed: number,
): StepFn {
  const batch = cfg.datasets.train.batch_size;
  const nEpoch = cfg.train.n_epoch;
  const scheduler = headScheduler(cfg);
  let order: { epoch: number; order: number[] } | null = null;
  return async (step) => {
    const epoch = Math.floor(step / stepsPerEpoch);
    const lr = headLearningRate(cfg.train.optimizer.lr, epoch, nEpoch, scheduler);
    m.engine.setLearningRate(lr);
    let b: HeadBatch;
    if (cache.length > 0) {
      if (order?.epoch !== epoch) order = { epoch, order: cacheOrder(cache.length, epoch, seed) };
      const c = cache[order.order[step % cache.length]];
      b = { x: c.x, n: c.n, cached: c };
    } else b = { x: (await sampler.next()).img, n: batch };
    const { loss, terms } = await m.engine.step(b);
    return {
      loss,
      record: { epoch, loss, ...terms, lr },
      note: `epoch ${epoch + 1}/${nEpoch}`,
    };
  };
}

/**
 * Validation at the end of each epoch: the loss on centre crops of the validation pairs
 * (cut once; with fixed noise their features are computed once too), a PNG of
 * fused | visible | infrared, the `val` log record and the loss curve.
 */
function headValidation(
  run: RunContext,
  cfg: HeadTrainConfig,
  m: HeadModel,
  valSet: PairDataset | null,
): (step: number, epoch: number) => Promise<void> {
  const crop = cfg.datasets.train.resolution;
  let valCrops: Float32Array | null = null;
  return async (step, epoch) => {
    const record: LogRecord = { step, epoch, event: 'val', time: run.elapsed() };
    if (valSet && valSet.length > 0) {
      valCrops ??= await centerCrops(valSet, crop);
      const show = Math.min(cfg.train.val_images ?? 4, valSet.length);
      const evaluate = (x: Float32Array, n: number, index: number) =>
        m.engine.evaluate({ x, n }, index);
      const r = await validationPass(valCrops, valSet.length, cfg, show, evaluate);
      record.val_loss = r.loss;
      const path = join(run.out, 'val', `epoch-${String(epoch).padStart(4, '0')}.png`);
      mkdirSync(join(run.out, 'val'), { recursive: true });
      const strip = [
        { data: r.fusedShown, channels: 3, pick: [0, 1, 2] },
        { data: valCrops, channels: 4, pick: [0, 1, 2] },
        { data: valCrops, channels: 4, pick: [3] },
      ];
      await writeGrid(path, strip, show, crop);
      record.path = path;
      run.progress.log(`epoch ${epoch}: validation loss ${r.loss.toPrecision(4)} (${path})`);
    }
    run.log.write(record);
    await writeLossChart(
      join(run.out, 'loss.png'),
      run.log.read(),
      'dif-train head: training and validation loss',
    );
  };
}

/** The mean validation loss over `count` crops and the fused images of the first `show`. */
async function validationPass(
  x: Float32Array,
  count: number,
  cfg: HeadTrainConfig,
  show: number,
  evaluate: (xs: Float32Array, n: number, batchIndex: number) => Promise<ValBatch>,
): Promise<{ loss: number; fusedShown: Float32Array }> {
  const { resolution: crop, batch_size: batch } = cfg.datasets.train;
  const per = 4 * crop * crop;
  const fusedShown = new Float32Array(show * 3 * crop * crop);
  let sum = 0;
  for (let i = 0; i < count; i += batch) {
    const n = Math.min(batch, count - i);
    const r = await evaluate(x.subarray(i * per, (i + n) * per), n, i / batch);
    sum += r.loss * n;
    if (i < show) {
      const take = Math.min(n, show - i);
      fusedShown.set(r.fused.subarray(0, take * 3 * crop * crop), i * 3 * crop * crop);
    }
  }
  return { loss: sum / count, fusedShown };
}

/** The loss and fused images `[n,3,H,W]` of one validation batch. */
interface ValBatch {
  loss: number;
  fused: Float32Array;
}

/** The checkpoint of `step`: head weights, optimizer, RNG and sampler states, config. */
function headCheckpoint(
  cfg: HeadTrainConfig,
  m: HeadModel,
  ddpm: FrozenDdpm,
  sampler: TrainingSampler,
  seed: number,
  step: number,
  stepsPerEpoch: number,
): Checkpoint {
  return {
    kind: 'head',
    step,
    epoch: Math.floor(step / stepsPerEpoch),
    config: cfg,
    model: { ...m.head.toJSON() },
    weights: m.engine.weights(),
    optimizer: m.engine.optimizerState(),
    rng: m.rng.getState(),
    sampler: sampler.getState(),
    extra: {
      seed,
      ddpm: ddpm.ckpt.path,
      ddpm_step: ddpm.ckpt.step,
      unet: ddpm.unet,
      noise: ddpm.noise,
      schedule: cfg.model.beta_schedule.train,
      ...(ddpm.ema ? { ddpm_ema: true } : {}),
    },
  };
}

/** Open the training and validation pairs and say what they are. */
async function openHeadData(
  cfg: HeadTrainConfig,
  say: (m: string) => void,
): Promise<{ pairs: PairDataset; valSet: PairDataset | null }> {
  const dataroot = cfg.datasets.train.dataroot as string;
  const { resolution: crop, batch_size: batch } = cfg.datasets.train;
  const pairs = await openPairs(dataroot);
  const valRoot = cfg.datasets.val?.dataroot;
  const valSet = valRoot && valRoot !== 'Path_DATASET' ? await openPairs(valRoot) : null;
  const vals = valSet?.length
    ? `, ${valSet.length} validation pairs from ${valRoot}`
    : ', no validation pairs (--val)';
  say(
    `data: ${pairs.length} training pairs from ${dataroot}${vals}; ${crop}x${crop} crops, batch ${batch}`,
  );
  return { pairs, valSet };
}

/** Train (or resume training) the fusion head. */
export async function trainHead(opts: HeadTrainOptions): Promise<TrainResult> {
  const ckpt = resumePoint('head', opts);
  const cfg = resolveConfig(opts, ckpt);
  const seed = runSeed(opts, ckpt);
  const ddpmPath = opts.ddpm ?? (ckpt?.extra.ddpm as string | undefined);
  if (!ddpmPath)
    throw new UserError('no DDPM: pass --ddpm CKPT (a ddpm checkpoint file or run folder)');
  const dataroot = cfg.datasets.train.dataroot;
  if (!dataroot || dataroot === 'Path_DATASET')
    throw new UserError(
      'no training data: pass --data DIR (a folder holding ir/ and vi/) or set datasets.train.dataroot',
    );
  const run = new RunContext(opts, cfg.train.print_freq ?? 10);
  noteStripped(ckpt, run.say);
  let ddpm: FrozenDdpm | null = null;
  let m: HeadModel | null = null;
  try {
    const backend = await startBackend('head', opts.backend, run.say);
    const ema = opts.ema ?? ckpt?.extra.ddpm_ema === true;
    ddpm = frozenDdpm(cfg, ddpmPath, run.say, ema);
    if (ema) run.say('DDPM features from its EMA weights');
    const { pairs, valSet } = await openHeadData(cfg, run.say);
    run.writeFolder(cfg, ckpt?.step ?? null);
    const init = !ckpt && opts.init ? loadCheckpoint(opts.init, 'head') : null;
    m = buildHead(cfg, ddpm, ckpt ?? init, ckpt, seed, backend, opts);
    const provider = await m.engine.provider();
    if (provider) run.say(`ONNX Runtime: ${provider} execution provider`);
    const { resolution: crop, batch_size: batch } = cfg.datasets.train;
    const samplerSeed = deriveSeed(seed, 'sampler');
    const sampler = makeSampler(pairs, { crop, batch, seed: samplerSeed, state: ckpt?.sampler });
    run.say(headSummary(cfg, m, ddpm, init));
    const cache = await featureCache(cfg, pairs, m, seed, run);
    if (!cache) {
      run.say('interrupted while building the feature cache: nothing trained, nothing saved');
      const step = ckpt?.step ?? 0;
      const checkpoint = ckpt?.path ?? null;
      return { step, stopped: 'interrupted', checkpoint, losses: [], backend, workers: 1 };
    }
    const model = m;
    const frozen = ddpm;
    const stepsPerEpoch = cache.length > 0 ? cache.length : sampler.batchesPerEpoch;
    const validate = headValidation(run, cfg, model, valSet);
    run.stop.training = true;
    const r = await trainingLoop({
      run,
      start: ckpt?.step ?? 0,
      total: cfg.train.n_epoch * stepsPerEpoch,
      resumedFrom: ckpt?.path ?? null,
      step: headStep(cfg, model, sampler, cache, stepsPerEpoch, seed),
      save: (step) =>
        run.saveCheckpoint(headCheckpoint(cfg, model, frozen, sampler, seed, step, stepsPerEpoch)),
      saveAt: (step) => step % stepsPerEpoch === 0,
      afterStep: async (step) => {
        if (step % stepsPerEpoch === 0) await validate(step, step / stepsPerEpoch);
      },
      onStep: opts.onStep,
      lossHook: opts.lossHook,
    });
    if (r.stopped === 'done')
      run.say(`done: ${cfg.train.n_epoch} epochs (${r.step} steps), checkpoint ${r.checkpoint}`);
    return { ...r, backend, workers: 1 };
  } finally {
    run.dispose();
    await m?.engine.release();
  }
}

/** The one-line description of the head run. */
function headSummary(
  cfg: HeadTrainConfig,
  m: HeadModel,
  ddpm: FrozenDdpm,
  init: LoadedCheckpoint | null,
): string {
  const c = m.head.config;
  const color = cfg.train.loss?.color_weight;
  const space = cfg.train.loss?.space;
  return `head: ${m.engine.parameterCount.toLocaleString('en-US')} parameters, mode ${c.mode}, time steps [${c.time_steps}], feature noise ${ddpm.noise}${color ? `, colour weight ${color}` : ''}${space === 'luma' ? ', loss on luma' : ''}${cfg.train.loss?.target === 'salient' ? ', salient target' : ''}; DDPM ${ddpm.ckpt.path}${init ? `; initial weights ${init.path}` : ''}`;
}
