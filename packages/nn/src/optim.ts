/**
 * Adam / AdamW, written here (not tf.train.adam) so that the whole optimizer state — the
 * step counter and the two moment slots per parameter — can be saved into a checkpoint and
 * restored exactly. The update is PyTorch's (torch.optim.Adam/AdamW, single-tensor path):
 *
 *   AdamW only: p <- p * (1 - lr * weight_decay)
 *   Adam with weight_decay: g <- g + weight_decay * p
 *   m <- beta1 * m + (1 - beta1) * g
 *   v <- beta2 * v + (1 - beta2) * g * g
 *   p <- p - (lr / (1 - beta1^t)) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
 *
 * Defaults as PyTorch: betas (0.9, 0.999), eps 1e-8, weight_decay 0 (Adam) / 0.01 (AdamW).
 * This file holds the state and the step factors every realisation shares (`Adam` in
 * @dif-fusion/tfjs, `AdamF32` in @dif-fusion/onnx/train).
 */

import type { TorchWeights } from './weights';

/**
 * Optimizer hyper-parameters, progress and slots, as checkpoints store them (slot tensors as
 * `optim.<slot>.<param name>`, PyTorch's slot names and layouts).
 */
export interface OptimizerState {
  type: 'adam' | 'adamw';
  lr: number;
  betas: [number, number];
  eps: number;
  weightDecay: number;
  /** Number of optimizer steps taken (Adam's bias-correction counter). */
  step: number;
  /** Per-parameter slot tensors, PyTorch layout: slot name -> param name -> tensor. */
  slots: Record<string, TorchWeights>;
}

/** PyTorch's slot names of Adam/AdamW, in checkpoint order. */
export const ADAM_SLOTS = ['exp_avg', 'exp_avg_sq'] as const;

/** The checkpoint form of an Adam/AdamW: hyper-parameters, step and the two slots. */
export function adamState(
  o: Omit<OptimizerState, 'slots'>,
  expAvg: TorchWeights,
  expAvgSq: TorchWeights,
): OptimizerState {
  return {
    type: o.type,
    lr: o.lr,
    betas: [...o.betas] as [number, number],
    eps: o.eps,
    weightDecay: o.weightDecay,
    step: o.step,
    slots: { exp_avg: expAvg, exp_avg_sq: expAvgSq },
  };
}

/**
 * Call `fn` with the checkpoint tensor of every (slot, parameter) in `names`; one-line errors
 * for a missing slot or tensor. Shared by every Adam realisation's `load`.
 */
export function forEachAdamSlot(
  state: {
    slots: Record<
      string,
      ReadonlyMap<string, { shape?: readonly number[]; data: ArrayLike<number> }>
    >;
  },
  names: Iterable<string>,
  fn: (
    slot: (typeof ADAM_SLOTS)[number],
    name: string,
    t: { shape?: readonly number[]; data: ArrayLike<number> },
  ) => void,
): void {
  const list = [...names];
  for (const slot of ADAM_SLOTS) {
    const src = state.slots[slot];
    if (!src) throw new Error(`checkpoint optimizer state lacks the ${slot} slot`);
    for (const name of list) {
      const w = src.get(name);
      if (!w) throw new Error(`checkpoint optimizer state lacks ${slot} for ${name}`);
      fn(slot, name, w);
    }
  }
}

export interface AdamConfig {
  type: 'adam' | 'adamw';
  lr: number;
  betas?: [number, number];
  eps?: number;
  weightDecay?: number;
}

/**
 * The hyper-parameters (PyTorch's defaults), the step counter and the per-step factors of
 * Adam/AdamW, shared by every realisation (`Adam` on tfjs, `AdamF32` on Float32Arrays).
 */
export abstract class AdamBase {
  readonly type: 'adam' | 'adamw';
  lr: number;
  readonly betas: [number, number];
  readonly eps: number;
  readonly weightDecay: number;
  /** Optimizer steps taken. */
  step = 0;

  constructor(config: AdamConfig) {
    this.type = config.type;
    this.lr = config.lr;
    this.betas = config.betas ?? [0.9, 0.999];
    this.eps = config.eps ?? 1e-8;
    this.weightDecay = config.weightDecay ?? (config.type === 'adamw' ? 0.01 : 0);
  }

  /**
   * Count a step and return its factors: step size lr / (1 - beta1^t), sqrt(1 - beta2^t),
   * AdamW's decoupled decay factor (1 - lr * wd, else 1) and Adam's L2 term (wd, else 0).
   */
  protected nextStep(): { stepSize: number; bc2Sqrt: number; decay: number; l2: number } {
    this.step += 1;
    const [b1, b2] = this.betas;
    return {
      stepSize: this.lr / (1 - b1 ** this.step),
      bc2Sqrt: Math.sqrt(1 - b2 ** this.step),
      decay: this.type === 'adamw' ? 1 - this.lr * this.weightDecay : 1,
      l2: this.type === 'adam' ? this.weightDecay : 0,
    };
  }
}
