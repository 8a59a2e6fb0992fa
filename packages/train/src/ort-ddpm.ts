/**
 * The DDPM training step on ONNX Runtime (`--backend onnxruntime`): the UNet's training
 * graph (@dif-fusion/onnx/train) run by ORT, AdamF32 on Float32Array weights. Same draws
 * as the tfjs path: the batch, levels and noise come from the caller; dropout masks are the
 * ones TrainOps draws (seeded by step seed, call index and sample index), so the two
 * backends train the same model and checkpoints move between them.
 */

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
  buildDdpmTrainGraph,
  type DropoutMaskSpec,
  TrainSession,
} from '@dif-fusion/onnx/train';
import { dropoutMask } from '@dif-fusion/tfjs';
import type { DenoiserNet } from '@dif-fusion/unet';
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
  /** A `target` input replaces eps in the loss (mean types x_start, x_prev). */
  target?: boolean;
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
  /** The `target` input of a batch (with `target: true`). */
  targetOf?: (batch: DdpmBatch) => Float32Array;
  /** The `vb_coefs` input of time step t (with `vbWeight`). */
  vbCoefsOf?: (t: number) => Float32Array;
}

export class OrtDdpmEngine implements DdpmEngine {
  readonly backend = 'onnxruntime';
  private constructor(
    private readonly session: TrainSession,
    private readonly current: TorchWeights,
    readonly optimizer: AdamF32,
    private readonly params: Map<string, Float32Array>,
    private readonly o: OrtDdpmOptions,
  ) {}

  static async create(o: OrtDdpmOptions): Promise<OrtDdpmEngine> {
    const graph = buildDdpmTrainGraph(o.unet, {
      ...{ batch: o.batch, size: o.crop, loss: o.loss },
      ...{ target: o.target, condition: o.condition, checkpoint: o.checkpoint },
      learnedRange: o.vbWeight === undefined ? undefined : { vbWeight: o.vbWeight },
    });
    for (const p of o.unet.params())
      if (!o.weights.has(p.name)) throw new Error(`weights lack ${p.name}`);
    const session = await TrainSession.open(graph, { device: o.device, threads: o.threads });
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
    const params = new Map([...o.weights].map(([k, v]) => [k, v.data]));
    return new OrtDdpmEngine(session, o.weights, optimizer, params, o);
  }

  async provider(): Promise<'cuda' | 'cpu'> {
    return this.session.provider;
  }

  /** The weights (updated in place by every step). */
  weights(): TorchWeights {
    return this.current;
  }

  optimizerState(): OptimizerState {
    return this.optimizer.state();
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
      target: this.o.targetOf?.(b),
      condition: b.condition,
      vbCoefs: this.o.vbCoefsOf?.(b.t),
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
   * Loss and gradients of a batch (NCHW x and noise, levels [B]; the `target` and
   * `condition` inputs when the graph has them); nothing is updated.
   */
  async lossAndGrads(
    x: Float32Array,
    levels: Float32Array,
    noise: Float32Array,
    stepSeed: number,
    extra: { target?: Float32Array; condition?: Float32Array; vbCoefs?: Float32Array } = {},
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
      ...(extra.target ? { target: extra.target } : {}),
      ...(extra.condition ? { condition: extra.condition } : {}),
      ...(extra.vbCoefs ? { vb_coefs: extra.vbCoefs } : {}),
      ...dropoutMasks(this.session.graph.dropout, stepSeed),
    };
    const r = await this.session.run(this.params, feeds);
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
