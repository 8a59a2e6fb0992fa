/**
 * Trainable parameters on TensorFlow.js: one `tf.Variable` per ParamSpec, stored in TfOps
 * layout (see `toTfLayout`), loaded from and exported to PyTorch-layout weights keyed by
 * the official state_dict names.
 */

import {
  initParam,
  type ParamSpec,
  shapeSize,
  type TorchWeights,
  type TorchWeightsLike,
} from '@dif-fusion/nn';
import * as tf from '@tensorflow/tfjs-core';
import { type TfParamSource, tfToTorch, torchToTf, toTfLayout } from './tf-ops';

export interface LoadOptions {
  /**
   * Prefix of the keys in the weights to strip before matching parameter names, e.g.
   * `'denoise_fn.'` for an official `*_gen.pth` state_dict or `'weights.'` for golden
   * files. Keys without the prefix are ignored.
   */
  prefix?: string;
  /** Unexpected keys (under the prefix) are an error. Default true. Missing keys always are. */
  strict?: boolean;
}

let storeCounter = 0;

/** Convert a PyTorch-layout tensor's values to a tf tensor in TfOps layout. */
function torchValueToTf(shape: readonly number[], data: ArrayLike<number>): tf.Tensor {
  return tf.tidy(() => {
    const values = data instanceof Float32Array ? data : Float32Array.from(data);
    return torchToTf(tf.tensor(values, shape.slice(), 'float32'));
  });
}

/**
 * `tf.Variable` per parameter, in TfOps layout. Pass it to `new TfOps(store)`; train with
 * `store.variables()` (e.g. `tf.variableGrads(lossFn, store.variables())`).
 *
 * ```ts
 * const store = TfParamStore.init(unet.params(), 42); // deterministic per seed
 * store.load(readSafetensors('ckpt.safetensors').tensors); // PyTorch layouts, official names
 * const weights = store.toTorch(); // Map<name, {shape, data}> in PyTorch layout
 * ```
 */
export class TfParamStore implements TfParamSource {
  readonly specs: readonly ParamSpec[];
  private readonly vars = new Map<string, tf.Variable>();
  private readonly id = storeCounter++;

  private constructor(specs: readonly ParamSpec[], value: (spec: ParamSpec) => tf.Tensor) {
    this.specs = specs;
    for (const spec of specs) {
      if (this.vars.has(spec.name)) throw new Error(`duplicate parameter name ${spec.name}`);
      const v = value(spec);
      // Variable names are global in tfjs: make them unique per store.
      this.vars.set(spec.name, tf.variable(v, true, `s${this.id}/${spec.name}`));
      v.dispose();
    }
  }

  /**
   * Fresh parameters initialised from their specs (zeros, ones, uniform, orthogonal),
   * deterministic for a seed: each parameter has its own Rng stream seeded from
   * (seed, name), so its value does not depend on the other parameters.
   */
  static init(specs: readonly ParamSpec[], seed = 0): TfParamStore {
    return new TfParamStore(specs, (spec) => torchValueToTf(spec.shape, initParam(spec, seed)));
  }

  /** Parameters loaded from PyTorch-layout weights (see `load` for the checks). */
  static fromTorch(
    specs: readonly ParamSpec[],
    weights: TorchWeightsLike,
    options: LoadOptions = {},
  ): TfParamStore {
    const found = matchWeights(specs, weights, options);
    return new TfParamStore(specs, (spec) => {
      const w = found.get(spec.name)!;
      return torchValueToTf(w.shape, w.data);
    });
  }

  /** A parameter in TfOps layout (the variable itself). */
  get(name: string): tf.Variable {
    const v = this.vars.get(name);
    if (!v) throw new Error(`unknown parameter ${name}`);
    return v;
  }

  has(name: string): boolean {
    return this.vars.has(name);
  }

  /** Official parameter names, in spec order. */
  names(): string[] {
    return this.specs.map((s) => s.name);
  }

  /** The trainable variables, in spec order. */
  variables(): tf.Variable[] {
    return this.specs.map((s) => this.vars.get(s.name)!);
  }

  /** Total number of scalar parameters. */
  count(): number {
    let n = 0;
    for (const s of this.specs) n += shapeSize(s.shape);
    return n;
  }

  /**
   * Assign values from PyTorch-layout weights. Every parameter must be present with its
   * exact PyTorch shape; with `strict` (default) keys under the prefix that are not
   * parameters are an error too.
   */
  load(weights: TorchWeightsLike, options: LoadOptions = {}): void {
    const found = matchWeights(this.specs, weights, options);
    for (const spec of this.specs) {
      const w = found.get(spec.name)!;
      const t = torchValueToTf(w.shape, w.data);
      this.vars.get(spec.name)!.assign(t);
      t.dispose();
    }
  }

  /** All parameters in PyTorch layout, keyed by official name, in spec order. */
  toTorch(): TorchWeights {
    const out: TorchWeights = new Map();
    for (const spec of this.specs) {
      const t = tfToTorch(this.vars.get(spec.name)!);
      out.set(spec.name, { shape: spec.shape.slice(), data: t.dataSync() as Float32Array });
      t.dispose();
    }
    return out;
  }

  /** Release the variables. */
  dispose(): void {
    for (const v of this.vars.values()) v.dispose();
    this.vars.clear();
  }
}

/** Look up every spec in the weights, checking names and shapes. */
function matchWeights(
  specs: readonly ParamSpec[],
  weights: TorchWeightsLike,
  options: LoadOptions,
): Map<string, { shape: readonly number[]; data: ArrayLike<number> }> {
  const prefix = options.prefix ?? '';
  const strict = options.strict ?? true;
  const found = new Map<string, { shape: readonly number[]; data: ArrayLike<number> }>();
  const missing: string[] = [];
  const known = new Set<string>();
  for (const spec of specs) {
    known.add(spec.name);
    const w = weights.get(prefix + spec.name);
    if (!w) {
      missing.push(spec.name);
      continue;
    }
    if (w.shape.length !== spec.shape.length || w.shape.some((d, i) => d !== spec.shape[i]))
      throw new Error(
        `${prefix}${spec.name}: shape [${w.shape.join(', ')}] in the weights, expected [${spec.shape.join(', ')}]`,
      );
    if (w.data.length !== shapeSize(spec.shape))
      throw new Error(`${prefix}${spec.name}: ${w.data.length} values for shape [${spec.shape}]`);
    found.set(spec.name, w);
  }
  if (missing.length > 0)
    throw new Error(
      `${missing.length} parameter(s) missing from the weights: ${missing
        .slice(0, 5)
        .map((n) => prefix + n)
        .join(', ')}${missing.length > 5 ? ', ...' : ''}`,
    );
  if (strict) {
    const unexpected = [...weights.keys()].filter(
      (k) => k.startsWith(prefix) && !known.has(k.slice(prefix.length)),
    );
    if (unexpected.length > 0)
      throw new Error(
        `${unexpected.length} unexpected key(s) in the weights: ${unexpected.slice(0, 5).join(', ')}${unexpected.length > 5 ? ', ...' : ''}`,
      );
  }
  return found;
}

/** TfOps layout shape of a parameter (convenience for code that allocates gradients etc.). */
export function tfShapeOf(spec: ParamSpec): number[] {
  return toTfLayout(spec.shape).shape;
}
