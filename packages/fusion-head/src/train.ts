/**
 * Training the fusion head on features of a frozen DDPM (official Fusion_model.py +
 * train_fusion_head_msrs.py), as library functions: the trainer app only loops.
 *
 * The UNet runs forward only, outside the gradient tape: features are computed first (in
 * their own `tf.tidy`, never inside `variableGrads`), then the head's forward pass and the
 * loss are differentiated with respect to the head's parameters alone.
 */
import { type Conv2dFn, TfOps, type TfParamSource } from '@dif-fusion/tfjs';
import * as tf from '@tensorflow/tfjs-core';
import type { FusionHead } from './head';
import { fusionLoss } from './loss';
import type { FusionLossOptions } from './loss-options';

/** A batch of image pairs, NCHW, in [-1, 1]: `vis` [N,3,H,W], `ir` [N,1,H,W]. */
export interface FusionBatch {
  vis: tf.Tensor;
  ir: tf.Tensor;
}

/** Loss values of one step, as numbers (already read back from the backend). */
export interface HeadLossValues {
  loss: number;
  lossIn: number;
  lossGrad: number;
  /** Present when the colour-fidelity term is on. */
  lossColor?: number;
}

export interface HeadStepResult extends HeadLossValues {
  /** False when the loss was not finite: the parameters were left unchanged. */
  applied: boolean;
}

/**
 * Time-step features for the head: `feats[k][i]` is reversed decoder feature `i` of time step
 * `time_steps[k]`, NHWC. Entries the head does not read may be null.
 */
export type HeadFeatures = (tf.Tensor | null)[][];

/**
 * Where features come from: given `xStart` = cat(vis, ir) NHWC `[N,H,W,4]` in [-1, 1] and
 * the time steps, returns the reversed decoder features of each time step (NHWC). Called
 * outside any gradient tape. `indices` lists the feature indices the head reads; an
 * implementation may return null (or skip computing) the others.
 */
export type HeadFeatureExtractor = (
  xStart: tf.Tensor4D,
  timeSteps: readonly number[],
  indices: readonly number[],
) => HeadFeatures;

/** The batch's sources in TfOps's NHWC layout (for the head variants that read them). */
function nhwcSources(batch: FusionBatch): { vis: tf.Tensor; ir: tf.Tensor } {
  return {
    vis: tf.transpose(batch.vis, [0, 2, 3, 1]),
    ir: tf.transpose(batch.ir, [0, 2, 3, 1]),
  };
}

/** cat(vis, ir) as NHWC `[N,H,W,4]`: the DDPM's input (official VIDataset `img`). */
export function ddpmInput(batch: FusionBatch): tf.Tensor4D {
  return tf.tidy(
    () => tf.transpose(tf.concat([batch.vis, batch.ir], 1), [0, 2, 3, 1]) as tf.Tensor4D,
  );
}

/** Dispose every tensor of a HeadFeatures. */
export function disposeFeatures(feats: HeadFeatures): void {
  for (const f of feats) for (const t of f) t?.dispose();
}

/** Parameters the head trains: a TfParamSource handing out tf.Variables (TfParamStore). */
export interface HeadParamSource extends TfParamSource {
  get(name: string): tf.Variable;
}

/**
 * An optimizer taking gradients keyed by official parameter name (TfOps layout), such as
 * the trainer's checkpointable Adam. A `tf.Optimizer` works too (see HeadOptimizerLike).
 */
export interface NamedGradientOptimizer {
  apply(grads: Record<string, tf.Tensor>): void;
  lr?: number;
}

export type HeadOptimizerLike = tf.Optimizer | NamedGradientOptimizer;

function isTfOptimizer(o: HeadOptimizerLike): o is tf.Optimizer {
  return typeof (o as tf.Optimizer).applyGradients === 'function';
}

export interface HeadStepArgs {
  head: FusionHead;
  params: HeadParamSource;
  optimizer: HeadOptimizerLike;
  /** Frozen features (NHWC), computed outside the tape; not disposed here. */
  feats: HeadFeatures;
  /** NHWC `[N,H,W,3]` and `[N,H,W,1]`, in [-1, 1]. */
  vis: tf.Tensor;
  ir: tf.Tensor;
  loss?: Omit<FusionLossOptions, 'layout'>;
  /** Convolution for TfOps (a backend whose conv2d lacks a filter gradient needs one). */
  conv2d?: Conv2dFn;
}

/**
 * One optimisation step of the head on precomputed features: the loss and its gradients
 * with respect to the head parameters the current mode reads (`head.usedParams()`), then
 * `optimizer.applyGradients` unless the loss is not finite.
 */
export function headTrainStep(args: HeadStepArgs): HeadStepResult {
  const { head, params, optimizer, feats, vis, ir } = args;
  const ops = new TfOps(params, { training: true, conv2d: args.conv2d });
  const names = head.usedParams().map((p) => p.name);
  const varList = names.map((n) => params.get(n));
  let parts: tf.Scalar[] = [];
  const { value, grads } = tf.variableGrads(() => {
    const fused = head.forward(ops, feats as tf.Tensor[][], { vis, ir });
    const r = fusionLoss(vis, ir, fused, { ...args.loss, layout: 'NHWC' });
    // Keep the parts alive past the tape's tidy.
    parts = [
      tf.keep(r.lossIn),
      tf.keep(r.lossGrad),
      ...(r.lossColor ? [tf.keep(r.lossColor)] : []),
    ];
    return r.loss;
  }, varList);
  const values = readLosses(value, parts);
  const applied = Number.isFinite(values.loss);
  if (applied) {
    if (isTfOptimizer(optimizer)) optimizer.applyGradients(grads);
    else {
      const byName: Record<string, tf.Tensor> = {};
      names.forEach((n, i) => {
        const g = grads[varList[i].name];
        if (g) byName[n] = g;
      });
      optimizer.apply(byName);
    }
  }
  tf.dispose([value, ...parts, ...Object.values(grads)]);
  return { ...values, applied };
}

function readLosses(loss: tf.Scalar, parts: tf.Scalar[]): HeadLossValues {
  const out: HeadLossValues = {
    loss: loss.dataSync()[0],
    lossIn: parts[0].dataSync()[0],
    lossGrad: parts[1].dataSync()[0],
  };
  if (parts[2]) out.lossColor = parts[2].dataSync()[0];
  return out;
}

/** Official Adam: torch.optim.Adam(lr) (betas 0.9, 0.999, eps 1e-8). */
export function headOptimizer(type: 'adam' | 'adamw' | string = 'adam', lr = 1e-4): tf.Optimizer {
  if (type !== 'adam')
    throw new Error(`optimizer '${type}' is not supported for the fusion head (use 'adam')`);
  return tf.train.adam(lr, 0.9, 0.999, 1e-8);
}

/**
 * Set the learning rate: a tfjs optimizer's `learningRate` (Adam/SGD/... read it every
 * step) or a NamedGradientOptimizer's `lr`.
 */
export function setLearningRate(optimizer: HeadOptimizerLike, lr: number): void {
  if (isTfOptimizer(optimizer))
    (optimizer as unknown as { learningRate: number }).learningRate = lr;
  else optimizer.lr = lr;
}

/**
 * Learning rate for an epoch (0-based) under the official scheduler config
 * (`train.sheduler` [sic] / `scheduler`): `linear`: lr * (1 - epoch / (n_epoch + 1));
 * `step`: lr * gamma^floor(epoch / floor(n_epoch / n_steps)); anything else: constant.
 * (The official script steps its scheduler once, after the last epoch, so its runs train at
 * the constant base rate; this applies the schedule per epoch as configured.)
 */
export function headLearningRate(
  baseLr: number,
  epoch: number,
  nEpoch: number,
  scheduler: { lr_policy?: string; n_steps?: number; gamma?: number } = {},
): number {
  switch (scheduler.lr_policy) {
    case 'linear':
      return baseLr * (1 - epoch / (nEpoch + 1));
    case 'step': {
      const stepSize = Math.max(1, Math.floor(nEpoch / (scheduler.n_steps ?? 3)));
      return baseLr * (scheduler.gamma ?? 0.1) ** Math.floor(epoch / stepSize);
    }
    default:
      return baseLr;
  }
}

export interface HeadTrainerOptions {
  head: FusionHead;
  /** Head parameters (e.g. TfParamStore.init(head.params(), seed) or .fromTorch(...)). */
  params: HeadParamSource;
  /** Frozen-DDPM features (see @dif-fusion/diffusion makeFeatureExtractor). */
  features: HeadFeatureExtractor;
  /** Default: headOptimizer('adam', lr) (tf.train.adam with PyTorch's eps). */
  optimizer?: HeadOptimizerLike;
  /** Learning rate of the default optimizer (official 1e-4). */
  lr?: number;
  loss?: Omit<FusionLossOptions, 'layout'>;
  conv2d?: Conv2dFn;
}

/**
 * Head training in three calls: `step(batch)` (features, loss, gradients, Adam update),
 * `evaluate(batch)` (validation loss and the fused image) and `fuse(batch)`.
 *
 * ```ts
 * const trainer = new HeadTrainer({ head, params: TfParamStore.init(head.params(), 1), features });
 * for (const batch of batches) console.log(trainer.step(batch).loss);
 * ```
 */
export class HeadTrainer {
  readonly head: FusionHead;
  readonly params: HeadParamSource;
  readonly optimizer: HeadOptimizerLike;
  private readonly extract: HeadFeatureExtractor;
  private readonly lossOptions: Omit<FusionLossOptions, 'layout'>;
  private readonly conv2d?: Conv2dFn;

  constructor(options: HeadTrainerOptions) {
    this.head = options.head;
    this.params = options.params;
    this.extract = options.features;
    this.optimizer = options.optimizer ?? headOptimizer('adam', options.lr ?? 1e-4);
    this.lossOptions = options.loss ?? {};
    this.conv2d = options.conv2d;
  }

  /** Frozen features of a batch (NHWC), forward-only. Dispose with disposeFeatures. */
  features(batch: FusionBatch): HeadFeatures {
    const x = ddpmInput(batch);
    try {
      return this.extract(x, this.head.config.time_steps, this.head.requiredFeatureIndices());
    } finally {
      x.dispose();
    }
  }

  /**
   * One training step on a batch (NCHW, [-1, 1]). `precomputed`: the batch's features from
   * an earlier `features(batch)` call (e.g. a feature cache); they are not disposed here.
   */
  step(batch: FusionBatch, precomputed?: HeadFeatures): HeadStepResult {
    const feats = precomputed ?? this.features(batch);
    const vis = tf.transpose(batch.vis, [0, 2, 3, 1]);
    const ir = tf.transpose(batch.ir, [0, 2, 3, 1]);
    try {
      return headTrainStep({
        head: this.head,
        params: this.params,
        optimizer: this.optimizer,
        feats,
        vis,
        ir,
        loss: this.lossOptions,
        conv2d: this.conv2d,
      });
    } finally {
      if (!precomputed) disposeFeatures(feats);
      tf.dispose([vis, ir]);
    }
  }

  /**
   * Validation: the loss of a batch (same weights as training; the official alpha is 1 in
   * both) and the fused image, NCHW in (-1, 1). Nothing is updated. `precomputed` as in
   * `step`.
   */
  evaluate(
    batch: FusionBatch,
    precomputed?: HeadFeatures,
  ): HeadLossValues & { fused: tf.Tensor4D } {
    const feats = precomputed ?? this.features(batch);
    try {
      const ops = new TfOps(this.params, { conv2d: this.conv2d });
      const { fused, parts } = tf.tidy(() => {
        const f = this.head.forward(ops, feats as tf.Tensor[][], nhwcSources(batch));
        const r = fusionLoss(batch.vis, batch.ir, tf.transpose(f, [0, 3, 1, 2]), {
          ...this.lossOptions,
          layout: 'NCHW',
        });
        return {
          fused: tf.transpose(f, [0, 3, 1, 2]) as tf.Tensor4D,
          parts: [r.loss, r.lossIn, r.lossGrad, ...(r.lossColor ? [r.lossColor] : [])],
        };
      });
      const values = readLosses(parts[0], parts.slice(1));
      tf.dispose(parts);
      return { ...values, fused };
    } finally {
      if (!precomputed) disposeFeatures(feats);
    }
  }

  /** The fused image of a batch, NCHW in (-1, 1). */
  fuse(batch: FusionBatch): tf.Tensor4D {
    const feats = this.features(batch);
    try {
      const ops = new TfOps(this.params, { conv2d: this.conv2d });
      return tf.tidy(
        () =>
          tf.transpose(
            this.head.forward(ops, feats as tf.Tensor[][], nhwcSources(batch)),
            [0, 3, 1, 2],
          ) as tf.Tensor4D,
      );
    } finally {
      disposeFeatures(feats);
    }
  }

  setLearningRate(lr: number): void {
    setLearningRate(this.optimizer, lr);
  }
}
