/**
 * The DDPM training step on ONNX Runtime (`--backend onnxruntime`): the UNet's training
 * graph (@dif-fusion/onnx/train) run by ORT, AdamF32 on Float32Array weights. Same draws
 * as the tfjs path: the batch, levels and noise come from the caller; dropout masks are the
 * ones TrainOps draws (seeded by step seed, call index and sample index), so the two
 * backends train the same model and checkpoints move between them.
 */

import type { MeanType } from '@dif-fusion/diffusion';
import type { OptimizerState } from '@dif-fusion/nn';
import {
  type BatchStatValues,
  initParam,
  type ParamSpec,
  type TorchWeights,
  updateRunningStats,
} from '@dif-fusion/nn';
import type { Device } from '@dif-fusion/onnx';
import {
  AdamF32,
  type DropoutMaskSpec,
  ownBuffer,
  ThreadedTrainSession,
} from '@dif-fusion/onnx/train';
import { dropoutMask } from '@dif-fusion/tfjs';
import type { DenoiserNet } from '@dif-fusion/unet';
import { buildDdpmTrainGraph } from './ddpm-graph';
import type { DdpmBatch, DdpmEngine, EngineStep } from './engine';

/**
 * The dropout masks TrainOps draws for a step (nn's `dropoutMask` per call `c` and sample
 * `i`, in TfOps's NHWC order), written out in NCHW for the training graph's inputs.
 */
export function dropoutMasks(
  specs: readonly DropoutMaskSpec[],
  stepSeed: number,
  sampleOffset = 0,
): Record<string, Float32Array> {
  const out: Record<string, Float32Array> = {};
  specs.forEach((s, call) => {
    const [n, c, h, w] = s.shape;
    const per = c * h * w;
    const mask = new Float32Array(n * per);
    for (let i = 0; i < n; i++) {
      const m = dropoutMask(stepSeed, call, sampleOffset + i, per, s.rate); // NHWC order
      const base = i * per;
      let k = 0;
      for (let y = 0; y < h; y++)
        for (let x = 0; x < w; x++)
          for (let ch = 0; ch < c; ch++) mask[base + (ch * h + y) * w + x] = m[k++];
    }
    out[s.input] = mask;
  });
  return out;
}

/** Fresh weights exactly as `TfParamStore.init(specs, seed)` draws them (PyTorch layouts). */
export function initWeights(specs: readonly ParamSpec[], seed: number): TorchWeights {
  const w: TorchWeights = new Map();
  for (const s of specs) w.set(s.name, { shape: s.shape.slice(), data: initParam(s, seed) });
  return w;
}

export interface OrtDdpmOptions {
  unet: DenoiserNet;
  batch: number;
  crop: number;
  loss: 'l1' | 'l2';
  /** What the UNet predicts (the loss's target; default epsilon). */
  meanType?: MeanType;
  /** Channels of the condition concatenated before x_t (conditional mode); 0: none. */
  condition?: number;
  /** var_type learned_range: lambda T, the weight of vb in the hybrid loss; absent: none. */
  vbWeight?: number;
  /** Gradient checkpointing: recompute each ResnetBlocWithAttn in the backward pass. */
  checkpoint?: boolean;
  /** Starting weights (PyTorch layouts, every UNet parameter and buffer). */
  weights: TorchWeights;
  optimizer: { type: 'adam' | 'adamw'; lr: number };
  optimizerState?: OptimizerState | null;
  device?: Device;
  threads?: number;
  /** Where the set-up's phases report their times (graph building, session creation). */
  say?: (message: string) => void;
  /** Asked after each phase of the set-up: true stops it (throws SetupStopped). */
  shouldStop?: () => boolean;
  /** Tests: hold the worker thread this long (ms) while opening the session / before each step. */
  testSlow?: TestSlow;
  /** The `coefs` input [1,9] of time step t (lossCoefs; when needsLossCoefs(meanType, learned)). */
  coefsOf?: (t: number) => Float32Array;
}

/**
 * Slow phases for the signal tests (env DIF_FUSION_TEST_SLOW, e.g. `init:200,step:30000`):
 * ms per parameter of the init (awaited), ms the worker thread is held while opening the
 * session and before each step (blocked, as onnxruntime-node's native calls block it).
 */
export interface TestSlow {
  init?: number;
  session?: number;
  step?: number;
}

/** DIF_FUSION_TEST_SLOW parsed (empty when unset). */
export function testSlowFromEnv(env = process.env.DIF_FUSION_TEST_SLOW): TestSlow {
  const out: Record<string, number> = {};
  for (const part of (env ?? '').split(',')) {
    const [k, v] = part.split(':');
    if (k && Number(v) > 0) out[k.trim()] = Number(v);
  }
  return out;
}

/** Thrown when `shouldStop` turned true during the engine's set-up. */
export class SetupStopped extends Error {}

/** Seconds since `t0` (performance.now()), one decimal. */
export const secondsSince = (t0: number): string => ((performance.now() - t0) / 1000).toFixed(1);

/**
 * The DDPM's ORT training: the session runs on a worker thread (ThreadedTrainSession), so
 * signals are seen during a step; the weights' arrays move there for each step and back
 * (`weights` entries get the returned arrays: read `.data` afresh after a step).
 */
export class OrtDdpmEngine implements DdpmEngine {
  readonly backend = 'onnxruntime';
  private constructor(
    private readonly session: ThreadedTrainSession,
    private readonly current: TorchWeights,
    readonly optimizer: AdamF32,
    private readonly o: OrtDdpmOptions,
  ) {}

  /**
   * The arrays ORT writes each step's gradients into (allocated at the first step, then
   * reused; they move to the session's thread and back like the weights). Without them
   * every step handed back new arrays the size of the model (1.4 GB at the paper's size)
   * while the last step's awaited garbage collection.
   */
  private grads: Map<string, { data: Float32Array }> | null = null;

  static async create(o: OrtDdpmOptions): Promise<OrtDdpmEngine> {
    let t0 = performance.now();
    const graph = buildDdpmTrainGraph(o.unet, {
      ...{ batch: o.batch, size: o.crop, loss: o.loss },
      ...{ meanType: o.meanType, condition: o.condition, checkpoint: o.checkpoint },
      learnedRange: o.vbWeight === undefined ? undefined : { vbWeight: o.vbWeight },
    });
    for (const p of o.unet.params())
      if (!o.weights.has(p.name)) throw new Error(`weights lack ${p.name}`);
    o.say?.(
      `training graph: ${graph.model.length.toLocaleString('en-US')} bytes, built in ${secondsSince(t0)} s`,
    );
    if (o.shouldStop?.()) throw new SetupStopped('stopped while building the training graph');
    t0 = performance.now();
    const session = await ThreadedTrainSession.open(
      graph,
      { device: o.device, threads: o.threads },
      o.testSlow?.session,
      o.shouldStop,
    );
    if (!session) throw new SetupStopped('stopped while creating the ONNX Runtime session');
    o.say?.(`ONNX Runtime session created in ${secondsSince(t0)} s`);
    // Each weight in a buffer of its own (not a view into a checkpoint file's): the
    // arrays are moved to the session's thread for each step.
    for (const w of o.weights.values()) w.data = ownBuffer(w.data);
    // BatchNorm buffers (skip_unet) are not trained: the optimizer holds the parameters only.
    const buffers = new Set(
      o.unet
        .params()
        .filter((p) => p.buffer)
        .map((p) => p.name),
    );
    const trained = new Map([...o.weights].filter(([k]) => !buffers.has(k)));
    const optimizer = new AdamF32(trained, o.optimizer);
    if (o.optimizerState) optimizer.load(o.optimizerState);
    return new OrtDdpmEngine(session, o.weights, optimizer, o);
  }

  async provider(): Promise<'cuda' | 'cpu'> {
    return this.session.provider;
  }

  /**
   * The weights, updated by every step. The arrays move to the session's thread for a step
   * and back, so each entry's `.data` is a new array after a step: read it afresh.
   */
  weights(): TorchWeights {
    return this.current;
  }

  optimizerState(): OptimizerState {
    return this.optimizer.state({ copy: false });
  }

  get lr(): number {
    return this.optimizer.lr;
  }

  setLearningRate(lr: number): void {
    this.optimizer.lr = lr;
  }

  /** Loss and gradients of the batch's draws; the update (Adam, batch statistics) on commit. */
  async step(b: DdpmBatch): Promise<EngineStep> {
    const { loss, vb, grads, stats } = await this.lossAndGrads(b.x, b.levels, b.noise, b.stepSeed, {
      coefs: this.o.coefsOf?.(b.t),
      condition: b.condition,
    });
    return {
      loss,
      terms: vb === undefined ? {} : { vb },
      commit: () => {
        this.optimizer.apply(grads);
        this.applyBatchStats(stats);
      },
    };
  }

  /**
   * Loss and gradients of a batch (NCHW x and noise, levels [B]; the `coefs` and
   * `condition` inputs when the graph has them); nothing is updated. The gradients are the
   * engine's reused arrays: valid until the next call.
   */
  async lossAndGrads(
    x: Float32Array,
    levels: Float32Array,
    noise: Float32Array,
    stepSeed: number,
    extra: { coefs?: Float32Array; condition?: Float32Array } = {},
  ): Promise<{
    loss: number;
    vb?: number;
    grads: Map<string, Float32Array>;
    stats: BatchStatValues[];
  }> {
    const feeds = {
      x,
      noise,
      level: levels,
      ...(extra.coefs ? { coefs: extra.coefs } : {}),
      ...(extra.condition ? { condition: extra.condition } : {}),
      ...dropoutMasks(this.session.graph.dropout, stepSeed),
    };
    this.grads ??= new Map(
      this.session.graph.params.map((p) => [
        p.name,
        { data: new Float32Array(p.shape.reduce((a, b) => a * b, 1)) },
      ]),
    );
    const r = await this.session.run(this.current, feeds, this.o.testSlow?.step ?? 0, this.grads);
    const stats = (this.session.graph.batchStats ?? []).map(({ site, count }) => ({
      site,
      count,
      mean: r.tensors.get(`bn_mean.${site}`)!,
      variance: r.tensors.get(`bn_var.${site}`)!,
    }));
    return { loss: r.scalars.loss, vb: r.scalars.vb, grads: r.grads, stats };
  }

  /** PyTorch's running-statistics update of the BatchNorm buffers (in place), after a step. */
  applyBatchStats(stats: readonly BatchStatValues[]): void {
    for (const [k, v] of updateRunningStats(this.current, stats))
      this.current.get(k)!.data.set(v.data);
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}
