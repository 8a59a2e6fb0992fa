/**
 * Training configs in the reference's own JSON format (GeoVectorMatrix/Dif-Fusion
 * config/ddpm_train.json and config/fusion_train.json, `//` comments allowed as the
 * reference's parser allows them), the defaults shipped with dif-train, and CLI overrides.
 *
 * One strict schema per block (zod): every key of the reference formats is known — the ones
 * dif-train does not use (`gpu_ids`, `path`, `num_workers`, ...) are accepted and ignored —
 * and any other key is an error naming the key, the file and the nearest known key, so a
 * typo like `"inner_chanel": 8` cannot silently train a model at the default width.
 */
import { readFileSync } from 'node:fs';
import {
  type DiffusionConfig,
  diffusionConfigProblems,
  MEAN_TYPES,
  VAR_TYPES,
  type VarType,
} from '@dif-fusion/diffusion';
import { fusionLossProblem, parseJsonWithComments } from '@dif-fusion/fusion-head';
import { BETA_SCHEDULES } from '@dif-fusion/schedules';
import { type UNetConfigInput, unetConfigProblems } from '@dif-fusion/unet';
import { closest, distance } from 'fastest-levenshtein';
import { type ZodType, z } from 'zod';
import { UserError } from './errors';

export { parseJsonWithComments };

// Messages name no key: the error names it (`<file>: <key> must be ...`).
const POS_INT = 'must be a positive integer';
const posInt = () => z.number({ error: POS_INT }).int(POS_INT).positive(POS_INT);
const NON_NEG = 'must be a non-negative number';
const nonNeg = () => z.number({ error: NON_NEG }).min(0, NON_NEG);
/** Keys of the reference formats that dif-train accepts and ignores. */
const ignored = z.unknown().optional();

const betaSchedule = z.strictObject({
  schedule: z.enum(BETA_SCHEDULES, `must be one of ${BETA_SCHEDULES.join(', ')}`),
  n_timestep: z.number(),
  linear_start: z.number(),
  linear_end: z.number(),
  cosine_s: z.number().optional(),
});
export type BetaScheduleJson = z.infer<typeof betaSchedule>;

/**
 * The `model.unet` block: @dif-fusion/unet's one config (`UNetConfigInput`, the official key
 * names), its keys listed here for the strict check and the "did you mean" hints; the rules
 * between keys are the unet package's (`unetConfigProblems`, in the superRefine below).
 * image_size is `datasets.train.resolution` (the official `model.diffusion.image_size`).
 */
export const unetBlockSchema = z.strictObject({
  in_channel: z.literal(4, 'must be 4 (visible RGB + infrared)'),
  /** 4, or 3 for a conditional DDPM (visible RGB predicted, the infrared the condition). */
  out_channel: z.union([z.literal(4), z.literal(3)], {
    error: 'must be 4 (visible RGB + infrared), or 3 with model.diffusion.conditional',
  }),
  inner_channel: posInt(),
  norm_groups: posInt().optional(),
  channel_multiplier: z.array(posInt()).min(1, 'must be a list of positive integers'),
  attn_res: z.array(z.number()),
  res_blocks: posInt(),
  dropout: z.number().min(0, 'must be in [0, 1)').lt(1, 'must be in [0, 1)'),
  /** Condition on the noise level (the official UNet's argument; default true). */
  with_noise_level_emb: z.boolean({ error: 'must be true or false' }).optional(),
  /** SR3 FeatureWiseAffine with scale and shift: (1 + gamma) x + beta (default false). */
  use_affine_level: z.boolean().optional(),
  /** improved-diffusion's scale-shift norm: GN(h) (1 + scale) + shift in block2 (default false). */
  use_scale_shift_norm: z.boolean().optional(),
  /** Heads of every SelfAttention (default 1); must divide the attention layers' channels. */
  num_heads: posInt().optional(),
  /**
   * Gradient checkpointing (improved-diffusion's `use_checkpoint`): the ONNX Runtime training
   * graph recomputes every ResnetBlocWithAttn in the backward pass instead of keeping its
   * activations. Same gradients, less memory, more time; no effect on the tfjs backends
   * (default false). May be switched on when resuming (`--gradient-checkpointing`).
   */
  use_checkpoint: z.boolean({ error: 'must be true or false' }).optional(),
  /** skip_unet only: the fraction of the up path (its end) with additive skips (default 1/sqrt(2)). */
  skip_range: z.number().min(0, 'must be in [0, 1]').max(1, 'must be in [0, 1]').optional(),
}) satisfies z.ZodType<UNetConfigInput>;
const unet = unetBlockSchema;
/** A `model.unet` block as the file holds it (@dif-fusion/unet's UNetConfigInput). */
export type UnetJson = z.infer<typeof unet>;

const optimizer = z.strictObject({
  type: z.enum(['adam', 'adamw'], 'must be adam or adamw'),
  lr: z.number().positive('must be a positive number'),
});
export type OptimizerType = z.infer<typeof optimizer>['type'];

const trainData = z.strictObject({
  dataroot: z.string().nullable(),
  resolution: posInt(),
  batch_size: posInt(),
  name: ignored,
  num_workers: ignored,
  use_shuffle: ignored,
  data_len: ignored,
});
const otherData = z.strictObject({
  dataroot: z.string().nullable().optional(),
  resolution: z.number().optional(),
  batch_size: ignored,
  data_len: z.number().optional(),
  name: ignored,
  num_workers: ignored,
  use_shuffle: ignored,
  image_size_w: ignored,
  image_size_h: ignored,
});
/**
 * The `model.diffusion` block: @dif-fusion/diffusion's one config (`DiffusionConfig`), the
 * reference's other keys accepted and ignored; the rules between keys are the diffusion
 * package's (`diffusionConfigProblems`).
 */
const diffusion = z.strictObject({
  loss: z.enum(['l1', 'l2'], 'must be l1 or l2').optional(),
  /** What the UNet predicts (pytorch-ddpm's mean_type; default epsilon). */
  mean_type: z.enum(MEAN_TYPES, `must be one of ${MEAN_TYPES.join(', ')}`).optional(),
  /**
   * The ancestral sampler's variance (pytorch-ddpm's var_type; default fixedsmall);
   * `learned_range` (Improved DDPM): the UNet also outputs the variance (2 x out_channel
   * channels internally) and trains with the hybrid loss.
   */
  var_type: z.enum(VAR_TYPES, `must be one of ${VAR_TYPES.join(', ')}`).optional(),
  /** lambda of the hybrid loss L_simple + lambda T vb (learned_range; default 0.001). */
  vlb_weight: nonNeg().optional(),
  /**
   * SR3's image-conditional mode: the infrared image (1 channel) is the condition,
   * concatenated before the noisy visible RGB (3 channels); the UNet predicts 3 channels.
   */
  conditional: z.boolean({ error: 'must be true or false' }).optional(),
  /** Condition dropout of conditional training (classifier-free guidance), in [0, 1). */
  drop_prob: z.number().min(0, 'must be in [0, 1)').lt(1, 'must be in [0, 1)').optional(),
  image_size: ignored,
  image_size_w: ignored,
  image_size_h: ignored,
  is_concat: ignored,
  channels: ignored,
}) satisfies z.ZodType<DiffusionConfig>;
/** Top-level keys of both reference formats that dif-train ignores. */
const runKeys = {
  name: z.string().optional(),
  phase: ignored,
  distributed: ignored,
  gpu_ids: ignored,
  path: ignored,
  path_df: ignored,
};
/**
 * The reference's `finetune_norm`: true trains only the parameters whose name holds
 * 'transformer' (zeroed first); the SR3 UNet has none, so nothing would train. false (the
 * reference's value) is accepted, true refused in one line rather than silently ignored.
 */
const finetuneNorm = z
  .literal(false, {
    error:
      "must be false: true trains only parameters named 'transformer', which this UNet does not have (nothing would train)",
  })
  .optional();
const modelKeys = { which_model_G: ignored, finetune_norm: finetuneNorm };
export const DENOISER_NETS = ['sr3', 'skip_unet'] as const;
/** The denoiser network (official `which_model_G`; default sr3). */
export type WhichModelG = (typeof DENOISER_NETS)[number];
const whichModelG = z.enum(DENOISER_NETS, `must be one of ${DENOISER_NETS.join(', ')}`).optional();

const ddpmSchema = z
  .strictObject({
    ...runKeys,
    datasets: z.strictObject({ train: trainData, val: otherData.optional() }),
    model: z.strictObject({
      ...modelKeys,
      which_model_G: whichModelG,
      unet,
      beta_schedule: z.strictObject({
        train: betaSchedule,
        val: betaSchedule.optional(),
        test: betaSchedule.optional(),
      }),
      diffusion,
    }),
    train: z.strictObject({
      n_iter: posInt(),
      val_freq: nonNeg(),
      save_checkpoint_freq: nonNeg(),
      print_freq: nonNeg(),
      optimizer,
      /**
       * Exponential moving average of the weights (dif-train's addition, pytorch-ddpm's
       * `ema_decay`): ema = decay ema + (1 - decay) w after every step, kept in the
       * checkpoint; 0 or absent: none.
       */
      ema_decay: z.number().min(0, 'must be in [0, 1)').lt(1, 'must be in [0, 1)').optional(),
    }),
  })
  .superRefine((c, ctx) => {
    const d = c.model.diffusion;
    const out = d.conditional ? 3 : 4;
    if (c.model.unet.out_channel !== out)
      ctx.addIssue({
        code: 'custom',
        path: ['model', 'unet', 'out_channel'],
        message: d.conditional
          ? 'must be 3 with model.diffusion.conditional (the visible RGB is predicted)'
          : 'must be 4 (visible RGB + infrared)',
      });
    for (const p of diffusionConfigProblems(d))
      ctx.addIssue({ code: 'custom', path: ['model', 'diffusion', p.key], message: p.message });
    const down = c.model.unet.channel_multiplier.length - 1;
    if (c.datasets.train.resolution % 2 ** down !== 0)
      ctx.addIssue({
        code: 'custom',
        path: ['datasets', 'train', 'resolution'],
        message: `must be a positive multiple of ${2 ** down} (the UNet halves it ${down} times), got ${c.datasets.train.resolution}`,
      });
    const u = c.model.unet;
    const which = c.model.which_model_G ?? 'sr3';
    for (const p of unetConfigProblems({ ...u, image_size: c.datasets.train.resolution }, which))
      ctx.addIssue({ code: 'custom', path: ['model', 'unet', p.key], message: p.message });
  });
/** config/ddpm_train.json. */
export type DdpmConfig = z.infer<typeof ddpmSchema>;

const lrScheduler = z.strictObject({
  lr_policy: z.enum(['linear', 'step', 'none'], 'must be linear, step or none'),
  n_steps: z.number().optional(),
  gamma: z.number().optional(),
});
const weight = () => z.number().min(0, 'must be a number >= 0').optional();

const headSchema = z
  .strictObject({
    ...runKeys,
    datasets: z.strictObject({
      train: trainData,
      val: otherData.optional(),
      test: otherData.optional(),
    }),
    model_df: z.strictObject({
      feat_scales: z.array(z.number()).min(1, 'must be a non-empty list'),
      t: z.array(posInt()).min(1, 'must be a list of positive time steps'),
      feat_type: z.literal('dec', "is not supported (only 'dec')").optional(),
      /** dif-train's additions: the head's forward pass and the feature noise. */
      mode: z.enum(['reference', 'full']).optional(),
      noise: z.enum(['fixed', 'random']).optional(),
      /** The head variants (see @dif-fusion/fusion-head FusionHeadOutput). */
      output: z.enum(['rgb', 'luma', 'weight']).optional(),
      source_skip: z.boolean().optional(),
      /** Keep the Blocks' 1x1 merge conv with one time step (fusion-head's `merge`). */
      merge: z.boolean().optional(),
      out_channels: ignored,
      loss_type: ignored,
      output_cm_size: ignored,
      psp: ignored,
    }),
    model: z.strictObject({
      ...modelKeys,
      unet: ignored,
      beta_schedule: z.strictObject({
        train: betaSchedule,
        val: betaSchedule.optional(),
        test: betaSchedule.optional(),
      }),
      diffusion: diffusion.optional(),
    }),
    train: z.strictObject({
      n_epoch: posInt(),
      optimizer,
      /** The reference spells it `sheduler`; both spellings are read. */
      sheduler: lrScheduler.optional(),
      scheduler: lrScheduler.optional(),
      /** Validation pairs whose fused | visible | infrared strip is saved each epoch. */
      val_images: z.number().int().min(0).optional(),
      /** Steps between progress/log lines. */
      print_freq: z.number().min(0).optional(),
      /**
       * Fusion loss weights (dif-train's addition; the reference hard-codes alpha 1 and has
       * no colour term): `alpha` weighs the gradient term, `color_weight` the optional chroma
       * term mean |CbCr(F) - CbCr(V)| (0 = off, the official loss), `space` where intensities
       * and gradients are compared: `rgb` (official, every channel against max(V_c, I)) or
       * `luma` (BT.601 Y(F) against max(Y(V), I); meant for `output: luma` heads).
       */
      loss: z
        .strictObject({
          alpha: weight(),
          color_weight: weight(),
          space: z.enum(['rgb', 'luma']).optional(),
          /**
           * What the loss compares against (fusion-head's `./target`): `max` (official:
           * max(V, I) and max(S(V), S(I))) or `salient` (dif-fusion v4, luma space only: the
           * infrared where it is informative, its texture kept out of well-exposed regions).
           */
          target: z.enum(['max', 'salient']).optional(),
          /** Options of the `salient` target (fusion-head's SalientTargetOptions). */
          target_options: z
            .strictObject({
              denoise_sigma: z.number().min(0).optional(),
              dark_denoise_only: z.boolean().optional(),
              context_sigma: z.number().positive().optional(),
              salient_low: z.number().optional(),
              salient_high: z.number().optional(),
              dark_low: z.number().optional(),
              dark_high: z.number().optional(),
              ir_floor: z.number().min(0).max(1).optional(),
              ir_gradient: z.number().min(0).optional(),
              gradient_gain: z.number().positive().optional(),
              ir_structure: z.number().min(0).optional(),
              edge_low: z.number().optional(),
              edge_high: z.number().optional(),
              ir_texture: z.number().min(0).optional(),
              smooth_low: z.number().optional(),
              smooth_high: z.number().optional(),
            })
            .optional(),
        })
        .superRefine((l, ctx) => {
          const problem = fusionLossProblem(l);
          if (problem) ctx.addIssue({ code: 'custom', message: problem });
        })
        .optional(),
      /**
       * Feature cache (dif-train's addition): when > 0, the frozen DDPM's features of
       * `feature_cache` random crops per training pair (one sampler epoch each) are computed
       * once, kept in memory, and every step draws a batch of them (an epoch is then one
       * shuffled pass over the cache). 0 (default): fresh crops and features every step.
       * Needs fixed feature noise.
       */
      feature_cache: z
        .number()
        .int('must be a non-negative integer')
        .min(0, 'must be a non-negative integer')
        .optional(),
      train_print_freq: ignored,
      val_freq: ignored,
      val_print_freq: ignored,
    }),
  })
  .superRefine((c, ctx) => {
    if (c.train.feature_cache && (c.model_df.noise ?? 'fixed') !== 'fixed')
      ctx.addIssue({
        code: 'custom',
        path: ['train', 'feature_cache'],
        message: 'needs fixed feature noise (--noise fixed)',
      });
  });
/** config/fusion_train.json. */
export type HeadTrainConfig = z.infer<typeof headSchema>;

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

/** The key nearest to `key` among `known`, when it is close enough to be a likely typo. */
function nearestKey(key: string, known: string[]): string | undefined {
  if (known.length === 0) return undefined;
  const best = closest(key, known);
  return distance(key, best) <= Math.max(2, Math.floor(key.length / 3)) ? best : undefined;
}

/** The keys the object schema at `path` knows. */
function keysAt(schema: unknown, path: PropertyKey[]): string[] {
  type Node = { shape?: Record<string, Node>; unwrap?: () => Node };
  const unwrap = (n: Node | undefined) => {
    let s = n;
    while (s && !s.shape && typeof s.unwrap === 'function') s = s.unwrap();
    return s;
  };
  let node = unwrap(schema as Node); // zod's objects expose .shape, wrappers .unwrap()
  for (const k of path) node = unwrap(node?.shape?.[String(k)]);
  return node?.shape ? Object.keys(node.shape) : [];
}

/** Validate `value` against `schema`; the first problem becomes a one-line UserError. */
function validate<T>(schema: ZodType<T>, value: unknown, source: string): T {
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  const issue = r.error.issues[0];
  const at = issue.path.join('.');
  if (issue.code === 'unrecognized_keys') {
    const key = issue.keys[0];
    const near = nearestKey(key, keysAt(schema, issue.path));
    throw new UserError(
      `${source}: unknown key ${at ? `${at}.` : ''}${key}${near ? ` (did you mean ${near}?)` : ''}`,
      { path: source === 'config' ? undefined : source },
    );
  }
  const msg = issue.message;
  throw new UserError(`${source}: ${at || 'config'}${/^[a-z0-9(]/.test(msg) ? ' ' : ': '}${msg}`, {
    path: source === 'config' ? undefined : source,
  });
}

/** Validate a DDPM config (strict: unknown keys are errors), throwing one-line UserErrors. */
export function validateDdpmConfig(c: unknown, source = 'config'): DdpmConfig {
  return validate(ddpmSchema, c, source);
}

/** Validate a head config (strict: unknown keys are errors), throwing one-line UserErrors. */
export function validateHeadConfig(c: unknown, source = 'config'): HeadTrainConfig {
  return validate(headSchema, c, source);
}

const ddpmModel = z.object({
  model: z.object({
    which_model_G: whichModelG,
    unet: unet.optional(),
    beta_schedule: z
      .object({ train: betaSchedule.optional(), val: betaSchedule.optional() })
      .optional(),
    diffusion: z.object(diffusion.shape).optional(),
  }),
});

/** The `model.diffusion` block of a DDPM config. */
export type DiffusionJson = z.infer<typeof diffusion>;

/**
 * The UNet block (validated strictly), schedules and diffusion block of a DDPM checkpoint's
 * config, for sampling; its other blocks are not read (checkpoints from `import-torch` hold
 * a mixed config). A conditional model is one with out_channel 3.
 */
export function ddpmSamplingOf(
  config: unknown,
  source: string,
): {
  unet: UnetJson;
  which: WhichModelG;
  schedule?: BetaScheduleJson;
  val?: BetaScheduleJson;
  diffusion: DiffusionJson;
} {
  const m = validate(ddpmModel, config, source).model;
  if (!m.unet) throw new UserError(`${source}: the checkpoint holds no model.unet config`);
  const d = m.diffusion ?? {};
  return {
    unet: m.unet,
    which: m.which_model_G ?? 'sr3',
    schedule: m.beta_schedule?.train,
    val: m.beta_schedule?.val,
    diffusion: { ...d, conditional: m.unet.out_channel === 3 },
  };
}

/**
 * The UNet block (validated strictly), training schedule and var type (learned_range
 * doubles the final conv, whose weights must load) of a DDPM checkpoint's config for the
 * fusion features (an unconditional DDPM); see {@link ddpmSamplingOf}.
 */
export function ddpmModelOf(
  config: unknown,
  source: string,
): { unet: UnetJson; schedule?: BetaScheduleJson; varType?: VarType } {
  const m = ddpmSamplingOf(config, source);
  refuseSkipUnetFeatures(m.which, source);
  if (m.unet.out_channel !== 4)
    throw new UserError(
      `${source}: a conditional DDPM (out_channel ${m.unet.out_channel}) gives no fusion features; use an unconditional one`,
    );
  return { unet: m.unet, schedule: m.schedule, varType: m.diffusion.var_type };
}

/**
 * The fusion features come from the SR3 UNet only, as in the official code (its feature
 * extraction and the exported model folder know that network alone): a skip_unet DDPM is
 * refused by `dif-train head` and `dif-train export`.
 */
export function refuseSkipUnetFeatures(which: unknown, source: string): void {
  if (which === 'skip_unet')
    throw new UserError(
      `${source}: which_model_G skip_unet gives no fusion features (Dif-Fusion's fusion head reads the sr3 UNet's decoder); train the DDPM with which_model_G sr3`,
    );
}

/** The head's LR scheduler block (reference spelling `sheduler` or `scheduler`). */
export function headScheduler(c: HeadTrainConfig): {
  lr_policy: string;
  n_steps?: number;
  gamma?: number;
} {
  return c.train.sheduler ?? c.train.scheduler ?? { lr_policy: 'none' };
}

/** Load a DDPM config: the default merged with a config file (if given), validated. */
export function loadDdpmConfig(path?: string): DdpmConfig {
  return path
    ? validateDdpmConfig(deepMerge(DEFAULT_DDPM_CONFIG, readJson(path)), path)
    : structuredClone(DEFAULT_DDPM_CONFIG);
}

/** Load a head config: the default merged with a config file (if given), validated. */
export function loadHeadConfig(path?: string): HeadTrainConfig {
  return path
    ? validateHeadConfig(deepMerge(DEFAULT_HEAD_CONFIG, readJson(path)), path)
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

/** The config options both training commands take. */
export interface ConfigOptions<C> {
  config?: string | Partial<C>;
  batch?: number;
  crop?: number;
  lr?: number;
  seed?: number;
}

/** How one command turns its options into its config (see {@link resolveRunConfig}). */
export interface ConfigRecipe<C> {
  /** The shipped default merged with a config file, validated. */
  load: (path?: string) => C;
  validate: (c: unknown, source?: string) => C;
  /** The command's own flags that would change a resumed run's config. */
  fixedFlags: ReadonlyArray<readonly [string, unknown]>;
  /** The flags that may change on resume (for the refusal message). */
  mayChange: string;
  /** The command's own overrides of a fresh run. */
  fresh?: (cfg: C) => void;
  /** Overrides allowed on resume too (--iters / --epochs, --data, --val). */
  always: (cfg: C) => void;
}

/**
 * The config of a run: on resume the checkpoint's (authoritative: flags that would change it
 * are refused), else the default merged with --config and the overrides; validated.
 */
export function resolveRunConfig<
  C extends {
    datasets: { train: { batch_size: number; resolution: number } };
    train: { optimizer: { lr: number } };
  },
>(
  opts: ConfigOptions<C>,
  ckpt: { config: unknown; path: string } | null,
  recipe: ConfigRecipe<C>,
): C {
  let cfg: C;
  if (ckpt) {
    refuseOnResume(
      [
        ['--config', opts.config],
        ['--batch', opts.batch],
        ['--crop', opts.crop],
        ['--lr', opts.lr],
        ['--seed', opts.seed],
        ...recipe.fixedFlags,
      ],
      recipe.mayChange,
    );
    cfg = recipe.validate(ckpt.config, ckpt.path);
  } else {
    cfg =
      typeof opts.config === 'string' || opts.config === undefined
        ? recipe.load(opts.config)
        : deepMerge(recipe.load(), opts.config);
    applyTrainOverrides(cfg, opts);
    recipe.fresh?.(cfg);
  }
  recipe.always(cfg);
  return recipe.validate(cfg);
}
