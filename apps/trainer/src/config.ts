/**
 * Training configs in the reference's own JSON format (GeoVectorMatrix/Dif-Fusion
 * config/ddpm_train.json and config/fusion_train.json, `//` comments allowed as the
 * reference's parser allows them), the defaults shipped with dif-train, and CLI overrides.
 * Only the fields dif-train uses are read; the rest is kept and ignored.
 */
import { readFileSync } from 'node:fs';
import { UserError } from './errors';

export type OptimizerType = 'adam' | 'adamw';

export interface BetaScheduleJson {
  schedule: string;
  n_timestep: number;
  linear_start: number;
  linear_end: number;
  cosine_s?: number;
}

export interface UnetJson {
  in_channel: number;
  out_channel: number;
  inner_channel: number;
  norm_groups?: number;
  channel_multiplier: number[];
  attn_res: number[];
  res_blocks: number;
  dropout: number;
}

/** config/ddpm_train.json (the fields dif-train reads). */
export interface DdpmConfig {
  name?: string;
  datasets: { train: { dataroot: string | null; resolution: number; batch_size: number } };
  model: {
    unet: UnetJson;
    beta_schedule: { train: BetaScheduleJson; val?: BetaScheduleJson };
    diffusion: { loss: 'l1' | 'l2'; [k: string]: unknown };
  };
  train: {
    n_iter: number;
    val_freq: number;
    save_checkpoint_freq: number;
    print_freq: number;
    optimizer: { type: OptimizerType; lr: number };
  };
  [k: string]: unknown;
}

/** config/fusion_train.json (the fields dif-train reads). */
export interface HeadTrainConfig {
  name?: string;
  datasets: {
    train: { dataroot: string | null; resolution: number; batch_size: number };
    val?: { dataroot: string | null; resolution?: number; data_len?: number };
  };
  model_df: { feat_scales: number[]; t: number[]; feat_type: 'dec'; mode?: 'reference' | 'full' };
  model: { beta_schedule: { train: BetaScheduleJson } };
  train: {
    n_epoch: number;
    optimizer: { type: OptimizerType; lr: number };
    /** The reference spells it `sheduler`; both spellings are read. */
    sheduler?: { lr_policy: 'linear' | 'step' | 'none'; n_steps?: number; gamma?: number };
    scheduler?: { lr_policy: 'linear' | 'step' | 'none'; n_steps?: number; gamma?: number };
    /** Validation pairs whose fused | visible | infrared strip is saved each epoch. */
    val_images?: number;
    /** Steps between progress/log lines. */
    print_freq?: number;
    /**
     * Fusion loss weights (dif-train's addition; the reference hard-codes alpha 1 and has no
     * colour term): `alpha` weighs the gradient term, `color_weight` the optional chroma
     * term mean |CbCr(F) - CbCr(V)| (0 = off, the official loss).
     */
    loss?: { alpha?: number; color_weight?: number };
    /**
     * Feature cache (dif-train's addition): when > 0, the frozen DDPM's features of
     * `feature_cache` random crops per training pair (one sampler epoch each) are computed
     * once, kept in memory, and every step draws a batch of them (an epoch is then one
     * shuffled pass over the cache). 0 (default): fresh crops and features every step.
     * Needs fixed feature noise.
     */
    feature_cache?: number;
  };
  [k: string]: unknown;
}

/**
 * dif-train's default DDPM config: the reference's format and schedule, sized for training
 * on a 2-core CPU (inner_channel 32 instead of 128, 64-pixel crops, batch 4, lr 1e-4).
 */
export const DEFAULT_DDPM_CONFIG: DdpmConfig = {
  name: 'ddpm-fusion-unet-small',
  datasets: { train: { dataroot: null, resolution: 64, batch_size: 4 } },
  model: {
    unet: {
      in_channel: 4,
      out_channel: 4,
      inner_channel: 32,
      norm_groups: 32,
      channel_multiplier: [1, 2, 4, 8, 8],
      attn_res: [16],
      res_blocks: 2,
      dropout: 0.1,
    },
    beta_schedule: {
      train: { schedule: 'linear', n_timestep: 2000, linear_start: 1e-6, linear_end: 1e-2 },
      val: { schedule: 'linear', n_timestep: 2000, linear_start: 1e-6, linear_end: 1e-2 },
    },
    diffusion: { loss: 'l2', channels: 4, conditional: false },
  },
  train: {
    n_iter: 20000,
    val_freq: 1000,
    save_checkpoint_freq: 500,
    print_freq: 10,
    optimizer: { type: 'adamw', lr: 1e-4 },
  },
};

/** dif-train's default fusion-head config (the reference's, with 64-pixel crops, batch 4). */
export const DEFAULT_HEAD_CONFIG: HeadTrainConfig = {
  name: 'fusion-head',
  datasets: {
    train: { dataroot: null, resolution: 64, batch_size: 4 },
    val: { dataroot: null },
  },
  model_df: { feat_scales: [2, 5, 8, 11, 14], t: [5, 50, 100], feat_type: 'dec', mode: 'full' },
  model: {
    beta_schedule: {
      train: { schedule: 'linear', n_timestep: 2000, linear_start: 1e-6, linear_end: 1e-2 },
    },
  },
  train: {
    n_epoch: 30,
    optimizer: { type: 'adam', lr: 1e-4 },
    sheduler: { lr_policy: 'linear' },
    val_images: 4,
    print_freq: 10,
  },
};

/** Parse JSON that may hold `//` line comments (outside strings) and trailing commas. */
export function parseJsonWithComments(text: string, source = 'config'): unknown {
  let out = '';
  let inStr = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (inStr) {
      out += c;
      if (c === '\\') out += text[++i] ?? '';
      else if (c === '"') inStr = false;
    } else if (c === '"') {
      inStr = true;
      out += c;
    } else if (c === '/' && text[i + 1] === '/') {
      while (i < text.length && text[i] !== '\n') i++;
      out += '\n';
    } else out += c;
  }
  out = out.replace(/,(\s*[}\]])/g, '$1');
  try {
    return JSON.parse(out);
  } catch (err) {
    throw new UserError(`${source}: invalid JSON (${(err as Error).message})`);
  }
}

function readJson(path: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    throw new UserError(`cannot read config file ${path}`);
  }
  return parseJsonWithComments(text, path);
}

/** Deep merge of plain objects (arrays and scalars replace). */
export function deepMerge<T>(base: T, over: unknown): T {
  if (over === undefined || over === null) return structuredClone(base);
  if (typeof base !== 'object' || base === null || Array.isArray(base))
    return structuredClone(over) as T;
  if (typeof over !== 'object' || Array.isArray(over)) return structuredClone(over) as T;
  const out: Record<string, unknown> = structuredClone(base) as Record<string, unknown>;
  for (const [k, v] of Object.entries(over as Record<string, unknown>)) {
    out[k] = k in out ? deepMerge(out[k], v) : structuredClone(v);
  }
  return out as T;
}

const isPosInt = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v > 0;
const isPos = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v) && v > 0;

function check(cond: boolean, msg: string): void {
  if (!cond) throw new UserError(`config: ${msg}`);
}

function checkOptimizer(o: { type: string; lr: number }): void {
  check(
    o.type === 'adam' || o.type === 'adamw',
    `train.optimizer.type must be adam or adamw, got '${o.type}'`,
  );
  check(isPos(o.lr), `train.optimizer.lr must be a positive number, got ${o.lr}`);
}

/** Validate a DDPM config, throwing one-line UserErrors. */
export function validateDdpmConfig(c: DdpmConfig): DdpmConfig {
  const t = c.datasets?.train;
  check(!!t, 'datasets.train is missing');
  check(
    isPosInt(t.resolution) &&
      t.resolution % 2 ** ((c.model?.unet?.channel_multiplier?.length ?? 1) - 1) === 0,
    `datasets.train.resolution must be a positive multiple of ${2 ** ((c.model?.unet?.channel_multiplier?.length ?? 1) - 1)} (the UNet halves it ${(c.model?.unet?.channel_multiplier?.length ?? 1) - 1} times), got ${t.resolution}`,
  );
  check(
    isPosInt(t.batch_size),
    `datasets.train.batch_size must be a positive integer, got ${t.batch_size}`,
  );
  const u = c.model?.unet;
  check(!!u, 'model.unet is missing');
  check(isPosInt(u.inner_channel), 'model.unet.inner_channel must be a positive integer');
  check(
    Array.isArray(u.channel_multiplier) &&
      u.channel_multiplier.length > 0 &&
      u.channel_multiplier.every(isPosInt),
    'model.unet.channel_multiplier must be a list of positive integers',
  );
  check(isPosInt(u.res_blocks), 'model.unet.res_blocks must be a positive integer');
  check(Array.isArray(u.attn_res ?? []), 'model.unet.attn_res must be a list');
  check(
    typeof u.dropout === 'number' && u.dropout >= 0 && u.dropout < 1,
    'model.unet.dropout must be in [0, 1)',
  );
  check(
    u.in_channel === 4 && u.out_channel === 4,
    'model.unet.in_channel and out_channel must be 4 (visible RGB + infrared)',
  );
  const groups = u.norm_groups ?? 32;
  check(
    u.channel_multiplier.every((m) => (u.inner_channel * m) % groups === 0),
    `model.unet.norm_groups ${groups} must divide inner_channel x every channel_multiplier`,
  );
  check(!!c.model.beta_schedule?.train, 'model.beta_schedule.train is missing');
  const loss = c.model.diffusion?.loss ?? 'l2';
  check(loss === 'l1' || loss === 'l2', `model.diffusion.loss must be l1 or l2, got '${loss}'`);
  const tr = c.train;
  check(!!tr, 'train is missing');
  check(isPosInt(tr.n_iter), `train.n_iter must be a positive integer, got ${tr.n_iter}`);
  for (const k of ['val_freq', 'save_checkpoint_freq', 'print_freq'] as const)
    check(typeof tr[k] === 'number' && tr[k] >= 0, `train.${k} must be a non-negative number`);
  checkOptimizer(tr.optimizer);
  return c;
}

/** Validate a head config, throwing one-line UserErrors. */
export function validateHeadConfig(c: HeadTrainConfig): HeadTrainConfig {
  const t = c.datasets?.train;
  check(!!t, 'datasets.train is missing');
  check(
    isPosInt(t.resolution),
    `datasets.train.resolution must be a positive integer, got ${t.resolution}`,
  );
  check(
    isPosInt(t.batch_size),
    `datasets.train.batch_size must be a positive integer, got ${t.batch_size}`,
  );
  const df = c.model_df;
  check(!!df, 'model_df is missing');
  check(
    Array.isArray(df.t) && df.t.length > 0 && df.t.every(isPosInt),
    'model_df.t must be a list of positive time steps',
  );
  check(
    Array.isArray(df.feat_scales) && df.feat_scales.length > 0,
    'model_df.feat_scales must be a non-empty list',
  );
  check(
    (df.feat_type ?? 'dec') === 'dec',
    `model_df.feat_type '${df.feat_type}' is not supported (only 'dec')`,
  );
  check(!!c.model?.beta_schedule?.train, 'model.beta_schedule.train is missing');
  check(
    isPosInt(c.train?.n_epoch),
    `train.n_epoch must be a positive integer, got ${c.train?.n_epoch}`,
  );
  checkOptimizer(c.train.optimizer);
  const loss = c.train.loss ?? {};
  for (const k of ['alpha', 'color_weight'] as const) {
    const v = loss[k];
    check(
      v === undefined || (typeof v === 'number' && Number.isFinite(v) && v >= 0),
      `train.loss.${k} must be a number >= 0, got ${v}`,
    );
  }
  const fc = c.train.feature_cache;
  check(
    fc === undefined || fc === 0 || isPosInt(fc),
    `train.feature_cache must be a non-negative integer, got ${fc}`,
  );
  check(
    !fc || ((c.model_df as Record<string, unknown>).noise ?? 'fixed') === 'fixed',
    'train.feature_cache needs fixed feature noise (--noise fixed)',
  );
  const pol = headScheduler(c).lr_policy;
  check(
    ['linear', 'step', 'none'].includes(pol),
    `train.sheduler.lr_policy must be linear, step or none, got '${pol}'`,
  );
  return c;
}

/** The head's LR scheduler block (reference spelling `sheduler` or `scheduler`). */
export function headScheduler(c: HeadTrainConfig): {
  lr_policy: string;
  n_steps?: number;
  gamma?: number;
} {
  return c.train.sheduler ?? c.train.scheduler ?? { lr_policy: 'none' };
}

/** Load a DDPM config: the default merged with a config file (if given), validated later. */
export function loadDdpmConfig(path?: string): DdpmConfig {
  return path
    ? deepMerge(DEFAULT_DDPM_CONFIG, readJson(path))
    : structuredClone(DEFAULT_DDPM_CONFIG);
}

/** Load a head config: the default merged with a config file (if given). */
export function loadHeadConfig(path?: string): HeadTrainConfig {
  return path
    ? deepMerge(DEFAULT_HEAD_CONFIG, readJson(path))
    : structuredClone(DEFAULT_HEAD_CONFIG);
}

/**
 * On --resume the checkpoint's config is authoritative: refuse the flags that would change
 * it (one line naming the first one given and what may change instead).
 */
export function refuseOnResume(
  flags: ReadonlyArray<readonly [string, unknown]>,
  mayChange: string,
): void {
  for (const [flag, v] of flags)
    if (v !== undefined)
      throw new UserError(
        `${flag} cannot be combined with --resume: a resumed run continues with its checkpoint's config (only ${mayChange} may change)`,
      );
}

/** The overrides both training commands share: --batch, --crop, --lr. */
export function applyTrainOverrides(
  cfg: {
    datasets: { train: { batch_size: number; resolution: number } };
    train: { optimizer: { lr: number } };
  },
  opts: { batch?: number; crop?: number; lr?: number },
): void {
  if (opts.batch !== undefined) cfg.datasets.train.batch_size = opts.batch;
  if (opts.crop !== undefined) cfg.datasets.train.resolution = opts.crop;
  if (opts.lr !== undefined) cfg.train.optimizer.lr = opts.lr;
}
