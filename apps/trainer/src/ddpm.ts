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
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { type BackendName, useBackend } from '@dif-fusion/backends';
import { DEFAULT_DIFFUSION_LOSS, GaussianDiffusion } from '@dif-fusion/diffusion';
import { TfParamStore } from '@dif-fusion/nn';
import { deriveSeed, drawDdpmStep, NoiseSchedule, Rng } from '@dif-fusion/schedules';
import * as tf from '@tensorflow/tfjs-core';
import { type Checkpoint, listCheckpoints, loadCheckpoint, saveCheckpoint } from './checkpoint';
import {
  applyTrainOverrides,
  type DdpmConfig,
  deepMerge,
  loadDdpmConfig,
  refuseOnResume,
  validateDdpmConfig,
} from './config';
import { makeSampler, openPairs, type SamplerState } from './data';
import { UserError } from './errors';
import { writeGrid, writeRgb } from './images';
import { buildDenoiser, convFor, type Denoiser, sampleImages } from './model';
import { Adam } from './optim';
import { plotLossCurve } from './plot';
import { Progress, RateMeter, RunLog, StopSignal } from './run';
import { TrainOps } from './train-ops';
import { WorkerPool } from './workers';

export interface DdpmTrainOptions {
  /** Config file path or object (reference format); default: the shipped small config. */
  config?: string | Partial<DdpmConfig>;
  /** Data folder with ir/ and vi/ (overrides datasets.train.dataroot). */
  data?: string;
  /** Run folder. */
  out: string;
  backend?: BackendName;
  /** train.n_iter override. */
  iters?: number;
  /** datasets.train.batch_size override. */
  batch?: number;
  /** datasets.train.resolution override (crop size). */
  crop?: number;
  /** train.optimizer.lr override. */
  lr?: number;
  seed?: number;
  /** Resume: true = latest checkpoint in `out`; a string = checkpoint file or folder. */
  resume?: boolean | string;
  /** Checkpoints kept (default 3; 0 = all). */
  keep?: number;
  /** Data-parallel workers (threads computing slices of each batch); default min(cores, 2). */
  workers?: number;
  /** Sampling steps of the validation grid (strided sampler, default 50). */
  sampleSteps?: number;
  /** Samples in the validation grid (default 4). */
  sampleCount?: number;
  /** No output on stderr. */
  quiet?: boolean;
  /** Show the progress bar (default: stderr is a TTY). */
  progressBar?: boolean;
  /** Handle Ctrl-C (default true). */
  handleSigint?: boolean;
  /** Called after every step with its loss. */
  onStep?: (step: number, loss: number) => void;
  /** Testing hook: replace the loss of a step (e.g. inject NaN). */
  lossHook?: (step: number, loss: number) => number;
}

export interface TrainResult {
  /** Last completed step. */
  step: number;
  /** Why training ended. */
  stopped: 'done' | 'interrupted' | 'nan';
  /** Path of the last checkpoint written (or resumed from). */
  checkpoint: string | null;
  /** Losses of the steps run in this call. */
  losses: number[];
  backend: string;
  workers: number;
}

const DEFAULT_KEEP = 3;

/** Resolve config, applying overrides; on resume the checkpoint's config is authoritative. */
function resolveConfig(
  opts: DdpmTrainOptions,
  ckpt: (Checkpoint & { path: string }) | null,
): DdpmConfig {
  let cfg: DdpmConfig;
  if (ckpt) {
    refuseOnResume(
      [
        ['--config', opts.config],
        ['--batch', opts.batch],
        ['--crop', opts.crop],
        ['--lr', opts.lr],
        ['--seed', opts.seed],
      ],
      '--iters, --data, --keep, --workers and --backend',
    );
    cfg = validateDdpmConfig(ckpt.config, ckpt.path);
  } else {
    cfg =
      typeof opts.config === 'string' || opts.config === undefined
        ? loadDdpmConfig(opts.config)
        : deepMerge(loadDdpmConfig(), opts.config);
    applyTrainOverrides(cfg, opts);
  }
  if (opts.iters !== undefined) cfg.train.n_iter = opts.iters;
  if (opts.data !== undefined) cfg.datasets.train.dataroot = opts.data;
  return validateDdpmConfig(cfg);
}

export function defaultWorkers(): number {
  const cores = (globalThis as { navigator?: { hardwareConcurrency?: number } }).navigator
    ?.hardwareConcurrency;
  return Math.max(1, Math.min(2, cores ?? 1));
}

/** Train (or resume training) the DDPM. */
export async function trainDdpm(opts: DdpmTrainOptions): Promise<TrainResult> {
  const out = resolve(opts.out);
  const ckptDir = join(out, 'checkpoints');
  const quiet = opts.quiet ?? false;
  const say = (m: string) => {
    if (!quiet) process.stderr.write(`${m}\n`);
  };

  // Resume or fresh start.
  let ckpt: (Checkpoint & { path: string }) | null = null;
  if (opts.resume) {
    ckpt = loadCheckpoint(typeof opts.resume === 'string' ? opts.resume : out, 'ddpm');
  } else if (listCheckpoints(ckptDir).length > 0) {
    throw new UserError(
      `${opts.out} already holds checkpoints: pass --resume to continue that run, or choose another --out`,
    );
  }
  const cfg = resolveConfig(opts, ckpt);
  const seed = ckpt ? Number((ckpt.extra as { seed?: number }).seed ?? 0) : (opts.seed ?? 0);
  const dataroot = cfg.datasets.train.dataroot;
  if (!dataroot || dataroot === 'TBD')
    throw new UserError(
      'no training data: pass --data DIR (a folder holding ir/ and vi/) or set datasets.train.dataroot',
    );

  const backendName = opts.backend ?? 'wasm';
  const backend = await useBackend(backendName);
  say(`dif-train ddpm: backend ${backendName}${backend !== backendName ? ` (${backend})` : ''}`);

  const crop = cfg.datasets.train.resolution;
  const batch = cfg.datasets.train.batch_size;
  const pairs = await openPairs(dataroot);
  say(`data: ${pairs.length} pairs from ${dataroot}, ${crop}x${crop} crops, batch ${batch}`);

  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, 'config.json'), `${JSON.stringify(cfg, null, 2)}\n`);
  const log = new RunLog(out);
  if (ckpt) log.truncateAfter(ckpt.step);

  const schedule = new NoiseSchedule(cfg.model.beta_schedule.train);
  const denoiser: Denoiser = buildDenoiser(cfg.model.unet, crop);
  if (!ckpt)
    say('initialising the weights (orthogonal, as the reference; up to a minute for large UNets)');
  const store = ckpt
    ? TfParamStore.fromTorch(denoiser.params, ckpt.weights)
    : TfParamStore.init(denoiser.params, seed);
  const paramMap = new Map(store.names().map((n) => [n, store.get(n)]));
  const optimizer = new Adam(paramMap, {
    type: cfg.train.optimizer.type,
    lr: cfg.train.optimizer.lr,
  });
  if (ckpt?.optimizer) optimizer.load(ckpt.optimizer);
  const rng = ckpt?.rng ? Rng.fromState(ckpt.rng as never) : new Rng(seed);
  const sampler = makeSampler(pairs, {
    crop,
    batch,
    seed: deriveSeed(seed, 'sampler'),
    state: ckpt?.sampler as SamplerState | null,
  });
  const conv2d = convFor(backend);
  const lossType = cfg.model.diffusion.loss ?? DEFAULT_DIFFUSION_LOSS;
  const diffusion = new GaussianDiffusion(denoiser.unet, schedule, { loss: lossType });
  const workers = Math.max(1, Math.min(opts.workers ?? defaultWorkers(), batch));
  const pool =
    workers > 1
      ? await WorkerPool.create(
          workers - 1,
          {
            backend: backendName,
            unet: cfg.model.unet,
            crop,
            weights: store.toTorch(),
            optimizer: optimizer.state(),
            lossType,
            schedule: cfg.model.beta_schedule.train,
          },
          store.names(),
          store.names().map((n) => store.get(n).shape.slice()),
        )
      : null;
  if (workers > 1) say(`workers: ${workers} (data-parallel, gradients averaged each step)`);
  say(`model: ${store.count().toLocaleString('en-US')} parameters; run folder ${out}`);

  const nIter = cfg.train.n_iter;
  let step = ckpt?.step ?? 0;
  let lastCkpt: string | null = ckpt?.path ?? null;
  const losses: number[] = [];
  const progress = new Progress({
    quiet,
    bar: opts.progressBar,
    printFreq: cfg.train.print_freq || 10,
  });
  const rate = new RateMeter();
  const stop = new StopSignal(opts.handleSigint ?? true);
  const t0 = Date.now();
  const keep = opts.keep ?? DEFAULT_KEEP;
  const sampleRng = () => new Rng(deriveSeed(seed, 'sampleGrid')); // same start noise each validation

  const save = () => {
    lastCkpt = saveCheckpoint(
      ckptDir,
      {
        kind: 'ddpm',
        step,
        epoch: sampler.getState().epoch,
        config: cfg as unknown as Record<string, unknown>,
        model: { ...cfg.model.unet, image_size: crop },
        weights: store.toTorch(),
        optimizer: optimizer.state(),
        rng: rng.getState(),
        sampler: sampler.getState(),
        extra: { seed, schedule: cfg.model.beta_schedule.train, loss: lossType },
      },
      { keep },
    );
    log.write({ step, event: 'checkpoint', path: lastCkpt, time: (Date.now() - t0) / 1000 });
  };

  const validate = async () => {
    const n = opts.sampleCount ?? 4;
    const val = cfg.model.beta_schedule.val ?? cfg.model.beta_schedule.train;
    const imgs = await sampleImages(denoiser, store, new NoiseSchedule(val), {
      n,
      size: crop,
      steps: opts.sampleSteps ?? 50,
      rng: sampleRng(),
    });
    const path = join(out, 'samples', `step-${String(step).padStart(8, '0')}.png`);
    mkdirSync(join(out, 'samples'), { recursive: true });
    await writeGrid(
      path,
      [
        { data: imgs, channels: 4, pick: [0, 1, 2] },
        { data: imgs, channels: 4, pick: [3] },
      ],
      n,
      crop,
    );
    await writeRgb(join(out, 'loss.png'), plotLossCurve(log.lossPoints()));
    log.write({ step, event: 'samples', path, time: (Date.now() - t0) / 1000 });
  };

  let stopped: TrainResult['stopped'] = 'done';
  progress.start(nIter, step);
  try {
    while (step < nIter) {
      // All randomness of the step, drawn in a fixed order from the training Rng.
      const x = (await sampler.next()).img;
      const { levels, noise, stepSeed } = drawDdpmStep(schedule, rng, batch, x.length);
      const denom = x.length; // B*C*H*W: the reference's mean

      let loss: number;
      let grads: Map<string, tf.Tensor>;
      if (pool) {
        const r = await pool.step({ x, levels, noise, stepSeed, batch, denom, main: mainShard });
        loss = r.loss;
        grads = r.grads;
      } else {
        const r = mainShard(x, levels, noise, stepSeed, 0, batch, denom);
        loss = r.loss;
        grads = r.grads;
      }
      if (opts.lossHook) loss = opts.lossHook(step + 1, loss);
      if (!Number.isFinite(loss)) {
        tf.dispose([...grads.values()]);
        pool?.discard();
        stopped = 'nan';
        progress.stop();
        log.write({
          step: step + 1,
          event: 'nan',
          loss: String(loss),
          time: (Date.now() - t0) / 1000,
        });
        say(
          `loss is ${loss} at step ${step + 1}: training stopped; the last good checkpoint is ${lastCkpt ?? '(none written yet)'}. Try a lower learning rate (--lr).`,
        );
        break;
      }
      optimizer.apply(grads);
      pool?.apply();
      tf.dispose([...grads.values()]);
      step += 1;
      losses.push(loss);
      const itps = rate.tick();
      log.write({
        step,
        loss,
        lr: optimizer.lr,
        'it/s': +itps.toFixed(3),
        time: +((Date.now() - t0) / 1000).toFixed(3),
      });
      progress.update(step, loss, itps);
      opts.onStep?.(step, loss);
      const saveFreq = cfg.train.save_checkpoint_freq;
      if (saveFreq > 0 && step % saveFreq === 0) save();
      if (cfg.train.val_freq > 0 && step % cfg.train.val_freq === 0) await validate();
      if (stop.stopRequested) {
        stopped = 'interrupted';
        break;
      }
    }
    if (
      stopped !== 'nan' &&
      !lastCkpt?.endsWith(`ddpm-${String(step).padStart(8, '0')}.safetensors`)
    )
      save();
    if (stopped !== 'nan') await writeRgb(join(out, 'loss.png'), plotLossCurve(log.lossPoints()));
  } finally {
    progress.stop();
    stop.dispose();
    await pool?.close();
    optimizer.dispose();
    store.dispose();
  }
  if (stopped === 'interrupted')
    say(`interrupted: checkpoint saved at step ${step} (${lastCkpt}); continue with --resume`);
  else if (stopped === 'done') say(`done: step ${step}, checkpoint ${lastCkpt}`);
  return { step, stopped, checkpoint: lastCkpt, losses, backend, workers };

  /** Loss and gradients of samples [offset, offset+n) of the batch, on this thread. */
  function mainShard(
    xs: Float32Array,
    lv: Float32Array,
    nz: Float32Array,
    stepSeed: number,
    offset: number,
    n: number,
    denom: number,
  ): { loss: number; grads: Map<string, tf.Tensor> } {
    return shardLossAndGrads(diffusion, store, conv2d, {
      x: xs,
      levels: lv,
      noise: nz,
      stepSeed,
      offset,
      n,
      crop,
      denom,
    });
  }
}

/**
 * Loss (sum over the shard / denom) and gradients for a slice of the batch: shared by the
 * main thread and the workers. `x`, `noise` hold only the slice (NCHW), `levels` its levels.
 */
export function shardLossAndGrads(
  diffusion: GaussianDiffusion,
  store: TfParamStore,
  conv2d: ReturnType<typeof convFor>,
  a: {
    x: Float32Array;
    levels: Float32Array;
    noise: Float32Array;
    stepSeed: number;
    offset: number;
    n: number;
    crop: number;
    denom: number;
  },
): { loss: number; grads: Map<string, tf.Tensor> } {
  const { n, crop } = a;
  const shape = [n, 4, crop, crop];
  const names = store.names();
  const vars = names.map((k) => store.get(k));
  const { value, grads } = tf.tidy(() => {
    const x = tf.transpose(tf.tensor(a.x, shape), [0, 2, 3, 1]);
    const noise = tf.transpose(tf.tensor(a.noise, shape), [0, 2, 3, 1]);
    const ops = new TrainOps(store, { conv2d, stepSeed: a.stepSeed, sampleOffset: a.offset });
    return tf.variableGrads(
      () => diffusion.pLosses(ops, x, { levels: a.levels, noise }, a.denom),
      vars,
    );
  });
  const loss = value.dataSync()[0];
  value.dispose();
  const out = new Map<string, tf.Tensor>();
  for (const [i, k] of names.entries()) out.set(k, grads[vars[i].name]);
  return { loss, grads: out };
}
