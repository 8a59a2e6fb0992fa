/**
 * Fusion-head training on ONNX Runtime (`dif-train head --backend onnxruntime`): one graph
 * per batch size computes the frozen DDPM's features (forward only), the head, the fusion
 * loss and the head's gradients; AdamF32 updates the Float32Array weights. The feature
 * noise is drawn exactly as `makeFeatureExtractor` draws it on tfjs (fixed: one stream per
 * time step index, restarted every batch; random: one stream for the run), so both
 * backends see the same inputs.
 *
 * The feature cache (`--feature-cache`, fixed noise): a features-only graph (the frozen
 * UNet's part of the training graph) computes a batch's features once (`cacheFeatures`), and
 * steps on such a batch run a head-only training graph fed with them: the same nodes as the
 * full graph, so the same loss (head-graph.ts). Validation then reads features computed once
 * per validation batch, as on tfjs, and the full graph is never built.
 */
import {
  type FusionHead,
  type FusionTargetKind,
  fusionTargetBatch,
  type SalientTargetOptions,
} from '@dif-fusion/fusion-head';
import type { OptimizerState, TorchWeights } from '@dif-fusion/nn';
import type { Device } from '@dif-fusion/onnx';
import { AdamF32, ownBuffer, ThreadedTrainSession, type TrainGraph } from '@dif-fusion/onnx/train';
import { drawFeatureNoise, type NoiseLevels, Rng } from '@dif-fusion/schedules';
import type { DenoiserNet } from '@dif-fusion/unet';
import type { EngineStep, HeadBatch, HeadEngine } from './engine';
import type { CachedBatch } from './feature-cache';
import {
  buildHeadCachedTrainGraph,
  buildHeadFeaturesGraph,
  buildHeadTrainGraph,
  type HeadLossOptions,
  headFeatureName,
} from './head-graph';

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
  /**
   * Validation on features computed once per validation batch (fixed noise only), through
   * the feature cache's graphs: set when the run has a feature cache, whose steps do not need
   * the full graph (without a cache, the two graphs would be built besides it).
   */
  cacheValidation?: boolean;
}

/** Which graph a session runs: the full training graph, features only, or the head on cached features. */
type GraphKind = 'full' | 'features' | 'cached';

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
  // Keyed by graph kind and batch size.
  private readonly sessions = new Map<string, Promise<ThreadedTrainSession>>();
  private readonly stream: Rng;
  /** Validation features by batch index (cacheValidation: they never change). */
  private readonly valCache: CachedBatch[] = [];

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
    return this.optimizer.state({ copy: false });
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

  /** The session of graph `kind` for batches of `n` (built on first use). */
  private session(n: number, kind: GraphKind = 'full'): Promise<ThreadedTrainSession> {
    const key = `${kind}:${n}`;
    let s = this.sessions.get(key);
    if (!s) {
      const { head, unet, unetWeights, crop: size } = this.o;
      const loss: HeadLossOptions = {
        ...{ batch: n, size, alpha: this.o.alpha, colorWeight: this.o.colorWeight },
        ...{ space: this.o.space, target: (this.o.target ?? 'max') === 'max' ? 'max' : 'input' },
      };
      const graph: TrainGraph =
        kind === 'features'
          ? buildHeadFeaturesGraph(head, { unet, unetWeights, batch: n, size })
          : kind === 'cached'
            ? buildHeadCachedTrainGraph(head, { ...loss, unet })
            : buildHeadTrainGraph(head, { ...loss, unet, unetWeights });
      s = ThreadedTrainSession.open(graph, {
        device: this.o.device,
        threads: this.o.threads,
      }) as Promise<ThreadedTrainSession>; // null only when asked to stop, which this is not
      this.sessions.set(key, s);
    }
    return s;
  }

  async provider(): Promise<'cuda' | 'cpu'> {
    return (await this.session(1, this.o.cacheValidation ? 'cached' : 'full')).provider;
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

  /** Visible `[N,3,S,S]` and infrared `[N,1,S,S]` of a batch `x` `[N,4,S,S]`. */
  private split(x: Float32Array, n: number): { vis: Float32Array; ir: Float32Array } {
    const hw = this.o.crop * this.o.crop;
    const vis = new Float32Array(n * 3 * hw);
    const ir = new Float32Array(n * hw);
    for (let i = 0; i < n; i++) {
      vis.set(x.subarray(i * 4 * hw, (i * 4 + 3) * hw), i * 3 * hw);
      ir.set(x.subarray((i * 4 + 3) * hw, (i + 1) * 4 * hw), i * hw);
    }
    return { vis, ir };
  }

  /** The loss's `target` inputs (a target other than the official max), else none. */
  private targets(vis: Float32Array, ir: Float32Array, n: number): Record<string, Float32Array> {
    const kind = this.o.target ?? 'max';
    if (kind === 'max') return {};
    const s = this.o.crop;
    const t = fusionTargetBatch(kind, vis, ir, n, s, s, this.o.targetOptions);
    return { target: t.intensity, target_grad: t.gradient };
  }

  /** A training graph's run on `x`: fresh features (full graph), or `cached` ones (head graph). */
  private async run(x: Float32Array, n: number, cached?: CachedBatch) {
    const { vis, ir } = this.split(x, n);
    const targets = this.targets(vis, ir, n);
    if (!cached) {
      const session = await this.session(n);
      return session.run(this.o.weights, { vis, ir, ...this.featureNoise(n), ...targets });
    }
    const feats: Record<string, Float32Array> = {};
    cached.feats.forEach((f, t) => {
      f.forEach((e, i) => {
        if (e) feats[headFeatureName(t, i)] = e.data;
      });
    });
    const session = await this.session(n, 'cached');
    return session.run(this.o.weights, { vis, ir, ...feats, ...targets });
  }

  /**
   * The features of a batch `x` [N,4,S,S] (the frozen UNet at every time step, the batch's
   * feature noise), computed once for the feature cache: NCHW, `[step][decoder index]`.
   */
  async cacheFeatures(x: Float32Array, n: number): Promise<CachedBatch> {
    const { vis, ir } = this.split(x, n);
    const session = await this.session(n, 'features');
    const r = await session.run(new Map(), { vis, ir, ...this.featureNoise(n) });
    const used = this.o.head.requiredFeatureIndices();
    const feats = this.o.head.config.time_steps.map((_, t) => {
      const row: CachedBatch['feats'][number] = new Array(Math.max(...used) + 1).fill(null);
      for (const i of used) {
        const name = headFeatureName(t, i);
        row[i] = { data: r.tensors.get(name)!, shape: session.graph.tensors.get(name)!.slice() };
      }
      return row;
    });
    return { x, n, feats };
  }

  /**
   * One step on a batch `x` [N,4,S,S] (visible RGB + IR, NCHW): loss, gradients, and the Adam
   * update, applied here when the loss is finite; fresh features, or the batch's `cached` ones.
   */
  async step({ x, n, cached }: HeadBatch): Promise<EngineStep> {
    const r = await this.run(x, n, cached);
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
  async evaluate(
    { x, n }: HeadBatch,
    index: number,
  ): Promise<{ loss: number; fused: Float32Array }> {
    let cached: CachedBatch | undefined;
    if (this.o.cacheValidation && this.o.noise === 'fixed')
      cached = this.valCache[index] ??= await this.cacheFeatures(x, n);
    const r = await this.run(x, n, cached);
    return { loss: r.scalars.loss, fused: r.tensors.get('fused')! };
  }

  async release(): Promise<void> {
    for (const s of this.sessions.values()) await (await s).release();
  }
}
