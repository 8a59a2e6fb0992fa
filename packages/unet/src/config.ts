/**
 * The denoiser's one config: the official `model.unet` block of the Dif-Fusion/SR3 config
 * files (`config/ddpm_train.json`), with their key names, plus `image_size` (the official
 * `model.diffusion.image_size`, dif-train's `datasets.train.resolution`). The same typed block
 * is what dif-train's config file holds under `model.unet`, what checkpoints store and what a
 * model folder's config.json holds under `unet`.
 *
 * The official UNet constructor names the multipliers `channel_mults` and `networks.py` maps
 * `channel_multiplier` onto it; the block keeps the file's name. Configs written before the
 * rename (model folders, the PyTorch fixtures' constructor arguments) hold `channel_mults`:
 * {@link parseUNetConfig} reads it as `channel_multiplier`.
 */

/** The SR3 UNet's options (and skip_unet's: it reads a subset, see `skipUnetConfig`). */
export interface UNetConfig {
  in_channel: number;
  out_channel: number;
  inner_channel: number;
  norm_groups: number;
  /** Channels of each resolution level = inner_channel x multiplier (official constructor: `channel_mults`). */
  channel_multiplier: number[];
  attn_res: number[];
  res_blocks: number;
  dropout: number;
  /** Training resolution: decides where attention sits (a level's resolution in attn_res). */
  image_size: number;
  /** Condition on the noise level (default true). */
  with_noise_level_emb?: boolean;
  /** FeatureWiseAffine with scale and shift instead of shift only (default false). */
  use_affine_level?: boolean;
  /**
   * improved-diffusion's scale-shift norm: the noise embedding scales and shifts the output
   * of block2's GroupNorm, `GN(h) * (1 + scale) + shift`, instead of being added before it
   * (default false; present only when true).
   */
  use_scale_shift_norm?: boolean;
  /** Heads of every SelfAttention (official `n_head`; default 1, present only when > 1). */
  num_heads?: number;
  /**
   * Gradient checkpointing (improved-diffusion's `use_checkpoint`): the ONNX Runtime training
   * graph recomputes every ResnetBlocWithAttn in the backward pass. Same network and
   * gradients, less memory (present only when true).
   */
  use_checkpoint?: boolean;
  /**
   * skip_unet only (`which_model_G: "skip_unet"`): the fraction of the up path (its end)
   * with additive skips (default 1/sqrt(2); present only when set).
   */
  skip_range?: number;
}

/**
 * A `model.unet` block as a config file holds it: the reference's defaults may be left out
 * (norm_groups 32, attn_res [], dropout 0) and image_size comes from elsewhere (the
 * training resolution) when absent.
 */
export type UNetConfigInput = Omit<
  UNetConfig,
  'norm_groups' | 'attn_res' | 'dropout' | 'image_size'
> &
  Partial<Pick<UNetConfig, 'norm_groups' | 'attn_res' | 'dropout' | 'image_size'>>;

/** Every key of the block, in the order {@link unetConfigToJSON} writes them. */
export const UNET_CONFIG_KEYS = [
  'in_channel',
  'out_channel',
  'inner_channel',
  'norm_groups',
  'channel_multiplier',
  'attn_res',
  'res_blocks',
  'dropout',
  'image_size',
  'with_noise_level_emb',
  'use_affine_level',
  'use_scale_shift_norm',
  'num_heads',
  'use_checkpoint',
  'skip_range',
] as const satisfies ReadonlyArray<keyof UNetConfig>;

/** The reference's defaults of the keys a `model.unet` block may leave out. */
export const UNET_DEFAULTS = Object.freeze({ norm_groups: 32, attn_res: [], dropout: 0 });

/** Dif-Fusion's DDPM at the paper's size (config/ddpm_train.json). */
export const PAPER_UNET_CONFIG: Readonly<UNetConfig> = Object.freeze({
  in_channel: 4,
  out_channel: 4,
  inner_channel: 128,
  norm_groups: 32,
  channel_multiplier: [1, 2, 4, 8, 8],
  attn_res: [16],
  res_blocks: 2,
  dropout: 0.2,
  image_size: 160,
});

/** The denoiser networks (official `which_model_G`). */
export type DenoiserKind = 'sr3' | 'skip_unet';

/** One problem of a block: the key it is about and a message that does not name it. */
export interface UNetConfigProblem {
  key: keyof UNetConfig;
  message: string;
}

/**
 * The problems between keys of a block whose keys each have the right type: norm_groups
 * against the channels, use_scale_shift_norm against use_affine_level, num_heads against
 * the attention layers' channels, and the options the other network (`which`) does not
 * have. The one home of these rules: {@link parseUNetConfig} throws the first, dif-train's
 * config schema reports it at `model.unet.<key>`.
 */
export function unetConfigProblems(
  u: UNetConfigInput & { image_size: number },
  which: DenoiserKind = 'sr3',
): UNetConfigProblem[] {
  const out: UNetConfigProblem[] = [];
  if (which === 'skip_unet') {
    if (u.res_blocks < 2)
      out.push({ key: 'res_blocks', message: 'must be at least 2 with which_model_G skip_unet' });
    if (u.use_scale_shift_norm)
      out.push({
        key: 'use_scale_shift_norm',
        message: 'is an sr3 option (skip_unet has no GroupNorm)',
      });
    if ((u.num_heads ?? 1) > 1)
      out.push({ key: 'num_heads', message: 'is an sr3 option (skip_unet has no attention)' });
    return out; // norm_groups and attn_res have no effect on skip_unet
  }
  if (u.skip_range !== undefined)
    out.push({ key: 'skip_range', message: 'applies to which_model_G skip_unet only' });
  const groups = u.norm_groups ?? UNET_DEFAULTS.norm_groups;
  const bad = u.channel_multiplier.find((m) => (u.inner_channel * m) % groups !== 0);
  if (bad !== undefined)
    out.push({
      key: 'norm_groups',
      message: `${groups} must divide inner_channel x every channel_multiplier`,
    });
  if (u.use_scale_shift_norm && u.use_affine_level)
    out.push({
      key: 'use_affine_level',
      message: 'must be false with use_scale_shift_norm (which already scales and shifts)',
    });
  const heads = u.num_heads ?? 1;
  const ch = attentionChannels({ ...u, attn_res: u.attn_res ?? [] }).find((c) => c % heads !== 0);
  if (ch !== undefined)
    out.push({
      key: 'num_heads',
      message: `${heads} must divide the ${ch} channels of an attention layer`,
    });
  return out;
}

/**
 * Check a block (e.g. parsed JSON) and fill the defaults; throws one-line errors.
 * `image_size` fills a block without one (the training resolution). A block written before
 * the rename (`channel_mults`) is read as `channel_multiplier`. Keys of no UNet are ignored
 * (dif-train's file schema refuses them with a hint).
 */
export function parseUNetConfig(
  raw: unknown,
  options: { image_size?: number; which?: DenoiserKind } = {},
): UNetConfig {
  const which = options.which ?? 'sr3';
  const name = which === 'sr3' ? 'UNet config' : `${which} config`;
  if (!raw || typeof raw !== 'object') throw new Error(`${name} must be an object`);
  const o = raw as Record<string, unknown>;
  const fail = (k: string, what: string): never => {
    throw new Error(`${name}: ${k} ${what} (got ${JSON.stringify(o[k])})`);
  };
  const int = (k: string, min = 1, v = o[k]): number =>
    typeof v === 'number' && Number.isInteger(v) && v >= min
      ? v
      : fail(k, `must be an integer >= ${min}`);
  const ints = (k: string, v: unknown, allowEmpty: boolean): number[] =>
    Array.isArray(v) &&
    (allowEmpty || v.length > 0) &&
    v.every((x) => Number.isInteger(x) && x >= 1)
      ? v.slice()
      : fail(k, 'must be a list of positive integers');
  const bool = (k: string): boolean | undefined =>
    o[k] === undefined || typeof o[k] === 'boolean'
      ? (o[k] as boolean | undefined)
      : fail(k, 'must be true or false');
  const dropout = o.dropout ?? UNET_DEFAULTS.dropout;
  if (typeof dropout !== 'number' || dropout < 0 || dropout >= 1)
    fail('dropout', 'must be in [0, 1)');
  const mults = o.channel_multiplier ?? o.channel_mults;
  const imageSize = o.image_size ?? options.image_size;
  if (imageSize === undefined)
    throw new Error(`${name}: image_size is missing (the training resolution)`);
  const config: UNetConfig = {
    in_channel: int('in_channel'),
    out_channel: int('out_channel'),
    inner_channel: int('inner_channel'),
    norm_groups: int('norm_groups', 1, o.norm_groups ?? UNET_DEFAULTS.norm_groups),
    channel_multiplier: ints('channel_multiplier', mults, false),
    attn_res: ints('attn_res', o.attn_res ?? UNET_DEFAULTS.attn_res, true),
    res_blocks: int('res_blocks'),
    dropout: dropout as number,
    image_size: int('image_size', 1, imageSize),
    with_noise_level_emb:
      o.with_noise_level_emb === undefined ? true : Boolean(o.with_noise_level_emb),
    use_affine_level: Boolean(o.use_affine_level ?? false),
  };
  // The later options appear only when they change the network, so that configs written
  // before them (and the models exported from them) stay byte-identical.
  if (bool('use_scale_shift_norm')) config.use_scale_shift_norm = true;
  if (o.num_heads !== undefined) {
    const heads = int('num_heads');
    if (heads > 1) config.num_heads = heads;
  }
  if (bool('use_checkpoint')) config.use_checkpoint = true;
  if (o.skip_range !== undefined) {
    const r = o.skip_range;
    if (typeof r !== 'number' || !(r >= 0 && r <= 1)) fail('skip_range', 'must be in [0, 1]');
    config.skip_range = r as number;
  }
  const [problem] = unetConfigProblems(config, which);
  if (problem) throw new Error(`${name}: ${problem.key} ${problem.message}`);
  return config;
}

/** Plain JSON of a config in the block's key order (optional keys only when set). */
export function unetConfigToJSON(c: UNetConfig): UNetConfig {
  const out: Record<string, unknown> = {};
  for (const k of UNET_CONFIG_KEYS) {
    const v = c[k];
    if (v !== undefined) out[k] = Array.isArray(v) ? v.slice() : v;
  }
  return out as unknown as UNetConfig;
}

/**
 * Channel counts of the layers with SelfAttention: the levels whose resolution is in
 * `attn_res`, and the middle (always).
 */
export function attentionChannels(
  c: Pick<UNetConfig, 'inner_channel' | 'channel_multiplier' | 'attn_res' | 'image_size'>,
): number[] {
  const out = new Set<number>();
  let res = c.image_size;
  c.channel_multiplier.forEach((m, i) => {
    if (c.attn_res.includes(res)) out.add(c.inner_channel * m);
    if (i < c.channel_multiplier.length - 1) res = Math.floor(res / 2);
  });
  out.add(c.inner_channel * c.channel_multiplier[c.channel_multiplier.length - 1]);
  return [...out];
}

/**
 * What a network reading the decoder (the fusion head) needs of the UNet: each resolution
 * level yields `res_blocks + 1` decoder features of `inner_channel x channel_multiplier[level]`
 * channels.
 */
export type UNetDecoderConfig = Pick<
  UNetConfig,
  'inner_channel' | 'channel_multiplier' | 'res_blocks'
>;
