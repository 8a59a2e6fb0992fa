/**
 * nn.BatchNorm2d with PyTorch's running statistics. The forward pass is an `Ops` call
 * (`batchNorm2d`); in training mode the realisation reports each site's batch mean and
 * biased variance (`Ops.batchStats`), and the trainer applies the momentum update to the
 * buffers after the step with {@link updateRunningStats}, on whichever backend ran it.
 */
import { Module, type ParamSpec } from './module';
import type { BatchStat, Ops } from './ops';
import type { TorchWeights } from './weights';

/** PyTorch's default BatchNorm momentum. */
export const BN_MOMENTUM = 0.1;

/**
 * nn.BatchNorm2d(channels) (affine, track_running_stats, eps 1e-5). Keys `weight`, `bias`
 * and the buffers `running_mean`, `running_var`, `num_batches_tracked` (float32 here; int64
 * in PyTorch).
 */
export class BatchNorm2d extends Module {
  constructor(
    prefix: string,
    readonly channels: number,
    readonly eps = 1e-5,
  ) {
    super(prefix);
  }

  params(): ParamSpec[] {
    const c = [this.channels];
    return [
      { name: this.key('weight'), shape: c, init: { kind: 'ones' } },
      { name: this.key('bias'), shape: c, init: { kind: 'zeros' } },
      { name: this.key('running_mean'), shape: c, init: { kind: 'zeros' }, buffer: true },
      { name: this.key('running_var'), shape: c, init: { kind: 'ones' }, buffer: true },
      { name: this.key('num_batches_tracked'), shape: [], init: { kind: 'zeros' }, buffer: true },
    ];
  }

  /** Training mode: batch statistics (reported to the ops); eval mode: the running ones. */
  forward<T>(ops: Ops<T>, x: T): T {
    const running = ops.training
      ? null
      : { mean: ops.param(this.key('running_mean')), variance: ops.param(this.key('running_var')) };
    return ops.batchNorm2d(x, ops.param(this.key('weight')), ops.param(this.key('bias')), running, {
      site: this.prefix,
      eps: this.eps,
    });
  }
}

/** One site's batch statistics as plain arrays (biased variance over `count` values). */
export type BatchStatValues = BatchStat<Float32Array>;

/**
 * PyTorch's running-statistics update (`momentum` m, n = count values per channel):
 * running_mean = (1 - m) running_mean + m mean,
 * running_var = (1 - m) running_var + m var n / (n - 1) (the unbiased batch variance),
 * num_batches_tracked += 1. Returns the new buffers (official keys, PyTorch layout);
 * `weights` is left as it is.
 */
export function updateRunningStats(
  weights: ReadonlyMap<string, { shape: readonly number[]; data: ArrayLike<number> }>,
  stats: readonly BatchStatValues[],
  momentum = BN_MOMENTUM,
): TorchWeights {
  const out: TorchWeights = new Map();
  const get = (k: string) => {
    const w = out.get(k) ?? weights.get(k);
    if (!w) throw new Error(`BatchNorm buffer ${k} missing from the weights`);
    return w.data;
  };
  for (const s of stats) {
    const mk = `${s.site}.running_mean`;
    const vk = `${s.site}.running_var`;
    const nk = `${s.site}.num_batches_tracked`;
    const rm = get(mk);
    const rv = get(vk);
    const c = s.mean.length;
    const mean = new Float32Array(c);
    const variance = new Float32Array(c);
    const unbias = s.count > 1 ? s.count / (s.count - 1) : 1;
    for (let i = 0; i < c; i++) {
      mean[i] = (1 - momentum) * rm[i] + momentum * s.mean[i];
      variance[i] = (1 - momentum) * rv[i] + momentum * s.variance[i] * unbias;
    }
    out.set(mk, { shape: [c], data: mean });
    out.set(vk, { shape: [c], data: variance });
    out.set(nk, { shape: [], data: Float32Array.of(get(nk)[0] + 1) });
  }
  return out;
}
