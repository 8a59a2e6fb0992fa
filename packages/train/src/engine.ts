/**
 * The one training-engine interface. An engine holds a network's weights and optimizer on
 * one backend (ONNX Runtime training graphs, or tfjs variables) and computes one step at a
 * time; the caller (dif-train's loop) owns the data, the random draws, checkpoints and the
 * schedule of steps. Which engine runs is chosen once, by name, in `createDdpmEngine` /
 * `createHeadEngine`; nothing else looks at the backend.
 */
import type { OptimizerState, TorchWeights } from '@dif-fusion/nn';
import type { BackendName } from '@dif-fusion/tfjs';
import type { CachedBatch } from './feature-cache';

/** Where training steps run: ONNX Runtime (the default) or a tfjs backend. */
export type TrainBackend = BackendName | 'onnxruntime';

/** What one step computed, before its update is applied. */
export interface EngineStep {
  /** The batch's loss (what the optimizer minimises). */
  loss: number;
  /** The loss's named terms, as the log records them (`vb`; `loss_in`, `loss_grad`, ...). */
  terms: Record<string, number>;
  /** Apply the update (optimizer, batch statistics). Absent: the step applied it already. */
  commit?: () => void;
  /** Drop the step's gradients instead (a loss that is not finite). */
  discard?: () => void;
}

/** A network being trained on one backend. */
export interface TrainingEngine<Batch> {
  /** What runs the steps: `onnxruntime` or the tfjs backend's name. */
  readonly backend: string;
  /** One step's loss and gradients for `batch`; the update waits for `commit`. */
  step(batch: Batch): Promise<EngineStep>;
  /** The learning rate of the next update. */
  readonly lr: number;
  setLearningRate(lr: number): void;
  /**
   * The trained network's weights now, PyTorch layouts (the checkpoint's form). An entry's
   * `.data` may be a new array after a step (ORT engines): read it afresh, do not keep it.
   */
  weights(): TorchWeights;
  /**
   * The optimizer's state (the checkpoint's form). ORT engines hand out their live arrays
   * (no copy: the checkpoint is written at once): use it before the next step, do not keep it.
   */
  optimizerState(): OptimizerState;
  /** ONNX Runtime's execution provider (`cpu`, `cuda`); null on tfjs. */
  provider(): Promise<string | null>;
  /** Free sessions, tensors and threads. */
  release(): Promise<void>;
}

/**
 * One DDPM step's draws (the caller's seeded Rng made them; see `drawDdpmBatch`): the data
 * part of the batch NCHW, its noise levels and noise, the step seed of the dropout masks,
 * the time step, and a conditional model's condition images.
 */
export interface DdpmBatch {
  x: Float32Array;
  levels: Float32Array;
  noise: Float32Array;
  stepSeed: number;
  t: number;
  condition?: Float32Array;
}

export type DdpmEngine = TrainingEngine<DdpmBatch>;

/** A batch of the fusion head: `n` pairs NCHW `[n, 4, S, S]` (visible RGB + infrared). */
export interface HeadBatch {
  x: Float32Array;
  n: number;
  /** Features computed before (the feature cache, by this engine's `cacheFeatures`) instead of fresh ones. */
  cached?: CachedBatch;
}

export interface HeadEngine extends TrainingEngine<HeadBatch> {
  /**
   * Validation: the loss and fused images `[n, 3, S, S]` of batch number `index` of a fixed
   * validation set; nothing is updated.
   */
  evaluate(batch: HeadBatch, index: number): Promise<{ loss: number; fused: Float32Array }>;
  /**
   * The features of a batch, copied out for the feature cache (in the engine's own layout:
   * a cached batch goes back to the engine that computed it).
   */
  cacheFeatures(x: Float32Array, n: number): CachedBatch | Promise<CachedBatch>;
  /** Head parameters (count). */
  readonly parameterCount: number;
}
