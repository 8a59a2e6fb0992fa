/**
 * The frozen DDPM's features for the fusion head, written once for every realisation (the
 * tfjs feature extraction and head training, the exported fusion graph, the ONNX head
 * training graph): Dif-Fusion's feature extraction (official `GaussianDiffusion.feats`),
 *
 *   x_k  = q_sample(x, level_k, noise_k)        for each time step k of the head
 *   fd_k = UNet.features(x_k, level_k)          the reversed decoder features
 *
 * Per step (one UNet pass each, `stepLevel`), or batched (`batchLevel`): one UNet pass over
 * the K noisy inputs stacked step-major on the batch axis (row k*N + n), its features split
 * back per step, as the ONNX graphs run it.
 */
import type { Ops } from '@dif-fusion/nn';
import { qSample } from './losses';

export interface StepFeaturesArgs<T> {
  /** The DDPM's clean input cat(vis, ir), `[N, 4, H, W]` in the realisation's layout. */
  x: T;
  /** Noise level per time step: one number, or per sample `[N, 1]`. */
  levels: ReadonlyArray<number | T>;
  /** Gaussian noise per time step, shaped like `x`. */
  noise: readonly T[];
  /**
   * The UNet's feature pass: reversed decoder features (fd[0] = full resolution) of `xNoisy`
   * at `level` (`[B, 1]`); entries it does not compute are undefined.
   */
  features: (xNoisy: T, level: T) => ReadonlyArray<T | undefined>;
  /** Per step: step k's level as the UNet reads it, `[N, 1]`. */
  stepLevel?: (k: number) => T;
  /**
   * Batched: the levels of the K*N stacked inputs, `[K*N, 1]` step-major (called after
   * the stacking, so graph realisations write its nodes there).
   */
  batchLevel?: () => T;
  /** Batched: the feature indices to split back per step (the head's); the rest stay undefined. */
  indices?: readonly number[];
}

/** `feats[k][i]`: reversed decoder feature i of time step k (see the module comment). */
export function stepFeatures<T>(ops: Ops<T>, a: StepFeaturesArgs<T>): Array<Array<T | undefined>> {
  const k = a.levels.length;
  if (a.noise.length !== k)
    throw new Error(`step features: ${a.noise.length} noise tensors for ${k} time steps`);
  if (a.stepLevel) {
    const stepLevel = a.stepLevel;
    return a.levels.map((level, s) =>
      a.features(qSample(ops, a.x, level, a.noise[s]), stepLevel(s)).slice(),
    );
  }
  if (!a.batchLevel) throw new Error('step features: give stepLevel or batchLevel');
  const noisy = a.levels.map((level, s) => qSample(ops, a.x, level, a.noise[s]));
  const fd = a.features(ops.concatBatch(noisy), a.batchLevel());
  const feats = Array.from({ length: k }, () => new Array<T | undefined>(fd.length));
  for (const i of a.indices ?? []) {
    const f = fd[i];
    if (f === undefined) throw new Error(`step features: the UNet did not compute feature ${i}`);
    const parts = ops.splitBatch(f, k, `fd${i}_k`);
    for (let s = 0; s < k; s++) feats[s][i] = parts[s];
  }
  return feats;
}
