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
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { type BackendName, useBackend } from '@dif-fusion/backends';
import { makeFeatureExtractor } from '@dif-fusion/diffusion';
import {
  disposeFeatures,
  FusionHead,
  type HeadFeatures,
  HeadTrainer,
  headConfigFromReference,
  headLearningRate,
} from '@dif-fusion/fusion-head';
import { TfOps, TfParamStore } from '@dif-fusion/nn';
import { deriveSeed, NoiseSchedule, Rng } from '@dif-fusion/schedules';
import * as tf from '@tensorflow/tfjs-core';
import { type Checkpoint, listCheckpoints, loadCheckpoint, saveCheckpoint } from './checkpoint';
import {
  applyTrainOverrides,
  ddpmModelOf,
  deepMerge,
  type HeadTrainConfig,
  headScheduler,
  loadHeadConfig,
  refuseOnResume,
  validateHeadConfig,
} from './config';
import { centerCrops, makeSampler, openPairs, type SamplerState } from './data';
import type { TrainResult } from './ddpm';
import { UserError } from './errors';
import {
  buildFeatureCache,
  type CachedBatch,
  cacheBatch,
  cachedFeatures,
  cacheOrder,
} from './feature-cache';
import { writeGrid, writeRgb } from './images';
import { buildDenoiser, convFor } from './model';
import { Adam } from './optim';
import { plotLossCurve } from './plot';
import { Progress, RateMeter, RunLog, StopSignal } from './run';

export interface HeadTrainOptions {
  /** Config file path or object (reference fusion_train.json format). */
  config?: string | Partial<HeadTrainConfig>;
  /** DDPM checkpoint file, checkpoint folder or ddpm run folder. Not needed with --resume. */
  ddpm?: string;
  /** Training pairs (ir/ + vi/). */
  data?: string;
  /** Validation pairs (ir/ + vi/); default datasets.val.dataroot, else none. */
  val?: string;
  out: string;
  backend?: BackendName;
  /** train.n_epoch override. */
  epochs?: number;
  batch?: number;
  crop?: number;
  lr?: number;
  seed?: number;
  /** Head forward pass: `full` (default) or the official `reference`. */
  mode?: 'reference' | 'full';
  /** Feature noise: `fixed` (default, deterministic) or `random` (official feats()). */
  noise?: 'fixed' | 'random';
  /**
   * Start from the weights of this head checkpoint (file or run/checkpoints folder) with a
   * fresh optimizer and schedule: fine-tuning, or training on with other settings.
   */
  init?: string;
  /** train.loss.color_weight override: weight of the chroma term (0 = official loss). */
  colorWeight?: number;
  /** train.feature_cache override: crops per training pair whose features are cached. */
  featureCache?: number;
  resume?: boolean | string;
  keep?: number;
  quiet?: boolean;
  progressBar?: boolean;
  handleSigint?: boolean;
  onStep?: (step: number, loss: number) => void;
  lossHook?: (step: number, loss: number) => number;
}

const DEFAULT_KEEP = 3;

function resolveConfig(
  opts: HeadTrainOptions,
  ckpt: (Checkpoint & { path: string }) | null,
): HeadTrainConfig {
  let cfg: HeadTrainConfig;
  if (ckpt) {
    refuseOnResume(
      [
        ['--config', opts.config],
        ['--batch', opts.batch],
        ['--crop', opts.crop],
        ['--lr', opts.lr],
        ['--seed', opts.seed],
        ['--mode', opts.mode],
        ['--noise', opts.noise],
        ['--init', opts.init],
        ['--color-weight', opts.colorWeight],
        ['--feature-cache', opts.featureCache],
      ],
      '--epochs, --data, --val, --keep and --backend',
    );
    cfg = validateHeadConfig(ckpt.config, ckpt.path);
  } else {
    cfg =
      typeof opts.config === 'string' || opts.config === undefined
        ? loadHeadConfig(opts.config)
        : deepMerge(loadHeadConfig(), opts.config);
    applyTrainOverrides(cfg, opts);
    if (opts.mode !== undefined) cfg.model_df.mode = opts.mode;
    if (opts.noise !== undefined) cfg.model_df.noise = opts.noise;
    if (opts.colorWeight !== undefined)
      cfg.train.loss = { ...(cfg.train.loss ?? {}), color_weight: opts.colorWeight };
    if (opts.featureCache !== undefined) cfg.train.feature_cache = opts.featureCache;
  }
  if (opts.epochs !== undefined) cfg.train.n_epoch = opts.epochs;
  if (opts.data !== undefined) cfg.datasets.train.dataroot = opts.data;
  if (opts.val !== undefined)
    cfg.datasets.val = { ...(cfg.datasets.val ?? {}), dataroot: opts.val };
  return validateHeadConfig(cfg);
}

/** Split `[B,4,H,W]` batches into vis `[B,3,H,W]` and ir `[B,1,H,W]` tensors. */
function toBatch(x: Float32Array, n: number, c: number): { vis: tf.Tensor; ir: tf.Tensor } {
  return tf.tidy(() => {
    const t = tf.tensor(x, [n, 4, c, c]);
    return {
      vis: tf.slice(t, [0, 0, 0, 0], [n, 3, c, c]),
      ir: tf.slice(t, [0, 3, 0, 0], [n, 1, c, c]),
    };
  });
}

/** Train (or resume training) the fusion head. */
export async function trainHead(opts: HeadTrainOptions): Promise<TrainResult> {
  const out = resolve(opts.out);
  const ckptDir = join(out, 'checkpoints');
  const quiet = opts.quiet ?? false;
  const say = (m: string) => {
    if (!quiet) process.stderr.write(`${m}\n`);
  };

  let ckpt: (Checkpoint & { path: string }) | null = null;
  if (opts.resume)
    ckpt = loadCheckpoint(typeof opts.resume === 'string' ? opts.resume : out, 'head');
  else if (listCheckpoints(ckptDir).length > 0)
    throw new UserError(
      `${opts.out} already holds checkpoints: pass --resume to continue that run, or choose another --out`,
    );
  const cfg = resolveConfig(opts, ckpt);
  const seed = ckpt ? Number((ckpt.extra as { seed?: number }).seed ?? 0) : (opts.seed ?? 0);
  const ddpmPath = opts.ddpm ?? (ckpt?.extra as { ddpm?: string } | undefined)?.ddpm;
  if (!ddpmPath)
    throw new UserError('no DDPM: pass --ddpm CKPT (a ddpm checkpoint file or run folder)');
  const ddpm = loadCheckpoint(ddpmPath, 'ddpm');
  const { unet: unetJson, schedule: ddpmSchedule } = ddpmModelOf(ddpm.config, ddpm.path);
  const dataroot = cfg.datasets.train.dataroot;
  if (!dataroot || dataroot === 'Path_DATASET')
    throw new UserError(
      'no training data: pass --data DIR (a folder holding ir/ and vi/) or set datasets.train.dataroot',
    );

  const backendName = opts.backend ?? 'wasm';
  const backend = await useBackend(backendName);
  say(`dif-train head: backend ${backendName}${backend !== backendName ? ` (${backend})` : ''}`);

  const crop = cfg.datasets.train.resolution;
  const levels = unetJson.channel_multiplier.length - 1;
  if (crop % 2 ** levels !== 0)
    throw new UserError(
      `crop ${crop} must be a multiple of ${2 ** levels} for this DDPM (${levels + 1} levels)`,
    );
  const batch = cfg.datasets.train.batch_size;
  const pairs = await openPairs(dataroot);
  const valRoot = cfg.datasets.val?.dataroot;
  const valSet = valRoot && valRoot !== 'Path_DATASET' ? await openPairs(valRoot) : null;
  const valCount = valSet?.length ?? 0;
  say(
    `data: ${pairs.length} training pairs from ${dataroot}${valCount ? `, ${valCount} validation pairs from ${valRoot}` : ', no validation pairs (--val)'}; ${crop}x${crop} crops, batch ${batch}`,
  );

  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, 'config.json'), `${JSON.stringify(cfg, null, 2)}\n`);
  const log = new RunLog(out);
  if (ckpt) log.truncateAfter(ckpt.step);

  // Frozen DDPM.
  const denoiser = buildDenoiser(unetJson, crop);
  const unetStore = TfParamStore.fromTorch(denoiser.params, ddpm.weights);
  const conv2d = convFor(backend);
  const unetOps = new TfOps(unetStore, { training: false, conv2d });
  const schedule = new NoiseSchedule(cfg.model.beta_schedule.train);
  if (
    ddpmSchedule &&
    JSON.stringify(ddpmSchedule) !== JSON.stringify(cfg.model.beta_schedule.train)
  )
    say(
      `warning: model.beta_schedule.train ${JSON.stringify(cfg.model.beta_schedule.train)} differs from the DDPM's ${JSON.stringify(ddpmSchedule)}`,
    );
  const noiseMode = cfg.model_df.noise ?? 'fixed';
  // Forward only: the extractor runs outside the gradient tape; the UNet's up path stops at
  // the finest feature the head reads.
  const features = makeFeatureExtractor(
    (xNoisy, level, minDecoderIndex) => denoiser.features(unetOps, xNoisy, level, minDecoderIndex),
    schedule,
    { noise: noiseMode, seed },
  );

  // Head.
  const headCfg = headConfigFromReference(cfg, {
    unet: {
      inner_channel: unetJson.inner_channel,
      channel_multiplier: unetJson.channel_multiplier,
      res_blocks: unetJson.res_blocks,
    },
    mode: cfg.model_df.mode ?? 'full',
  });
  const head = new FusionHead(headCfg);
  const specs = head.params();
  const init = !ckpt && opts.init ? loadCheckpoint(opts.init, 'head') : null;
  const source = ckpt ?? init;
  let store: TfParamStore;
  if (!source) store = TfParamStore.init(specs, seed);
  else {
    try {
      store = TfParamStore.fromTorch(specs, source.weights);
    } catch (err) {
      throw new UserError(
        `${source.path}: its weights do not fit this head (${(err as Error).message})`,
      );
    }
  }
  const optimizer = new Adam(new Map(store.names().map((n) => [n, store.get(n)])), {
    type: cfg.train.optimizer.type,
    lr: cfg.train.optimizer.lr,
  });
  if (ckpt?.optimizer) optimizer.load(ckpt.optimizer);
  const lossCfg = cfg.train.loss ?? {};
  const trainer = new HeadTrainer({
    head,
    params: store,
    features,
    optimizer,
    conv2d,
    loss: { alpha: lossCfg.alpha ?? 1, colorWeight: lossCfg.color_weight ?? 0 },
  });
  const rng = ckpt?.rng ? Rng.fromState(ckpt.rng as never) : new Rng(seed);
  const sampler = makeSampler(pairs, {
    crop,
    batch,
    seed: deriveSeed(seed, 'sampler'),
    state: ckpt?.sampler as SamplerState | null,
  });
  say(
    `head: ${store.count().toLocaleString('en-US')} parameters, mode ${headCfg.mode}, time steps [${headCfg.time_steps}], feature noise ${noiseMode}${lossCfg.color_weight ? `, colour weight ${lossCfg.color_weight}` : ''}; DDPM ${ddpm.path}${init ? `; initial weights ${init.path}` : ''}`,
  );

  const stop = new StopSignal(opts.handleSigint ?? true);
  // Feature cache: the features of `feature_cache` sampler epochs of crops, computed once.
  const cacheEpochs = cfg.train.feature_cache ?? 0;
  const release = () => {
    stop.dispose();
    optimizer.dispose();
    store.dispose();
    unetStore.dispose();
  };
  let pool: CachedBatch[] = [];
  if (cacheEpochs > 0) {
    const cacheSampler = makeSampler(pairs, {
      crop,
      batch,
      seed: deriveSeed(seed, 'featureCache'),
    });
    const built = await buildFeatureCache(
      cacheEpochs * cacheSampler.batchesPerEpoch,
      async () => {
        const x = (await cacheSampler.next()).img;
        const b = toBatch(x, batch, crop);
        try {
          return { x, n: batch, feats: trainer.features(b) };
        } finally {
          tf.dispose([b.vis, b.ir]);
        }
      },
      { say, stopRequested: () => stop.stopRequested },
    );
    if (!built) {
      release();
      say('interrupted while building the feature cache: nothing trained, nothing saved');
      return {
        step: ckpt?.step ?? 0,
        stopped: 'interrupted',
        checkpoint: ckpt?.path ?? null,
        losses: [],
        backend,
        workers: 1,
      };
    }
    pool = built;
  }

  const nEpoch = cfg.train.n_epoch;
  const stepsPerEpoch = cacheEpochs > 0 ? pool.length : sampler.batchesPerEpoch;
  const total = nEpoch * stepsPerEpoch;
  let step = ckpt?.step ?? 0;
  let lastCkpt: string | null = ckpt?.path ?? null;
  const losses: number[] = [];
  const progress = new Progress({
    quiet,
    bar: opts.progressBar,
    printFreq: cfg.train.print_freq ?? 10,
  });
  const rate = new RateMeter();
  const t0 = Date.now();
  const keep = opts.keep ?? DEFAULT_KEEP;
  const scheduler = headScheduler(cfg);

  const save = () => {
    lastCkpt = saveCheckpoint(
      ckptDir,
      {
        kind: 'head',
        step,
        epoch: Math.floor(step / stepsPerEpoch),
        config: cfg as unknown as Record<string, unknown>,
        model: head.toJSON() as unknown as Record<string, unknown>,
        weights: store.toTorch(),
        optimizer: optimizer.state(),
        rng: rng.getState(),
        sampler: sampler.getState(),
        extra: {
          seed,
          ddpm: ddpm.path,
          ddpm_step: ddpm.step,
          unet: unetJson,
          noise: noiseMode,
          schedule: cfg.model.beta_schedule.train,
        },
      },
      { keep },
    );
    log.write({ step, event: 'checkpoint', path: lastCkpt, time: (Date.now() - t0) / 1000 });
  };

  // The validation centre crops never change: cut them once (and, with fixed noise, their
  // features: valCache).
  let valCrops: Float32Array | null = null;
  const valCache: CachedBatch[] = [];
  const validate = async (epoch: number) => {
    const record: Record<string, unknown> = {
      step,
      epoch,
      event: 'val',
      time: (Date.now() - t0) / 1000,
    };
    if (valSet && valCount > 0) {
      valCrops ??= await centerCrops(valSet, crop);
      const x = valCrops;
      const per = 4 * crop * crop;
      let sum = 0;
      const show = Math.min(cfg.train.val_images ?? 4, valCount);
      const fusedShown = new Float32Array(show * 3 * crop * crop);
      for (let i = 0; i < valCount; i += batch) {
        const n = Math.min(batch, valCount - i);
        const b = toBatch(x.subarray(i * per, (i + n) * per), n, crop);
        // Fixed noise: the validation features never change, so they are computed once.
        let feats: HeadFeatures | undefined;
        if (noiseMode === 'fixed') {
          const j = i / batch;
          if (!valCache[j]) {
            const f = trainer.features(b);
            valCache[j] = cacheBatch(x.subarray(i * per, (i + n) * per), n, f);
            disposeFeatures(f);
          }
          feats = cachedFeatures(valCache[j]);
        }
        const r = trainer.evaluate(b, feats);
        if (feats) disposeFeatures(feats);
        sum += r.loss * n;
        if (i < show) {
          const f = r.fused.dataSync() as Float32Array;
          const take = Math.min(n, show - i);
          fusedShown.set(f.subarray(0, take * 3 * crop * crop), i * 3 * crop * crop);
        }
        tf.dispose([b.vis, b.ir, r.fused]);
      }
      record.val_loss = sum / valCount;
      const path = join(out, 'val', `epoch-${String(epoch).padStart(4, '0')}.png`);
      mkdirSync(join(out, 'val'), { recursive: true });
      await writeGrid(
        path,
        [
          { data: fusedShown, channels: 3, pick: [0, 1, 2] },
          { data: x, channels: 4, pick: [0, 1, 2] },
          { data: x, channels: 4, pick: [3] },
        ],
        show,
        crop,
      );
      record.path = path;
      progress.log(
        `epoch ${epoch}: validation loss ${(record.val_loss as number).toPrecision(4)} (${path})`,
      );
    }
    log.write(record as never);
    await writeRgb(join(out, 'loss.png'), plotLossCurve(log.lossPoints()));
  };

  let stopped: TrainResult['stopped'] = 'done';
  let order: number[] | null = null;
  let orderEpoch = -1;
  progress.start(total, step);
  try {
    while (step < total) {
      // Let the event loop run (signal handlers: Ctrl-C / SIGTERM), even when a step awaits
      // nothing (feature cache).
      await new Promise((r) => setImmediate(r));
      const epoch = Math.floor(step / stepsPerEpoch);
      const lr = headLearningRate(cfg.train.optimizer.lr, epoch, nEpoch, scheduler);
      trainer.setLearningRate(lr);
      let b: ReturnType<typeof toBatch>;
      let feats: HeadFeatures | undefined;
      if (cacheEpochs > 0) {
        if (order === null || orderEpoch !== epoch) {
          order = cacheOrder(pool.length, epoch, seed);
          orderEpoch = epoch;
        }
        const c = pool[order[step % pool.length]];
        b = toBatch(c.x, c.n, crop);
        feats = cachedFeatures(c);
      } else b = toBatch((await sampler.next()).img, batch, crop);
      let r: ReturnType<HeadTrainer['step']>;
      try {
        if (opts.lossHook && !Number.isFinite(opts.lossHook(step + 1, 0))) {
          r = { loss: Number.NaN, lossIn: Number.NaN, lossGrad: Number.NaN, applied: false };
        } else r = trainer.step(b, feats);
      } finally {
        tf.dispose([b.vis, b.ir]);
        if (feats) disposeFeatures(feats);
      }
      if (!r.applied || !Number.isFinite(r.loss)) {
        stopped = 'nan';
        progress.stop();
        log.write({
          step: step + 1,
          event: 'nan',
          loss: String(r.loss),
          time: (Date.now() - t0) / 1000,
        });
        say(
          `loss is ${r.loss} at step ${step + 1}: training stopped; the last good checkpoint is ${lastCkpt ?? '(none written yet)'}. Try a lower learning rate (--lr).`,
        );
        break;
      }
      step += 1;
      losses.push(r.loss);
      const itps = rate.tick();
      log.write({
        step,
        epoch,
        loss: r.loss,
        loss_in: r.lossIn,
        loss_grad: r.lossGrad,
        ...(r.lossColor !== undefined ? { loss_color: r.lossColor } : {}),
        lr,
        'it/s': +itps.toFixed(3),
        time: +((Date.now() - t0) / 1000).toFixed(3),
      });
      progress.update(step, r.loss, itps, `epoch ${epoch + 1}/${nEpoch}`);
      opts.onStep?.(step, r.loss);
      if (step % stepsPerEpoch === 0) {
        save();
        await validate(step / stepsPerEpoch);
      }
      if (stop.stopRequested) {
        stopped = 'interrupted';
        break;
      }
    }
    if (
      stopped !== 'nan' &&
      !lastCkpt?.endsWith(`head-${String(step).padStart(8, '0')}.safetensors`)
    )
      save();
  } finally {
    progress.stop();
    release();
  }
  if (stopped === 'interrupted')
    say(`interrupted: checkpoint saved at step ${step} (${lastCkpt}); continue with --resume`);
  else if (stopped === 'done')
    say(`done: ${nEpoch} epochs (${step} steps), checkpoint ${lastCkpt}`);
  return { step, stopped, checkpoint: lastCkpt, losses, backend, workers: 1 };
}
