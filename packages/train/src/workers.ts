/**
 * Data-parallel training on worker_threads: the main thread and `workers` extra threads
 * each compute the loss and gradients of a slice of every batch; the main thread sums the
 * gradients in a fixed order (main, worker 1, worker 2, ...) and every thread applies the
 * same Adam update to its own replica of the weights, so the replicas stay identical.
 * Up to float rounding of the gradient sum this is single-process training.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { DiffusionConfig } from '@dif-fusion/diffusion';
import type { BatchStatValues, OptimizerState, TorchWeights } from '@dif-fusion/nn';
import { builtCodeWorkerOptions } from '@dif-fusion/onnx/train';
import type { NoiseScheduleConfig } from '@dif-fusion/schedules';
import type { BackendName } from '@dif-fusion/tfjs';
import type { UNetConfigInput } from '@dif-fusion/unet';
import * as tf from '@tensorflow/tfjs-core';

export interface WorkerInit {
  backend: BackendName;
  unet: UNetConfigInput;
  crop: number;
  weights: TorchWeights;
  optimizer: OptimizerState;
  lossType: 'l1' | 'l2';
  /** The `model.diffusion` block (@dif-fusion/diffusion's DiffusionConfig). */
  diffusion?: DiffusionConfig;
  /** model.beta_schedule.train. */
  schedule: NoiseScheduleConfig;
}

export interface StepArgs {
  x: Float32Array;
  levels: Float32Array;
  noise: Float32Array;
  stepSeed: number;
  batch: number;
  denom: number;
  /** The batch's time step (mean type x_prev). */
  t: number;
  /** Condition images (conditional mode), NCHW, after condition dropout. */
  condition?: Float32Array;
  /** The main thread's shard: samples [offset, offset + n). */
  main: (
    x: Float32Array,
    levels: Float32Array,
    noise: Float32Array,
    stepSeed: number,
    offset: number,
    n: number,
    denom: number,
    t: number,
    condition?: Float32Array,
  ) => ShardResult;
}

/** A shard's loss and gradients, and its share of the bound term vb (learned_range). */
export interface ShardResult {
  loss: number;
  vb?: number;
  grads: Map<string, tf.Tensor>;
  /** BatchNorm batch statistics (skip_unet, which trains on the main thread only). */
  stats?: BatchStatValues[];
}

/** Path of the compiled worker script (dist/worker.js), also when running from sources. */
function workerScript(): string {
  const here = fileURLToPath(import.meta.url);
  const candidates = [
    new URL('./worker.js', import.meta.url),
    new URL('../dist/worker.js', import.meta.url),
  ].map((u) => fileURLToPath(u));
  const found = candidates.find((p) => p !== here && existsSync(p));
  if (!found)
    throw new Error(
      'the data-parallel worker script (dist/worker.js) is missing: build @dif-fusion/train first (pnpm build)',
    );
  return found;
}

/** Split `batch` samples into `parts` contiguous slices (sizes differ by at most one). */
export function splitBatch(batch: number, parts: number): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  let start = 0;
  for (let i = 0; i < parts; i++) {
    const n = Math.floor(batch / parts) + (i < batch % parts ? 1 : 0);
    out.push([start, n]);
    start += n;
  }
  return out;
}

export class WorkerPool {
  private pending: Float32Array | null = null;
  private constructor(
    private readonly threads: Worker[],
    private readonly names: string[],
    private readonly shapes: number[][],
  ) {}

  static async create(
    count: number,
    init: WorkerInit,
    names: string[],
    shapes: number[][],
  ): Promise<WorkerPool> {
    const script = workerScript();
    const threads: Worker[] = [];
    const options = builtCodeWorkerOptions();
    for (let i = 0; i < count; i++) threads.push(new Worker(script, options));
    await Promise.all(
      threads.map(
        (w) =>
          new Promise<void>((res, rej) => {
            const onMsg = (m: { type: string; error?: string }) => {
              w.off('error', rej);
              if (m.type === 'ready') res();
              else rej(new Error(`worker failed to start: ${m.error}`));
            };
            w.once('message', onMsg);
            w.once('error', rej);
            w.postMessage({ type: 'init', init });
          }),
      ),
    );
    return new WorkerPool(threads, names, shapes);
  }

  get size(): number {
    return this.threads.length + 1;
  }

  /** Loss and summed gradients of a whole batch, computed across the threads. */
  async step(a: StepArgs): Promise<ShardResult> {
    const per = a.x.length / a.batch;
    const cper = (a.condition?.length ?? 0) / a.batch;
    const slices = splitBatch(a.batch, this.size);
    const replies = this.threads.map((w, k) => {
      const [off, n] = slices[k + 1];
      return new Promise<{ loss: number; vb?: number; grads: Float32Array }>((res, rej) => {
        const onMsg = (m: {
          type: string;
          loss: number;
          vb?: number;
          grads: Float32Array;
          error?: string;
        }) => {
          w.off('error', rej);
          if (m.type === 'grads') res(m);
          else rej(new Error(`worker error: ${m.error}`));
        };
        w.once('message', onMsg);
        w.once('error', rej);
        w.postMessage({
          type: 'step',
          x: a.x.slice(off * per, (off + n) * per),
          noise: a.noise.slice(off * per, (off + n) * per),
          levels: a.levels.slice(off, off + n),
          stepSeed: a.stepSeed,
          offset: off,
          n,
          denom: a.denom,
          t: a.t,
          condition: a.condition?.slice(off * cper, (off + n) * cper),
        });
      });
    });
    const [off0, n0] = slices[0];
    const mine = a.main(
      a.x.subarray(off0 * per, (off0 + n0) * per),
      a.levels.subarray(off0, off0 + n0),
      a.noise.subarray(off0 * per, (off0 + n0) * per),
      a.stepSeed,
      off0,
      n0,
      a.denom,
      a.t,
      a.condition?.subarray(off0 * cper, (off0 + n0) * cper),
    );
    const others = await Promise.all(replies);
    // Sum in a fixed order: main, worker 1, worker 2, ...
    const sum = flatten(this.names.map((n) => mine.grads.get(n)!));
    tf.dispose([...mine.grads.values()]);
    let loss = mine.loss;
    let vb = mine.vb;
    for (const o of others) {
      loss += o.loss;
      if (vb !== undefined) vb += o.vb ?? 0;
      const g = o.grads;
      for (let i = 0; i < sum.length; i++) sum[i] += g[i];
    }
    this.pending = sum;
    return { loss, vb, grads: unflatten(sum, this.names, this.shapes) };
  }

  /** Send the summed gradients of the last step to the workers, which apply the same update. */
  apply(): void {
    const sum = this.pending;
    if (!sum) return;
    this.pending = null;
    for (const w of this.threads) w.postMessage({ type: 'apply', grads: sum });
  }

  /** Forget the last step's gradients (the update was not applied, e.g. NaN loss). */
  discard(): void {
    this.pending = null;
  }

  async close(): Promise<void> {
    await Promise.all(this.threads.map((w) => w.terminate()));
  }
}

/** Concatenate tensors' values into one Float32Array. */
export function flatten(ts: tf.Tensor[]): Float32Array {
  const total = ts.reduce((s, t) => s + t.size, 0);
  const out = new Float32Array(total);
  let o = 0;
  for (const t of ts) {
    out.set(t.dataSync() as Float32Array, o);
    o += t.size;
  }
  return out;
}

/** Split a flat array back into tensors. */
export function unflatten(
  flat: Float32Array,
  names: string[],
  shapes: number[][],
): Map<string, tf.Tensor> {
  const out = new Map<string, tf.Tensor>();
  let o = 0;
  names.forEach((n, i) => {
    const size = shapes[i].reduce((a, b) => a * b, 1);
    out.set(n, tf.tensor(flat.subarray(o, o + size), shapes[i]));
    o += size;
  });
  return out;
}
