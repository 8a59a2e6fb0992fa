/**
 * Fusion-head training on ONNX Runtime (`dif-train head --backend onnxruntime`): one graph
 * per batch size computes the frozen DDPM's features (forward only), the head, the fusion
 * loss and the head's gradients; AdamF32 updates the Float32Array weights. The feature
 * noise is drawn exactly as `makeFeatureExtractor` draws it on tfjs (fixed: one stream per
 * time step index, restarted every batch; random: one stream for the run), so both
 * backends see the same inputs.
 */
import {
  type FusionHead,
  type FusionTargetKind,
  fusionTargetBatch,
  type SalientTargetOptions,
} from '@dif-fusion/fusion-head';
import type { OptimizerState, TorchWeights } from '@dif-fusion/nn';
import type { Device } from '@dif-fusion/onnx';
import { AdamF32, ownBuffer, ThreadedTrainSession } from '@dif-fusion/onnx/train';
import { drawFeatureNoise, type NoiseLevels, Rng } from '@dif-fusion/schedules';
import type { DenoiserNet } from '@dif-fusion/unet';
import type { EngineStep, HeadBatch, HeadEngine } from './engine';
import { buildHeadTrainGraph } from './head-graph';

export interface OrtHeadOptions {
  head: FusionHead;
  unet: DenoiserNet;
  unetWeights: TorchWeights;
  /** Every head parameter (PyTorch layout); the optimizer updates the used ones. */
  weights: TorchWeights;
  optimizer: { type: 'adam' | 'adamw'; lr: number };
  optimizerState?: OptimizerState | null;
  crop: number;
  alpha: number;
  colorWeight: number;
  /** Where the loss compares intensities and gradients (train.loss.space). */
  space: 'rgb' | 'luma';
  /** The loss target (train.loss.target; default max, official). */
  target?: FusionTargetKind;
  targetOptions?: SalientTargetOptions;
  noise: 'fixed' | 'random';
  seed: number;
  schedule: NoiseLevels;
  device?: Device;
  threads?: number;
}

/** NHWC-ordered values (as tfjs's NHWC tensors hold them) written out as NCHW at `offset`. */
function nhwcToNchwInto(
  src: Float32Array,
  n: number,
  c: number,
  h: number,
  w: number,
  out: Float32Array,
  offset: number,
) {
  let k = 0;
  for (let i = 0; i < n; i++)
    for (let y = 0; y < h; y++)
      for (let x = 0; x < w; x++)
        for (let ch = 0; ch < c; ch++) out[offset + ((i * c + ch) * h + y) * w + x] = src[k++];
}

export class OrtHeadEngine implements HeadEngine {
  readonly backend = 'onnxruntime';
  readonly optimizer: AdamF32;
  // Sessions on worker threads (signals are seen during a step); the weights' arrays move
  // there for each step and back, so `weights` entries get new arrays after a step.
  private readonly sessions = new Map<number, Promise<ThreadedTrainSession>>();
  private readonly stream: Rng;

  constructor(private readonly o: OrtHeadOptions) {
    for (const w of o.weights.values()) w.data = ownBuffer(w.data);
    this.optimizer = new AdamF32(o.weights, o.optimizer);
    if (o.optimizerState) this.optimizer.load(o.optimizerState);
    this.stream = new Rng(o.seed);
  }

  /** The head's weights, updated by every step (each entry's `.data` a new array after it). */
  weights(): TorchWeights {
    return this.o.weights;
  }

  optimizerState(): OptimizerState {
    return this.optimizer.state();
  }

  get parameterCount(): number {
    let n = 0;
    for (const w of this.o.weights.values()) n += w.data.length;
    return n;
  }

  get lr(): number {
    return this.optimizer.lr;
  }

  setLearningRate(lr: number): void {
    this.optimizer.lr = lr;
  }

  /** The session for batches of `n` (built on first use). */
  private session(n: number): Promise<ThreadedTrainSession> {
    let s = this.sessions.get(n);
    if (!s) {
      const graph = buildHeadTrainGraph(this.o.head, {
        unet: this.o.unet,
        unetWeights: this.o.unetWeights,
        batch: n,
        size: this.o.crop,
        alpha: this.o.alpha,
        colorWeight: this.o.colorWeight,
        space: this.o.space,
        target: (this.o.target ?? 'max') === 'max' ? 'max' : 'input',
      });
      s = ThreadedTrainSession.open(graph, {
        device: this.o.device,
        threads: this.o.threads,
      }) as Promise<ThreadedTrainSession>; // null only when asked to stop, which this is not
      this.sessions.set(n, s);
    }
    return s;
  }

  async provider(): Promise<'cuda' | 'cpu'> {
    return (await this.session(1)).provider;
  }

  /** Levels [K*N] and noise [K,N,4,S,S] of one batch: drawFeatureNoise, as on tfjs. */
  private featureNoise(n: number): { level: Float32Array; noise: Float32Array } {
    const steps = this.o.head.config.time_steps;
    const s = this.o.crop;
    const per = n * 4 * s * s;
    const level = new Float32Array(steps.length * n);
    const noise = new Float32Array(steps.length * per);
    const mode = this.o.noise;
    steps.forEach((t, k) => {
      const d = drawFeatureNoise(this.o.schedule, t, k, n, per, {
        mode,
        seed: this.o.seed,
        stream: this.stream,
      });
      level.set(d.levels, k * n);
      nhwcToNchwInto(d.noise, n, 4, s, s, noise, k * per);
    });
    return { level, noise };
  }

  private async run(x: Float32Array, n: number) {
    const s = this.o.crop;
    const hw = s * s;
    const vis = new Float32Array(n * 3 * hw);
    const ir = new Float32Array(n * hw);
    for (let i = 0; i < n; i++) {
      vis.set(x.subarray(i * 4 * hw, (i * 4 + 3) * hw), i * 3 * hw);
      ir.set(x.subarray((i * 4 + 3) * hw, (i + 1) * 4 * hw), i * hw);
    }
    const session = await this.session(n);
    const kind = this.o.target ?? 'max';
    const targets: Record<string, Float32Array> = {};
    if (kind !== 'max') {
      const t = fusionTargetBatch(kind, vis, ir, n, s, s, this.o.targetOptions);
      targets.target = t.intensity;
      targets.target_grad = t.gradient;
    }
    return session.run(this.o.weights, { vis, ir, ...this.featureNoise(n), ...targets });
  }

  /**
   * One step on a batch `x` [N,4,S,S] (visible RGB + IR, NCHW): loss, gradients, and the Adam
   * update, applied here when the loss is finite (fresh features every step: no cache).
   */
  async step({ x, n }: HeadBatch): Promise<EngineStep> {
    const r = await this.run(x, n);
    const v = r.scalars;
    if (Number.isFinite(v.loss)) this.optimizer.apply(r.grads);
    return {
      loss: v.loss,
      terms: {
        loss_in: v.loss_in,
        loss_grad: v.loss_grad,
        ...(v.loss_color !== undefined ? { loss_color: v.loss_color } : {}),
      },
    };
  }

  /** Validation: the loss and the fused image [N,3,S,S] of a batch; nothing is updated. */
  async evaluate({ x, n }: HeadBatch): Promise<{ loss: number; fused: Float32Array }> {
    const r = await this.run(x, n);
    return { loss: r.scalars.loss, fused: r.tensors.get('fused')! };
  }

  async release(): Promise<void> {
    for (const s of this.sessions.values()) await (await s).release();
  }
}
