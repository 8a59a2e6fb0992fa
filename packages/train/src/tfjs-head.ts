/**
 * Fusion-head training on a tfjs backend: the frozen DDPM's features from
 * `makeFeatureExtractor` (forward only, outside the gradient tape), then one HeadTrainer step
 * (head forward, fusion loss, Adam). Cached features (the feature cache) replace fresh ones
 * when a batch carries them; validation batches' features are computed once with fixed noise.
 */
import { makeFeatureExtractor } from '@dif-fusion/diffusion/tfjs';
import type { FusionHead, FusionLossOptions } from '@dif-fusion/fusion-head';
import { disposeFeatures, type HeadFeatures, HeadTrainer } from '@dif-fusion/fusion-head/tfjs';
import type { OptimizerState, TorchWeights } from '@dif-fusion/nn';
import { NoiseSchedule, type NoiseScheduleConfig } from '@dif-fusion/schedules';
import { Adam, conv2dFor, TfOps, TfParamStore } from '@dif-fusion/tfjs';
import * as tf from '@tensorflow/tfjs-core';
import type { Denoiser } from './denoiser';
import type { EngineStep, HeadBatch, HeadEngine } from './engine';
import { type CachedBatch, cacheBatch, cachedFeatures } from './feature-cache';

export interface TfjsHeadOptions {
  /** The tfjs backend that runs the steps (useBackend's answer). */
  backend: string;
  head: FusionHead;
  /** The frozen DDPM and its weights (checked, PyTorch layouts). */
  denoiser: Denoiser;
  denoiserWeights: TorchWeights;
  /** Starting head weights (checked), or null: fresh ones from `seed`. */
  weights: TorchWeights | null;
  seed: number;
  optimizer: { type: 'adam' | 'adamw'; lr: number };
  optimizerState?: OptimizerState | null;
  crop: number;
  loss: Omit<FusionLossOptions, 'layout'>;
  /** Feature noise: fixed (deterministic) or random (the official feats()). */
  noise: 'fixed' | 'random';
  /** The schedule the features are drawn on (model.beta_schedule.train). */
  schedule: NoiseScheduleConfig;
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

export class TfjsHeadEngine implements HeadEngine {
  readonly backend: string;
  private readonly ddpmStore: TfParamStore;
  private readonly store: TfParamStore;
  private readonly optimizer: Adam;
  private readonly trainer: HeadTrainer;
  /** Validation features by batch index (fixed noise: they never change). */
  private readonly valCache: CachedBatch[] = [];

  constructor(private readonly o: TfjsHeadOptions) {
    this.backend = o.backend;
    const { denoiser } = o;
    this.ddpmStore = TfParamStore.fromTorch(denoiser.params, o.denoiserWeights);
    const conv2d = conv2dFor(o.backend);
    const ops = new TfOps(this.ddpmStore, { training: false, conv2d });
    // Forward only: the extractor runs outside the gradient tape; the UNet's up path stops at
    // the finest feature the head reads.
    const features = makeFeatureExtractor(
      (xNoisy, level, minIndex) => denoiser.features(ops, xNoisy, level, minIndex),
      new NoiseSchedule(o.schedule),
      { noise: o.noise, seed: o.seed },
    );
    const specs = o.head.params();
    this.store = o.weights
      ? TfParamStore.fromTorch(specs, o.weights)
      : TfParamStore.init(specs, o.seed);
    this.optimizer = new Adam(
      new Map(this.store.names().map((n) => [n, this.store.get(n)])),
      o.optimizer,
    );
    if (o.optimizerState) this.optimizer.load(o.optimizerState);
    this.trainer = new HeadTrainer({
      head: o.head,
      params: this.store,
      features,
      optimizer: this.optimizer,
      conv2d,
      loss: o.loss,
    });
  }

  get parameterCount(): number {
    return this.store.count();
  }

  /** One HeadTrainer step, which leaves the weights unchanged when its loss is not finite. */
  async step(batch: HeadBatch): Promise<EngineStep> {
    const b = toBatch(batch.x, batch.n, this.o.crop);
    const feats = batch.cached && cachedFeatures(batch.cached);
    try {
      const r = this.trainer.step(b, feats);
      // A step that was not applied is a failed one, whatever its loss reads.
      const loss = r.applied || !Number.isFinite(r.loss) ? r.loss : Number.NaN;
      return {
        loss,
        terms: {
          loss_in: r.lossIn,
          loss_grad: r.lossGrad,
          ...(r.lossColor !== undefined ? { loss_color: r.lossColor } : {}),
        },
      };
    } finally {
      tf.dispose([b.vis, b.ir]);
      if (feats) disposeFeatures(feats);
    }
  }

  async evaluate(batch: HeadBatch, index: number): Promise<{ loss: number; fused: Float32Array }> {
    const { x, n } = batch;
    const b = toBatch(x, n, this.o.crop);
    let feats: HeadFeatures | undefined;
    if (this.o.noise === 'fixed') {
      if (!this.valCache[index]) {
        const f = this.trainer.features(b);
        this.valCache[index] = cacheBatch(x, n, f);
        disposeFeatures(f);
      }
      feats = cachedFeatures(this.valCache[index]);
    }
    const r = this.trainer.evaluate(b, feats);
    if (feats) disposeFeatures(feats);
    const fused = r.fused.dataSync() as Float32Array;
    tf.dispose([b.vis, b.ir, r.fused]);
    return { loss: r.loss, fused };
  }

  cacheFeatures(x: Float32Array, n: number): CachedBatch {
    const b = toBatch(x, n, this.o.crop);
    try {
      const f = this.trainer.features(b);
      const c = cacheBatch(x, n, f);
      disposeFeatures(f);
      return c;
    } finally {
      tf.dispose([b.vis, b.ir]);
    }
  }

  get lr(): number {
    return this.optimizer.lr;
  }

  setLearningRate(lr: number): void {
    this.trainer.setLearningRate(lr);
  }

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
    this.optimizer.dispose();
    this.store.dispose();
    this.ddpmStore.dispose();
  }
}
