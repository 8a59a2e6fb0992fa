/** Adam / AdamW on TensorFlow.js (the update and its state: @dif-fusion/nn's optim.ts). */
import {
  AdamBase,
  type AdamConfig,
  adamState,
  forEachAdamSlot,
  type OptimizerState,
  type TorchWeights,
} from '@dif-fusion/nn';
import * as tf from '@tensorflow/tfjs-core';
import { tfToTorch, torchToTf } from './tf-ops';

export class Adam extends AdamBase {
  private readonly m = new Map<string, tf.Variable>();
  private readonly v = new Map<string, tf.Variable>();

  constructor(
    private readonly params: ReadonlyMap<string, tf.Variable>,
    config: AdamConfig,
  ) {
    super(config);
    for (const [name, p] of params) {
      this.m.set(name, tf.variable(tf.zerosLike(p), false));
      this.v.set(name, tf.variable(tf.zerosLike(p), false));
    }
  }

  /** One update with gradients keyed by parameter name (TfOps layout, like the params). */
  apply(grads: Record<string, tf.Tensor> | ReadonlyMap<string, tf.Tensor>): void {
    const { stepSize, bc2Sqrt, decay, l2 } = this.nextStep();
    const [b1, b2] = this.betas;
    const get = (n: string) =>
      grads instanceof Map ? grads.get(n) : (grads as Record<string, tf.Tensor>)[n];
    tf.tidy(() => {
      for (const [name, p] of this.params) {
        let g = get(name);
        if (!g) continue;
        const m = this.m.get(name)!;
        const v = this.v.get(name)!;
        const pv: tf.Tensor = decay !== 1 ? tf.mul(p, decay) : p;
        if (l2 !== 0) g = tf.add(g, tf.mul(p, l2));
        const m2 = tf.add(tf.mul(m, b1), tf.mul(g, 1 - b1));
        const v2 = tf.add(tf.mul(v, b2), tf.mul(tf.square(g), 1 - b2));
        const denom = tf.add(tf.div(tf.sqrt(v2), bc2Sqrt), this.eps);
        m.assign(m2);
        v.assign(v2);
        p.assign(tf.sub(pv, tf.mul(tf.div(m2, denom), stepSize)));
      }
    });
  }

  /** State for a checkpoint: slots in PyTorch layout under PyTorch's names. */
  state(): OptimizerState {
    const slot = (src: Map<string, tf.Variable>): TorchWeights => {
      const out: TorchWeights = new Map();
      for (const [name, t] of src) {
        const tt = tfToTorch(t);
        out.set(name, { shape: tt.shape.slice(), data: tt.dataSync() as Float32Array });
        tt.dispose();
      }
      return out;
    };
    return adamState(this, slot(this.m), slot(this.v));
  }

  /** Restore from {@link state} (hyper-parameters from the checkpoint are kept except lr). */
  load(state: OptimizerState): void {
    this.step = state.step;
    forEachAdamSlot(state, this.m.keys(), (slot, name, w) => {
      const variable = (slot === 'exp_avg' ? this.m : this.v).get(name)!;
      const t = tf.tidy(() =>
        torchToTf(tf.tensor(Float32Array.from(w.data), (w.shape ?? variable.shape).slice())),
      );
      variable.assign(t);
      t.dispose();
    });
  }

  dispose(): void {
    for (const t of [...this.m.values(), ...this.v.values()]) t.dispose();
  }
}
