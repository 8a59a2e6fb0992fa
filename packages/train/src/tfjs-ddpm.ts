/**
 * The DDPM training step on a tfjs backend: GaussianDiffusion's loss on TrainOps, gradients
 * from tf.variableGrads, Adam/AdamW on tfjs variables; with `workers > 1` the batch is split
 * across data-parallel threads (workers.ts) whose gradients are summed in a fixed order.
 */
import type { GaussianDiffusion } from '@dif-fusion/diffusion/tfjs';
import {
  type BatchStatValues,
  type OptimizerState,
  type TorchWeights,
  trainableSpecs,
  updateRunningStats,
} from '@dif-fusion/nn';
import {
  Adam,
  type Conv2dFn,
  conv2dFor,
  TfParamStore,
  TrainOps,
  takeBatchStats,
} from '@dif-fusion/tfjs';
import * as tf from '@tensorflow/tfjs-core';
import type { DdpmBatch, DdpmEngine, EngineStep } from './engine';
import { type ShardResult, type StepArgs, type WorkerInit, WorkerPool } from './workers';

export interface TfjsDdpmOptions {
  /** The tfjs backend that runs the steps (useBackend's answer). */
  backend: string;
  /** The diffusion over the UNet being trained. */
  diffusion: GaussianDiffusion;
  crop: number;
  /** Starting weights (PyTorch layouts, checked), or null: fresh ones from `seed`. */
  weights: TorchWeights | null;
  seed: number;
  optimizer: { type: 'adam' | 'adamw'; lr: number };
  optimizerState?: OptimizerState | null;
  /** Threads computing slices of each batch (default 1: this thread only). */
  workers?: number;
  /** What the worker threads build their replicas from (needed with `workers > 1`). */
  workerInit?: Omit<WorkerInit, 'weights' | 'optimizer' | 'crop' | 'lossType'>;
}

export class TfjsDdpmEngine implements DdpmEngine {
  private constructor(
    readonly backend: string,
    private readonly diffusion: GaussianDiffusion,
    /** The weights as tfjs variables. */
    readonly store: TfParamStore,
    private readonly optimizer: Adam,
    private readonly pool: WorkerPool | null,
    private readonly conv2d: Conv2dFn | undefined,
    private readonly crop: number,
  ) {}

  static async create(o: TfjsDdpmOptions): Promise<TfjsDdpmEngine> {
    const params = o.diffusion.denoiser.params();
    const store = o.weights
      ? TfParamStore.fromTorch(params, o.weights)
      : TfParamStore.init(params, o.seed);
    const trained = trainableSpecs(params).map((p) => p.name);
    const optimizer = new Adam(new Map(trained.map((n) => [n, store.get(n)])), o.optimizer);
    if (o.optimizerState) optimizer.load(o.optimizerState);
    const workers = o.workers ?? 1;
    let pool: WorkerPool | null = null;
    if (workers > 1) {
      if (!o.workerInit) throw new Error('TfjsDdpmEngine: workers > 1 needs workerInit');
      const names = store.names();
      pool = await WorkerPool.create(
        workers - 1,
        {
          ...o.workerInit,
          crop: o.crop,
          weights: store.toTorch(),
          optimizer: optimizer.state(),
          lossType: o.diffusion.loss,
        },
        names,
        names.map((n) => store.get(n).shape.slice()),
      );
    }
    const conv2d = conv2dFor(o.backend);
    return new TfjsDdpmEngine(o.backend, o.diffusion, store, optimizer, pool, conv2d, o.crop);
  }

  /** Threads computing each step (this one and the workers). */
  get threads(): number {
    return this.pool?.size ?? 1;
  }

  async step(b: DdpmBatch): Promise<EngineStep> {
    const { diffusion, store, conv2d, crop, pool } = this;
    const shard: StepArgs['main'] = (x, levels, noise, stepSeed, offset, n, denom, t, condition) =>
      shardLossAndGrads(diffusion, store, conv2d, {
        ...{ x, levels, noise, stepSeed, offset, n, crop, denom },
        ...{ t, condition },
      });
    const { x, levels, noise, stepSeed, t, condition } = b;
    const batch = levels.length;
    const denom = x.length; // B*C*H*W: the reference's mean
    // data-parallel workers never run BatchNorm networks (skip_unet trains on one thread)
    const { loss, vb, grads, stats } = pool
      ? await pool.step({ x, levels, noise, stepSeed, batch, denom, t, condition, main: shard })
      : shard(x, levels, noise, stepSeed, 0, batch, denom, t, condition);
    return {
      loss,
      terms: vb === undefined ? {} : { vb },
      commit: () => {
        this.optimizer.apply(grads);
        if (stats?.length) applyBatchStats(store, stats);
        pool?.apply();
        tf.dispose([...grads.values()]);
      },
      discard: () => {
        tf.dispose([...grads.values()]);
        pool?.discard();
      },
    };
  }

  get lr(): number {
    return this.optimizer.lr;
  }

  setLearningRate(lr: number): void {
    this.optimizer.lr = lr;
  }

  /** The weights read out of the variables, PyTorch layouts. */
  weights(): TorchWeights {
    return this.store.toTorch();
  }

  optimizerState(): OptimizerState {
    return this.optimizer.state();
  }

  async provider(): Promise<null> {
    return null;
  }

  async release(): Promise<void> {
    await this.pool?.close();
    this.optimizer.dispose();
    this.store.dispose();
  }
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
