/**
 * The DDPM variants of `model.diffusion` and `train.ema_decay` as every engine sees them:
 * the conditional mode's split of a batch (infrared condition | visible RGB target),
 * condition dropout, a step's draws, and the EMA of the weights.
 */
import { trainingLevels, type VarType } from '@dif-fusion/diffusion';
import type { TorchWeights } from '@dif-fusion/nn';
import { drawDdpmStep, mixSeed, type NoiseSchedule, Rng } from '@dif-fusion/schedules';
import type { DdpmBatch } from './engine';

/** Channels of the conditional mode: the infrared (plane 3 of a pair) conditions RGB (0-2). */
export const CONDITION_CHANNELS = 1;

/**
 * Split NCHW pairs `[B, 4, H, W]` (visible RGB + infrared) into the conditional mode's
 * target x_0 `[B, 3, H, W]` (visible RGB) and condition `[B, 1, H, W]` (infrared).
 */
export function splitConditional(
  pairs: Float32Array,
  batch: number,
): { x: Float32Array; condition: Float32Array } {
  const plane = pairs.length / (batch * 4);
  const x = new Float32Array(batch * 3 * plane);
  const condition = new Float32Array(batch * plane);
  for (let i = 0; i < batch; i++) {
    x.set(pairs.subarray(i * 4 * plane, (i * 4 + 3) * plane), i * 3 * plane);
    condition.set(pairs.subarray((i * 4 + 3) * plane, (i + 1) * 4 * plane), i * plane);
  }
  return { x, condition };
}

/** The mixSeed call index of condition dropout (no UNet dropout site uses it). */
const CONDITION_DROP_CALL = 0x636f6e64;

/**
 * Condition dropout (classifier-free guidance training): sample i's condition is zeroed
 * when uniform(mixSeed(stepSeed, CONDITION_DROP_CALL, i)) < dropProb, so the draw depends
 * only on the step seed and the sample (the same on every backend, shard and resume).
 * Returns a new array (the input when nothing is dropped).
 */
export function dropConditions(
  condition: Float32Array,
  batch: number,
  dropProb: number,
  stepSeed: number,
): Float32Array {
  if (!(dropProb > 0)) return condition;
  const per = condition.length / batch;
  const out = Float32Array.from(condition);
  for (let i = 0; i < batch; i++)
    if (new Rng(mixSeed(stepSeed, CONDITION_DROP_CALL, i)).uniform() < dropProb)
      out.fill(0, i * per, (i + 1) * per);
  return out;
}

/**
 * Exponential moving average of the weights (pytorch-ddpm's `ema`):
 * ema <- decay ema + (1 - decay) w after every optimizer step, starting from the weights
 * (or a checkpoint's EMA). Kept as Float32Arrays in PyTorch layout, the checkpoint's form.
 */
export class WeightEma {
  readonly weights: TorchWeights;

  constructor(
    readonly decay: number,
    start: TorchWeights,
  ) {
    this.weights = new Map(
      [...start].map(([k, v]) => [k, { shape: v.shape.slice(), data: Float32Array.from(v.data) }]),
    );
  }

  /** One update from the current weights (same names and sizes). */
  update(current: TorchWeights): void {
    const d = this.decay;
    for (const [k, e] of this.weights) {
      const w = current.get(k)!.data;
      const a = e.data;
      for (let i = 0; i < a.length; i++) a[i] = d * a[i] + (1 - d) * w[i];
    }
  }
}

/** What {@link drawDdpmBatch} draws with: the schedule, the training Rng, the variant. */
export interface DdpmDrawOptions {
  schedule: NoiseSchedule;
  /** The run's training Rng (its state is in every checkpoint). */
  rng: Rng;
  /** model.diffusion.var_type (learned_range trains on the discrete level of t). */
  varType: VarType;
  /** Conditional mode: the infrared conditions the visible RGB. */
  conditional?: boolean;
  /** Condition dropout probability (conditional mode). */
  dropProb?: number;
}

/**
 * One DDPM step's inputs from a batch of pairs NCHW `[B, 4, H, W]`, the same for every
 * engine: the data part (conditional: the visible RGB, the infrared after condition dropout
 * the condition) and the step's draws (drawDdpmStep over the data part's elements: t,
 * levels, noise, the step seed).
 */
export function drawDdpmBatch(pairs: Float32Array, batch: number, o: DdpmDrawOptions): DdpmBatch {
  const split = o.conditional ? splitConditional(pairs, batch) : null;
  const x = split?.x ?? pairs;
  const draws = drawDdpmStep(o.schedule, o.rng, batch, x.length);
  const condition =
    split && dropConditions(split.condition, batch, o.dropProb ?? 0, draws.stepSeed);
  // learned_range trains on the discrete level of t (see trainingLevels); others as drawn
  const levels = trainingLevels(o.schedule, o.varType, draws.t, draws.levels);
  return { x, condition: condition ?? undefined, ...draws, levels };
}
