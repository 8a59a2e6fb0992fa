/** The SR3 UNet options, with the official argument names (they round-trip through JSON). */
export interface UNetConfig {
  in_channel: number;
  out_channel: number;
  inner_channel: number;
  norm_groups: number;
  channel_mults: number[];
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
}

/** Dif-Fusion's DDPM at the paper's size (config/ddpm_train.json). */
export const PAPER_UNET_CONFIG: Readonly<UNetConfig> = Object.freeze({
  in_channel: 4,
  out_channel: 4,
  inner_channel: 128,
  norm_groups: 32,
  channel_mults: [1, 2, 4, 8, 8],
  attn_res: [16],
  res_blocks: 2,
  dropout: 0.2,
  image_size: 160,
});

/** Check a config (e.g. parsed JSON) and fill the defaults; throws one-line errors. */
export function parseUNetConfig(raw: unknown): UNetConfig {
  if (!raw || typeof raw !== 'object') throw new Error('UNet config must be an object');
  const o = raw as Record<string, unknown>;
  const int = (k: string, min = 1): number => {
    const v = o[k];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min)
      throw new Error(`UNet config: ${k} must be an integer >= ${min} (got ${JSON.stringify(v)})`);
    return v;
  };
  const ints = (k: string, allowEmpty: boolean): number[] => {
    const v = o[k] ?? (allowEmpty ? [] : undefined);
    if (
      !Array.isArray(v) ||
      (!allowEmpty && v.length === 0) ||
      v.some((x) => !Number.isInteger(x) || x < 1)
    )
      throw new Error(
        `UNet config: ${k} must be a list of positive integers (got ${JSON.stringify(v)})`,
      );
    return v.slice();
  };
  const dropout = o.dropout ?? 0;
  if (typeof dropout !== 'number' || dropout < 0 || dropout >= 1)
    throw new Error(`UNet config: dropout must be in [0, 1) (got ${JSON.stringify(dropout)})`);
  const config: UNetConfig = {
    in_channel: int('in_channel'),
    out_channel: int('out_channel'),
    inner_channel: int('inner_channel'),
    norm_groups: int('norm_groups'),
    channel_mults: ints('channel_mults', false),
    attn_res: ints('attn_res', true),
    res_blocks: int('res_blocks'),
    dropout,
    image_size: int('image_size'),
    with_noise_level_emb:
      o.with_noise_level_emb === undefined ? true : Boolean(o.with_noise_level_emb),
    use_affine_level: Boolean(o.use_affine_level ?? false),
  };
  // The later options appear only when they change the network, so that configs written
  // before them (and the models exported from them) stay byte-identical.
  if (o.use_scale_shift_norm !== undefined && typeof o.use_scale_shift_norm !== 'boolean')
    throw new Error(
      `UNet config: use_scale_shift_norm must be true or false (got ${JSON.stringify(o.use_scale_shift_norm)})`,
    );
  if (o.use_scale_shift_norm) {
    if (config.use_affine_level)
      throw new Error(
        'UNet config: use_scale_shift_norm already scales and shifts; use_affine_level must be false with it',
      );
    config.use_scale_shift_norm = true;
  }
  if (o.num_heads !== undefined) {
    const heads = int('num_heads');
    if (heads > 1) config.num_heads = heads;
  }
  for (const m of config.channel_mults) {
    const c = config.inner_channel * m;
    if (c % config.norm_groups !== 0)
      throw new Error(
        `UNet config: inner_channel x ${m} = ${c} is not divisible by norm_groups ${config.norm_groups}`,
      );
  }
  const heads = config.num_heads ?? 1;
  for (const c of attentionChannels(config))
    if (c % heads !== 0)
      throw new Error(
        `UNet config: num_heads ${heads} does not divide the ${c} channels of an attention layer`,
      );
  return config;
}

/**
 * Channel counts of the layers with SelfAttention: the levels whose resolution is in
 * `attn_res`, and the middle (always).
 */
export function attentionChannels(
  c: Pick<UNetConfig, 'inner_channel' | 'channel_mults' | 'attn_res' | 'image_size'>,
): number[] {
  const out = new Set<number>();
  let res = c.image_size;
  c.channel_mults.forEach((m, i) => {
    if (c.attn_res.includes(res)) out.add(c.inner_channel * m);
    if (i < c.channel_mults.length - 1) res = Math.floor(res / 2);
  });
  out.add(c.inner_channel * c.channel_mults[c.channel_mults.length - 1]);
  return [...out];
}

/**
 * A reference training config's `model.unet` block (config/ddpm_train.json): the official
 * names, `channel_multiplier` for {@link UNetConfig.channel_mults}, no image size (that is
 * `datasets.train.resolution`).
 */
export interface ReferenceUnetJson {
  in_channel: number;
  out_channel: number;
  inner_channel: number;
  norm_groups?: number;
  channel_multiplier: number[];
  attn_res?: number[];
  res_blocks: number;
  dropout?: number;
  /** The official UNet's argument; written only when true (default false). */
  use_affine_level?: boolean;
  /** Written only when true (default false). */
  use_scale_shift_norm?: boolean;
  /** Written only when > 1 (default 1). */
  num_heads?: number;
}

/**
 * The one translation from a reference `model.unet` block to a UNetConfig at `imageSize`:
 * `channel_multiplier` -> `channel_mults`, norm_groups 32, attn_res [] and dropout 0 when
 * absent (the reference's defaults). Our own JSON (with `channel_mults`) is accepted as is.
 * Checked by {@link parseUNetConfig}.
 */
export function unetConfigFromReference(
  u: ReferenceUnetJson | Partial<UNetConfig> | Record<string, unknown>,
  imageSize?: number,
): UNetConfig {
  const { channel_multiplier, ...rest } = u as Record<string, unknown>;
  const raw: Record<string, unknown> = { ...rest };
  raw.channel_mults ??= channel_multiplier;
  if (imageSize !== undefined) raw.image_size = imageSize;
  raw.norm_groups ??= 32;
  raw.attn_res ??= [];
  raw.dropout ??= 0;
  return parseUNetConfig(raw);
}

/** The reference `model.unet` block of a UNet config (see {@link unetConfigFromReference}). */
export function unetConfigToReference(c: UNetConfig): ReferenceUnetJson {
  return {
    in_channel: c.in_channel,
    out_channel: c.out_channel,
    inner_channel: c.inner_channel,
    norm_groups: c.norm_groups,
    channel_multiplier: c.channel_mults.slice(),
    attn_res: c.attn_res.slice(),
    res_blocks: c.res_blocks,
    dropout: c.dropout,
    ...(c.use_affine_level ? { use_affine_level: true } : {}),
    ...(c.use_scale_shift_norm ? { use_scale_shift_norm: true } : {}),
    ...(c.num_heads && c.num_heads > 1 ? { num_heads: c.num_heads } : {}),
  };
}
