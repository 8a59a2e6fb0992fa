/**
 * Weights by official PyTorch `state_dict` name, in PyTorch layouts: what checkpoints, the
 * ONNX export and every realisation exchange.
 */

/** One tensor in PyTorch layout: row-major float32 values and the PyTorch shape. */
export interface TorchTensor {
  shape: number[];
  data: Float32Array;
}

/** Weights keyed by official state_dict name, PyTorch layouts (what checkpoints store). */
export type TorchWeights = Map<string, TorchTensor>;

/**
 * Anything shaped like TorchWeights, e.g. `readSafetensors(path).tensors` from
 * @dif-fusion/io (float64 or integer data is converted to float32 on load).
 */
export type TorchWeightsLike = ReadonlyMap<
  string,
  { shape: readonly number[]; data: ArrayLike<number> }
>;
