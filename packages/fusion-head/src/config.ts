/**
 * Fusion head configuration: the JSON users see in checkpoints and model folders.
 *
 * Field names follow the official code (`feat_scales`, `model_df.t` is called `time_steps`
 * here and accepted as `t` on input). The decoder channels are the UNet's: the head reads
 * `inner_channel`, `channel_multiplier` and `res_blocks` from the UNet's one config
 * (`UNetDecoderConfig`, @dif-fusion/unet), given next to its own; configs written before
 * (which held a copy of those three keys) still read, and the copy must match the UNet.
 */
import { DifFusionError } from '@dif-fusion/schedules';
import { parseUNetConfig, type UNetConfig, type UNetDecoderConfig } from '@dif-fusion/unet';
import { type ParseError, parse as parseJsonc, printParseErrorCode } from 'jsonc-parser';

/**
 * - `reference`: exactly the official forward pass: the output of the finest-scale Block is
 *   computed but discarded, the final layers read the upsampled output of the attention block
 *   before it (and with a single time step the Blocks are not applied at all).
 * - `full`: the finest-scale Block's output (which includes the upsampled coarser path) feeds
 *   the final layers, and Blocks are always applied.
 */
export type FusionHeadMode = 'reference' | 'full';

/**
 * What the head's last layer predicts (see the README, "Variants"):
 * - `rgb` (official): the fused RGB image, tanh;
 * - `luma`: a lightness change d = 2 tanh(.) added equally to R, G and B of the visible
 *   image, F = V + d: the visible image's chroma (BT.601 Cb, Cr) is kept exactly;
 * - `weight`: a per-pixel weight w = sigmoid(.) between the sources, F = w V + (1 - w) I.
 */
export type FusionHeadOutput = 'rgb' | 'luma' | 'weight';

export interface FusionHeadConfig {
  /** Indices into the reversed decoder features (0 = last, full-resolution UNet block). */
  feat_scales: number[];
  /** Diffusion time steps whose features are stacked (official `model_df.t`). */
  time_steps: number[];
  /** Output channels (the official head always makes 3: RGB). */
  out_channels: number;
  mode: FusionHeadMode;
  /** Last-layer prediction (default `rgb`, the official head); written only when not `rgb`. */
  output?: FusionHeadOutput;
  /**
   * Concatenate the source images (visible RGB + infrared, full resolution) to the input of
   * the final layers (`rgb_decode2`). Default false; written only when true.
   */
  source_skip?: boolean;
  /**
   * Every Block starts with the 1x1 merge conv (`block.0`, then ReLU) also with a single time
   * step. The official head merges only when several time steps are stacked (and keeps
   * `None` in the slot otherwise); with `merge` a one-step head keeps the shape of a
   * several-step one, so it can start from one's weights (its merge weights summed over the
   * steps: exact where the steps' features agree). Written only when true.
   */
  merge?: boolean;
}

export type FusionHeadConfigInput = Partial<FusionHeadConfig> & {
  feat_scales: number[];
  /** Alias of time_steps (official `model_df.t`). */
  t?: number[];
} & LegacyDecoderKeys;

/**
 * The copy of the UNet's decoder keys that head configs held before the head read them from
 * the UNet (checkpoints and model folders written then): read, checked against the UNet,
 * never written.
 */
interface LegacyDecoderKeys {
  inner_channel?: number;
  channel_multiplier?: number[];
  res_blocks?: number;
}

/**
 * Each resolution level of the UNet yields res_blocks + 1 decoder features (the official head
 * hard-codes 3, res_blocks 2; other values generalise the same rule).
 */
const perLevel = (unet: UNetDecoderConfig) => unet.res_blocks + 1;

/** The paper's defaults (config/fusion_train.json). */
export const DEFAULT_FEAT_SCALES = [2, 5, 8, 11, 14];
export const DEFAULT_TIME_STEPS = [5, 50, 100];

/**
 * Validate and complete a config for the UNet whose decoder it reads; feat_scales are sorted
 * coarsest (largest index) first. A copy of the UNet's keys in `input` (configs written
 * before the head read them from the UNet) must match the UNet and is dropped.
 */
export function normalizeHeadConfig(
  input: FusionHeadConfigInput,
  unet: UNetDecoderConfig,
): FusionHeadConfig {
  const time_steps = (input.time_steps ?? input.t ?? DEFAULT_TIME_STEPS).slice();
  const cfg: FusionHeadConfig = {
    feat_scales: input.feat_scales.slice().sort((a, b) => b - a),
    time_steps,
    out_channels: input.out_channels ?? 3,
    mode: input.mode ?? 'reference',
  };
  if (input.output !== undefined && input.output !== 'rgb') cfg.output = input.output;
  if (input.source_skip) cfg.source_skip = true;
  if (input.merge) cfg.merge = true;
  const fail = (msg: string): never => {
    throw new Error(`fusion head config: ${msg}`);
  };
  if (!unet || !(unet.inner_channel > 0) || !(unet.channel_multiplier?.length > 0))
    fail('needs the config of the UNet whose decoder it reads');
  for (const k of ['inner_channel', 'channel_multiplier', 'res_blocks'] as const) {
    const copy = input[k];
    if (copy !== undefined && JSON.stringify(copy) !== JSON.stringify(unet[k]))
      fail(
        `${k} ${JSON.stringify(copy)} differs from the UNet's ${JSON.stringify(unet[k])} (the head was made for another UNet)`,
      );
  }
  if (cfg.mode !== 'reference' && cfg.mode !== 'full') fail(`unknown mode ${String(cfg.mode)}`);
  if (cfg.time_steps.length === 0) fail('time_steps (t) is empty');
  if (cfg.feat_scales.length === 0) fail('feat_scales is empty');
  if (new Set(cfg.feat_scales).size !== cfg.feat_scales.length) fail('feat_scales has duplicates');
  if (!(cfg.out_channels > 0)) fail('out_channels must be positive');
  const output = cfg.output ?? 'rgb';
  if (output !== 'rgb' && output !== 'luma' && output !== 'weight')
    fail(`unknown output '${String(output)}' (use rgb, luma or weight)`);
  if (output !== 'rgb' && cfg.out_channels !== 3)
    fail(`output '${output}' makes an RGB image: out_channels must be 3`);
  if (input.source_skip !== undefined && typeof input.source_skip !== 'boolean')
    fail('source_skip must be true or false');
  if (input.merge !== undefined && typeof input.merge !== 'boolean')
    fail('merge must be true or false');
  const per = perLevel(unet);
  const maxScale = per * unet.channel_multiplier.length - 1;
  for (const s of cfg.feat_scales) {
    if (!Number.isInteger(s) || s < 0 || s > maxScale)
      fail(
        `feat_scale ${s} out of range 0..${maxScale} for ${unet.channel_multiplier.length} levels`,
      );
  }
  // Each step from one scale to the next upsamples x2: consecutive scales must be on
  // consecutive resolution levels (as in the official [14, 11, 8, 5, 2]).
  for (let i = 1; i < cfg.feat_scales.length; i++) {
    const a = Math.floor(cfg.feat_scales[i - 1] / per);
    const b = Math.floor(cfg.feat_scales[i] / per);
    if (a - b !== 1)
      fail(
        `feat_scales ${cfg.feat_scales[i - 1]} and ${cfg.feat_scales[i]} are not on consecutive resolution levels (the head upsamples x2 between scales)`,
      );
  }
  if (cfg.mode === 'reference' && cfg.feat_scales.length < 2)
    fail(
      "mode 'reference' needs at least two feat_scales (the official forward reads the last attention block); use mode 'full'",
    );
  return cfg;
}

/** The config blocks of a fusion model: the UNet's one config and the head's. */
export interface FusionBlocks {
  unet: UNetConfig;
  head: FusionHeadConfig;
}

/**
 * A fusion model's config blocks as stored (model folders' config.json, checkpoint pairs):
 * the UNet's by `parseUNetConfig`, the head's by `normalizeHeadConfig` against it. Blocks
 * written before read (`channel_mults`; a head with a copy of the UNet's keys, which must
 * match). Throws a one-line Error naming the block. The blocks parser @dif-fusion/onnx's
 * `readModelConfig` and `loadFusionModel` take (`blocks`).
 */
export function parseFusionBlocks(blocks: { unet: unknown; head: unknown }): FusionBlocks {
  const unet = parseUNetConfig(blocks.unet);
  return { unet, head: normalizeHeadConfig(blocks.head as FusionHeadConfigInput, unet) };
}

/** Resolution level of a reversed decoder feature index (0 = full resolution). */
export function scaleLevel(scale: number, resBlocks = 2): number {
  return Math.floor(scale / (resBlocks + 1));
}

/** Channels of a reversed decoder feature of the UNet (official get_in_channels for one scale). */
export function scaleChannels(unet: UNetDecoderConfig, scale: number): number {
  return unet.inner_channel * unet.channel_multiplier[scaleLevel(scale, unet.res_blocks)];
}

/** Plain JSON of a config (stable key order), for checkpoints and model folders. */
export function headConfigToJSON(cfg: FusionHeadConfig): FusionHeadConfig {
  return {
    feat_scales: cfg.feat_scales.slice(),
    time_steps: cfg.time_steps.slice(),
    out_channels: cfg.out_channels,
    mode: cfg.mode,
    ...(cfg.output && cfg.output !== 'rgb' ? { output: cfg.output } : {}),
    ...(cfg.source_skip ? { source_skip: true } : {}),
    ...(cfg.merge ? { merge: true } : {}),
  };
}

/**
 * Parse JSON that may hold `//` and block comments and trailing commas, as the reference's
 * config files do (jsonc-parser: strings are left alone, `"a // b"` stays a string).
 * Invalid JSON is a one-line DifFusionError naming `source`, the problem and where it is.
 */
export function parseJsonWithComments(text: string, source = 'config'): unknown {
  const errors: ParseError[] = [];
  const value = parseJsonc(text, errors, { allowTrailingComma: true, disallowComments: false });
  if (errors.length > 0) {
    const { error, offset } = errors[0];
    const before = text.slice(0, offset).split('\n');
    throw new DifFusionError(
      `${source}: invalid JSON (${printParseErrorCode(error)} at line ${before.length}, column ${before[before.length - 1].length + 1})`,
      { path: source === 'config' ? undefined : source },
    );
  }
  return value;
}

/**
 * Build a head config from the reference's fusion config (config/fusion_train.json, as an
 * object or as its text, `//` comments allowed): `model_df.feat_scales`, `model_df.t`,
 * `model_df.feat_type` (only `dec`), checked against `unet`, the config of the UNet whose
 * decoder the head reads (the DDPM checkpoint's, which is authoritative; the file's
 * `model.unet` block is not read).
 * The official `model_df.out_channels` (4) is ignored, as the official head ignores it
 * (it always makes 3 channels); so are `loss_type`, `output_cm_size` and `psp`.
 * A `model_df.mode` field (not in the reference) is honoured unless `options.mode` is given;
 * so are the variant fields `model_df.output`, `model_df.source_skip` and `model_df.merge` (not
 * in the reference).
 */
export function headConfigFromReference(
  json: any,
  unet: UNetDecoderConfig,
  options: { mode?: FusionHeadMode } = {},
): FusionHeadConfig {
  const root = typeof json === 'string' ? (parseJsonWithComments(json) as any) : json;
  const df = root?.model_df ?? {};
  if (df.feat_type !== undefined && df.feat_type !== 'dec')
    throw new Error(
      `fusion head config: feat_type '${df.feat_type}' is not supported (only 'dec')`,
    );
  return normalizeHeadConfig(
    {
      feat_scales: df.feat_scales ?? DEFAULT_FEAT_SCALES,
      time_steps: df.t ?? DEFAULT_TIME_STEPS,
      mode: options.mode ?? df.mode,
      output: df.output,
      source_skip: df.source_skip,
      merge: df.merge,
    },
    unet,
  );
}
