/**
 * Adam / AdamW on Float32Array parameters (PyTorch layouts), for training on ONNX Runtime.
 * The update is PyTorch's (torch.optim.Adam/AdamW, single-tensor path), as the tfjs
 * trainer's optimizer applies it, and the state has the same shape (step counter, slots
 * `exp_avg` / `exp_avg_sq` per parameter in PyTorch layout), so a checkpoint written by
 * either backend resumes on the other:
 *
 *   AdamW only: p <- p * (1 - lr * weight_decay)
 *   Adam with weight_decay: g <- g + weight_decay * p
 *   m <- beta1 * m + (1 - beta1) * g
 *   v <- beta2 * v + (1 - beta2) * g * g
 *   p <- p - (lr / (1 - beta1^t)) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
 *
 * Written here (one loop per tensor) because the update is a few passes over memory:
 * ~10 ms per million parameters in plain JS, small beside a training step.
 */

import {
  AdamBase,
  type AdamConfig,
  adamState,
  forEachAdamSlot,
  type OptimizerState,
} from '@dif-fusion/nn';

/** Adam/AdamW settings (PyTorch's defaults where absent). */
export type AdamF32Config = AdamConfig;

/** Optimizer state as checkpoints store it (the shared `OptimizerState`). */
export type AdamF32State = OptimizerState;

export class AdamF32 extends AdamBase {
  private readonly m = new Map<string, Float32Array>();
  private readonly v = new Map<string, Float32Array>();

  constructor(
    /** The parameters, updated in place. */
    private readonly params: ReadonlyMap<string, { shape: number[]; data: Float32Array }>,
    config: AdamF32Config,
  ) {
    super(config);
    for (const [name, p] of params) {
      this.m.set(name, new Float32Array(p.data.length));
      this.v.set(name, new Float32Array(p.data.length));
    }
  }

  /** One update with gradients keyed by parameter name (parameters without one are left). */
  apply(grads: ReadonlyMap<string, Float32Array>): void {
    const { stepSize, bc2Sqrt, decay, l2 } = this.nextStep();
    const [b1, b2] = this.betas;
    for (const [name, p] of this.params) {
      const g = grads.get(name);
      if (!g) continue;
      if (g.length !== p.data.length)
        throw new Error(
          `Adam: gradient of ${name} has ${g.length} values, the parameter ${p.data.length}`,
        );
      const m = this.m.get(name)!;
      const v = this.v.get(name)!;
      const w = p.data;
      for (let i = 0; i < w.length; i++) {
        const gi = l2 !== 0 ? g[i] + l2 * w[i] : g[i];
        const mi = b1 * m[i] + (1 - b1) * gi;
        const vi = b2 * v[i] + (1 - b2) * gi * gi;
        m[i] = mi;
        v[i] = vi;
        w[i] = w[i] * decay - (stepSize * mi) / (Math.sqrt(vi) / bc2Sqrt + this.eps);
      }
    }
  }

  /**
   * The state as checkpoints store it. `copy: false` hands out the live slot arrays (no
   * copy of 2x the parameters' size: 2.8 GB at the paper's size, the checkpoint's peak):
   * for a caller that is done with them before the next `apply` (a checkpoint written at once).
   */
  state(options: { copy?: boolean } = {}): AdamF32State {
    const copy = options.copy ?? true;
    const slot = (src: Map<string, Float32Array>) =>
      new Map(
        [...src].map(([name, d]) => [
          name,
          { shape: this.params.get(name)!.shape.slice(), data: copy ? d.slice() : d },
        ]),
      );
    return adamState(this, slot(this.m), slot(this.v));
  }

  /** Restore from `state()` or a tfjs-trained checkpoint (hyper-parameters kept except lr). */
  load(state: Parameters<typeof forEachAdamSlot>[0] & { step: number }): void {
    this.step = state.step;
    forEachAdamSlot(state, this.m.keys(), (slot, name, w) => {
      const d = (slot === 'exp_avg' ? this.m : this.v).get(name)!;
      if (w.data.length !== d.length)
        throw new Error(`checkpoint optimizer state: ${slot} of ${name} has the wrong size`);
      d.set(w.data);
    });
  }
}
