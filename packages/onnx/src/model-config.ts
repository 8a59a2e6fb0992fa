/**
 * The `config.json` of a fusion model folder (written by @dif-fusion/export, read by the
 * runtime). This package knows the envelope, not the networks: the `unet` and `head` blocks
 * are the networks' own configs, parsed by whoever knows them (`readModelConfig`'s
 * `blocks`, e.g. @dif-fusion/fusion-head's `parseFusionBlocks`).
 */

export const MODEL_FORMAT = 'dif-fusion-model';
/**
 * 2: the head block is the one source of the time steps and the head's mode (version 1 also
 * held them at the top level as `time_steps` and `head_mode`; such folders still load).
 */
export const MODEL_FORMAT_VERSION = 2;

export interface Provenance {
  /** What the weights are: checkpoint paths and steps, or "random-init". */
  source?: string;
  ddpm_checkpoint?: string;
  ddpm_step?: number;
  head_checkpoint?: string;
  head_step?: number;
  [key: string]: unknown;
}

/** A network's config block as written in config.json (the network's package parses it). */
export type NetworkBlock = Record<string, unknown>;

/**
 * The head block as the runtime reads it: its time steps, in the order of the `noise`
 * input's first axis (the rest is the fusion head's).
 */
export interface HeadBlock {
  time_steps: number[];
  [key: string]: unknown;
}

/**
 * The config.json of a fusion model folder; `U` and `H` are the types of the `unet` and
 * `head` blocks once parsed (`NetworkBlock`/`HeadBlock` as written when not).
 */
export interface FusionModelConfig<
  U extends object = NetworkBlock,
  H extends { time_steps: number[] } = HeadBlock,
> {
  format: typeof MODEL_FORMAT;
  format_version: number;
  /**
   * sha256 of the graph (model.onnx, then its external data) this config was exported with;
   * loading refuses a model.onnx that does not match. Absent in folders exported before it.
   */
  graph_sha256?: string;
  /**
   * The UNet's one config block (official `model.unet` keys + image_size, as checkpoints
   * store it; `unetConfigToJSON`). Folders written before hold `channel_mults`: read as
   * `channel_multiplier`.
   */
  unet: U;
  /**
   * Fusion head config JSON (`headConfigToJSON`): its channels are the UNet's; its
   * `time_steps` are the diffusion time steps in the order of the `noise` input's first axis,
   * its `mode` the forward pass. Folders written before hold a copy of the UNet's decoder
   * keys (checked against `unet` and dropped) and, format_version 1, `time_steps` and
   * `head_mode` at the top level (read into this block).
   */
  head: H;
  /** Continuous noise level sqrt(alpha_cumprod) used at each time step. */
  noise_levels: number[];
  /** How the levels were chosen (e.g. "midpoint"), and the schedule they came from. */
  noise_level_rule: string;
  beta_schedule: Record<string, unknown> | null;
  /** Seed of the random weights (random-init exports) or null. */
  seed: number | null;
  /** Height and width must be multiples of this (pad to it). */
  size_multiple: number;
  /** Reversed decoder feature indices the graph computes (the rest is pruned). */
  feature_indices: number[];
  inputs: {
    ir: string;
    vis: string;
    noise: string;
  };
  output: string;
  opset: number;
  external_data: boolean;
  /**
   * Arithmetic of the convolutions: absent or "fp32" (float), "int8" (QDQ int8 convolutions,
   * calibrated; `quantization` says how: @dif-fusion/export quantizeModelFolder).
   */
  precision?: 'fp32' | 'int8';
  quantization?: import('./quantize').QuantizationRecord;
  provenance: Provenance;
  created: string;
}
