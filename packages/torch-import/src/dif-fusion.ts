/**
 * Mapping the authors' Dif-Fusion checkpoints onto our configs.
 *
 * - DDPM (`I…_E…_gen.pth`): `torch.save(GaussianDiffusion.state_dict())`: the schedule
 *   buffers (ignored: the schedule is recomputed from its config) and the UNet under
 *   `denoise_fn.` (stripped).
 * - Fusion head (`df_model_E…_gen.pth`): `torch.save(Fusion_Head.state_dict())`.
 *
 * Configs are inferred from the tensor shapes (see README, "What is inferred"); what the
 * shapes cannot tell (GroupNorm groups, dropout, the head's time steps and the position of
 * each feature scale inside its resolution level) comes from options, defaulting to the
 * paper's values.
 */
import {
  DEFAULT_TIME_STEPS,
  FusionHead,
  type FusionHeadConfig,
  normalizeHeadConfig,
} from '@dif-fusion/fusion-head';
import {
  BETA_SCHEDULES,
  type BetaScheduleName,
  makeBetaSchedule,
  type NoiseScheduleConfig,
} from '@dif-fusion/schedules';
import { UNet, type UNetConfig, type UNetDecoderConfig } from '@dif-fusion/unet';
import { PyDict, TorchImportError } from './pickle';
import { PickledTensor, TorchCheckpoint } from './torch-file';

/** The GaussianDiffusion buffers of the official DDPM state_dict (recomputed, never imported). */
export const SCHEDULE_BUFFERS = [
  'betas',
  'alphas_cumprod',
  'alphas_cumprod_prev',
  'sqrt_alphas_cumprod',
  'sqrt_one_minus_alphas_cumprod',
  'log_one_minus_alphas_cumprod',
  'sqrt_recip_alphas_cumprod',
  'sqrt_recipm1_alphas_cumprod',
  'posterior_variance',
  'posterior_log_variance_clipped',
  'posterior_mean_coef1',
  'posterior_mean_coef2',
];

/** Official defaults for what the shapes cannot tell. */
export const OFFICIAL_NORM_GROUPS = 32;
export const OFFICIAL_DROPOUT = 0.2;

/** Names and shapes of a state_dict (what inference needs). */
export type ShapeMap = ReadonlyMap<string, readonly number[]>;

const fail = (msg: string): never => {
  throw new TorchImportError(msg);
};

/** Keys under which training scripts commonly nest the state_dict. */
const NESTED_STATE_DICT_KEYS = [
  'state_dict',
  'model_state_dict',
  'model',
  'netG',
  'network',
  'net',
  'params',
];

const isTensorDict = (v: unknown): v is PyDict =>
  v instanceof PyDict &&
  v.size > 0 &&
  [...v].every(([k, t]) => typeof k === 'string' && t instanceof PickledTensor);

/**
 * The state_dict inside a loaded checkpoint: the object itself when it is a dict of tensors
 * (what the reference saves), else a dict of tensors under a usual key (`state_dict`, `model`,
 * …). A `module.` prefix on every key (nn.DataParallel) is removed.
 */
export function findStateDict(root: unknown, what: string): Map<string, PickledTensor> {
  let sd: PyDict | undefined;
  if (isTensorDict(root)) sd = root;
  else if (root instanceof PyDict) {
    for (const k of NESTED_STATE_DICT_KEYS) {
      const v = root.get(k);
      if (isTensorDict(v)) {
        sd = v;
        break;
      }
    }
  }
  if (!sd) {
    const keys =
      root instanceof PyDict ? [...root.keys()].slice(0, 8).map(String).join(', ') : typeof root;
    // SR3/Dif-Fusion save the optimizer beside the weights as *_opt.pth.
    const hint =
      root instanceof PyDict && root.has('optimizer')
        ? ' (an optimizer checkpoint, *_opt.pth? pass the weights, *_gen.pth)'
        : '';
    return fail(`${what}: no state_dict (a dict of tensors) found; top-level keys: ${keys}${hint}`);
  }
  const entries = [...sd] as Array<[string, PickledTensor]>;
  const strip = entries.every(([k]) => k.startsWith('module.'));
  return new Map(entries.map(([k, t]) => [strip ? k.slice('module.'.length) : k, t]));
}

/** Split the DDPM state_dict: UNet weights (without `denoise_fn.`) and ignored schedule buffers. */
export function splitDdpmStateDict<T>(sd: ReadonlyMap<string, T>, what: string): Map<string, T> {
  const unet = new Map<string, T>();
  const unknown: string[] = [];
  const hasPrefix = [...sd.keys()].some((k) => k.startsWith('denoise_fn.'));
  for (const [k, v] of sd) {
    if (SCHEDULE_BUFFERS.includes(k)) continue;
    if (k.startsWith('denoise_fn.')) unet.set(k.slice('denoise_fn.'.length), v);
    else if (!hasPrefix)
      unet.set(k, v); // a bare UNet state_dict
    else unknown.push(k);
  }
  if (unknown.length > 0)
    fail(
      `${what}: unexpected keys beside denoise_fn.* and the schedule buffers: ${unknown.slice(0, 5).join(', ')}`,
    );
  if (unet.size === 0) fail(`${what}: no UNet weights (denoise_fn.*) in the state_dict`);
  return unet;
}

function shapeOf(w: ShapeMap, key: string, what: string): readonly number[] {
  const s = w.get(key);
  if (!s) return fail(`${what}: missing ${key} (not an SR3 UNet / Dif-Fusion checkpoint?)`);
  return s;
}

/**
 * Infer the UNet config from the state_dict shapes (keys without `denoise_fn.`).
 *
 * - in/out channels, inner_channel: init_conv / final_conv;
 * - channel_multiplier and res_blocks: the output channels of the `downs` ResnetBlocks between
 *   Downsample layers;
 * - attention levels: which levels' blocks have `attn.*` weights. The official UNet decides
 *   attention by `image_size / 2^level in attn_res`; the config keeps the official
 *   `attn_res: [16]` and picks `image_size = 16 * 2^level` for the attention level (several
 *   levels: attn_res lists each level's resolution), or `image_size = 10 * 2^(levels-1)`
 *   (no level is 16, e.g. 160 for the paper's 5 levels) when only the middle block has
 *   attention. image_size only decides attention; inputs of any size divisible by
 *   2^(levels-1) can be fused.
 * - norm_groups and dropout are not in the shapes: options (defaults 32 and 0.2, the paper's).
 */
export function inferUnetConfig(
  w: ShapeMap,
  options: { normGroups?: number; dropout?: number; what?: string } = {},
): UNetConfig {
  const what = options.what ?? 'DDPM checkpoint';
  if (!w.has('init_conv.weight') && w.has('decoder.0.block.2.weight'))
    fail(`${what}: this is a fusion head checkpoint, not a DDPM (pass it as the head: --head)`);
  const [inner, inChannel] = shapeOf(w, 'init_conv.weight', what);
  const [out, finalIn] = shapeOf(w, 'final_conv.block.3.weight', what);
  // Without noise-level conditioning (with_noise_level_emb false) there is no MLP at all.
  const mlp = w.get('noise_level_mlp.1.weight');
  if (mlp && (mlp[0] !== 4 * inner || mlp[1] !== inner))
    fail(`${what}: noise_level_mlp.1.weight is [${mlp}], expected [${4 * inner}, ${inner}]`);
  // FeatureWiseAffine: Linear(emb -> C), or (emb -> 2C) with use_affine_level.
  const affine0 = w.get('downs.0.res_block.noise_func.noise_func.0.weight');
  const res0 = w.get('downs.0.res_block.block1.block.3.weight');
  let affine = false;
  if (mlp && affine0 && res0) {
    if (affine0[0] === 2 * res0[0]) affine = true;
    else if (affine0[0] !== res0[0])
      fail(`${what}: downs.0 noise_func gives ${affine0[0]} values for ${res0[0]} channels`);
  } else if (mlp && !affine0) fail(`${what}: noise_level_mlp without noise_func weights`);

  // downs: [res blocks of level 0] Downsample [res blocks of level 1] Downsample ...
  const levels: Array<{ channels: number; blocks: number; attn: boolean[] }> = [];
  let cur = { channels: 0, blocks: 0, attn: [] as boolean[] };
  for (let i = 0; ; i++) {
    const res = w.get(`downs.${i}.res_block.block1.block.3.weight`);
    const down = w.get(`downs.${i}.conv.weight`);
    if (!res && !down) break;
    if (res) {
      if (cur.blocks > 0 && res[0] !== cur.channels)
        fail(`${what}: downs.${i} changes channels inside a resolution level`);
      cur.channels = res[0];
      cur.blocks++;
      cur.attn.push(w.has(`downs.${i}.attn.qkv.weight`));
    } else {
      if (cur.blocks === 0)
        fail(`${what}: downs.${i} is a Downsample with no ResnetBlock before it`);
      levels.push(cur);
      cur = { channels: 0, blocks: 0, attn: [] };
    }
  }
  if (cur.blocks === 0) fail(`${what}: no downs.*.res_block weights (not an SR3 UNet checkpoint?)`);
  levels.push(cur);
  const resBlocks = levels[0].blocks;
  for (const [l, lv] of levels.entries()) {
    if (lv.blocks !== resBlocks)
      fail(`${what}: level ${l} has ${lv.blocks} ResnetBlocks, level 0 has ${resBlocks}`);
    if (lv.attn.some((a) => a !== lv.attn[0]))
      fail(`${what}: level ${l} has attention on some blocks only`);
    if (lv.channels % inner !== 0)
      fail(`${what}: level ${l} has ${lv.channels} channels, not a multiple of ${inner}`);
  }
  const mults = levels.map((lv) => lv.channels / inner);
  if (finalIn !== inner * mults[0])
    fail(`${what}: final_conv reads ${finalIn} channels, expected ${inner * mults[0]}`);
  if (!w.has('mid.0.attn.qkv.weight'))
    fail(`${what}: mid.0 has no attention (not an SR3 UNet checkpoint?)`);

  const attnLevels = levels.flatMap((lv, l) => (lv.attn[0] ? [l] : []));
  let imageSize: number;
  let attnRes: number[];
  if (attnLevels.length === 0) {
    imageSize = 10 * 2 ** (levels.length - 1);
    attnRes = [16];
  } else {
    const top = Math.max(...attnLevels);
    imageSize = 16 * 2 ** top;
    attnRes = attnLevels.map((l) => imageSize / 2 ** l).sort((a, b) => b - a);
  }

  const normGroups = options.normGroups ?? OFFICIAL_NORM_GROUPS;
  const channels = new Set([inner, ...mults.map((m) => m * inner)]);
  for (const c of channels)
    if (c % normGroups !== 0)
      fail(
        `${what}: norm_groups ${normGroups} does not divide the ${c} channels of some layers; the group count is not stored in the checkpoint: pass the one it was trained with (--norm-groups)`,
      );
  return {
    in_channel: inChannel,
    out_channel: out,
    inner_channel: inner,
    norm_groups: normGroups,
    channel_multiplier: mults,
    attn_res: attnRes,
    res_blocks: resBlocks,
    dropout: options.dropout ?? OFFICIAL_DROPOUT,
    image_size: imageSize,
    with_noise_level_emb: mlp !== undefined,
    use_affine_level: affine,
  };
}

/**
 * The beta schedule of the DDPM checkpoint's `betas` buffer: the schedule (one of the seven),
 * n_timestep = its length, linear_start/linear_end = its first/last value (rounded to the 6
 * significant digits a config holds), accepted when rebuilding the schedule gives the stored
 * buffer back within float32 rounding. The buffers themselves are never imported: the
 * schedule is recomputed in float64 from this config, as training does. Returns null when no
 * schedule reproduces it (then it must be passed by hand).
 */
export function inferSchedule(betas: ArrayLike<number>): NoiseScheduleConfig | null {
  const n = betas.length;
  if (n < 2) return null;
  const round = (v: number) => Number(v.toPrecision(6));
  const start = round(betas[0]);
  const end = round(betas[n - 1]);
  // Linear-family first (the paper's is linear): ties (e.g. a constant schedule) go to it.
  const order: BetaScheduleName[] = [
    'linear',
    'quad',
    'warmup10',
    'warmup50',
    'cosine',
    'const',
    'jsd',
  ];
  for (const name of order.filter((x) => (BETA_SCHEDULES as readonly string[]).includes(x))) {
    const cfg: NoiseScheduleConfig =
      name === 'cosine'
        ? { schedule: name, n_timestep: n, linear_start: 1e-6, linear_end: 1e-2, cosine_s: 8e-3 }
        : { schedule: name, n_timestep: n, linear_start: start, linear_end: end };
    const b = makeBetaSchedule(name, n, cfg.linear_start, cfg.linear_end, cfg.cosine_s);
    let ok = true;
    for (let i = 0; i < n && ok; i++)
      ok = Math.abs(b[i] - betas[i]) <= 2e-6 * Math.abs(b[i]) + 1e-12;
    if (ok) return cfg;
  }
  return null;
}

/**
 * Infer the fusion head config from its state_dict shapes and the UNet config it reads
 * features of. The number of time steps comes from the Blocks' 1x1 convs
 * (`dim * len(time_steps)` inputs); their values are not stored: `timeSteps` (default the
 * paper's [5, 50, 100] for three). The feature scales' resolution levels come from the Block
 * channel counts (consecutive levels, ending at full resolution where possible); inside a
 * level the last block's output is taken (the paper's [2, 5, 8, 11, 14]) unless `featScales`
 * says otherwise. The head is imported in `reference` mode (the official forward pass).
 */
export function inferHeadConfig(
  w: ShapeMap,
  unet: UNetDecoderConfig,
  options: { timeSteps?: number[]; featScales?: number[]; what?: string } = {},
): FusionHeadConfig {
  const what = options.what ?? 'fusion head checkpoint';
  const dims: number[] = [];
  let steps = -1;
  for (let i = 0; ; i += 2) {
    const conv3 = w.get(`decoder.${i}.block.2.weight`);
    if (!conv3) break;
    const dim = conv3[0];
    const conv1 = w.get(`decoder.${i}.block.0.weight`);
    // A one-time-step head has no 1x1 conv (the official Block holds None there).
    const k = conv1 ? conv1[1] / dim : 1;
    if (!Number.isInteger(k) || k < 1)
      fail(
        `${what}: decoder.${i}.block.0.weight [${conv1}] does not stack ${dim}-channel features`,
      );
    if (steps >= 0 && k !== steps)
      fail(`${what}: decoder.${i} stacks ${k} time steps, earlier blocks ${steps}`);
    steps = k;
    dims.push(dim);
    const att = w.get(`decoder.${i + 1}.block.0.weight`);
    if (!att) break;
    if (att[1] !== dim)
      fail(`${what}: decoder.${i + 1} reads ${att[1]} channels, the block before gives ${dim}`);
  }
  if (dims.length === 0 && [...w.keys()].some((k) => /^(denoise_fn\.)?init_conv\.weight$/.test(k)))
    fail(`${what}: this is a DDPM (UNet) checkpoint, not a fusion head (pass it as --ddpm)`);
  if (dims.length === 0)
    fail(`${what}: no decoder.*.block weights (not a Dif-Fusion fusion head checkpoint?)`);
  shapeOf(w, 'rgb_decode1.conv.weight', what);

  let timeSteps = options.timeSteps;
  if (!timeSteps) {
    if (steps !== DEFAULT_TIME_STEPS.length)
      fail(
        `${what}: the head stacks features of ${steps} time steps; which ones is not stored in the checkpoint: pass them (--time-steps)`,
      );
    timeSteps = DEFAULT_TIME_STEPS.slice();
  } else if (timeSteps.length !== steps)
    fail(
      `${what}: the head stacks features of ${steps} time steps, --time-steps lists ${timeSteps.length}`,
    );

  const per = unet.res_blocks + 1;
  const levelChannels = unet.channel_multiplier.map((m) => m * unet.inner_channel);
  let featScales = options.featScales?.slice().sort((a, b) => b - a);
  if (!featScales) {
    // Coarsest block first, one level finer each; prefer ending at full resolution.
    const n = dims.length;
    const candidates: number[] = [];
    for (let top = n - 1; top < levelChannels.length; top++)
      if (dims.every((d, i) => levelChannels[top - i] === d)) candidates.push(top);
    if (candidates.length === 0)
      fail(
        `${what}: its block channels [${dims}] do not match consecutive levels of the UNet (level channels [${levelChannels}]): is it the head of this DDPM?`,
      );
    const top = candidates[0];
    featScales = dims.map((_, i) => (top - i) * per + per - 1);
  }
  const cfg = normalizeHeadConfig(
    {
      feat_scales: featScales,
      time_steps: timeSteps,
      out_channels: shapeOf(w, 'rgb_decode1.conv.weight', what)[0],
      mode: 'reference',
    },
    unet,
  );
  if (cfg.feat_scales.length !== dims.length)
    fail(
      `${what}: the head has ${dims.length} feature scales, --feat-scales lists ${cfg.feat_scales.length}`,
    );
  return cfg;
}

/** Check a state_dict against the parameter list of the network a config builds. */
export function checkShapes(
  got: ShapeMap,
  expected: ReadonlyArray<{ name: string; shape: readonly number[] }>,
  what: string,
): void {
  const exp = new Map(expected.map((p) => [p.name, p.shape]));
  const missing = [...exp.keys()].filter((k) => !got.has(k));
  const extra = [...got.keys()].filter((k) => !exp.has(k));
  const wrong = [...exp].filter(([k, s]) => got.has(k) && got.get(k)!.join(',') !== s.join(','));
  if (missing.length + extra.length + wrong.length === 0) return;
  const parts: string[] = [];
  if (missing.length)
    parts.push(
      `missing ${missing.slice(0, 3).join(', ')}${missing.length > 3 ? ` (+${missing.length - 3})` : ''}`,
    );
  if (extra.length)
    parts.push(
      `unexpected ${extra.slice(0, 3).join(', ')}${extra.length > 3 ? ` (+${extra.length - 3})` : ''}`,
    );
  if (wrong.length)
    parts.push(
      `shape of ${wrong
        .slice(0, 3)
        .map(([k, s]) => `${k} is [${got.get(k)}], expected [${s}]`)
        .join('; ')}`,
    );
  fail(`${what}: does not match the inferred config: ${parts.join('; ')}`);
}

/** Shapes of a state_dict of pickled tensors. */
export function shapesOf(sd: ReadonlyMap<string, PickledTensor>): Map<string, number[]> {
  return new Map([...sd].map(([k, t]) => [k, t.shape]));
}

/** Weights keyed by official name, PyTorch layout, float32 (the trainer's TorchWeights). */
export type Float32Weights = Map<string, { shape: number[]; data: Float32Array }>;

/** Read every tensor of a state_dict as float32, one storage at a time. */
export async function readFloat32(
  ck: TorchCheckpoint,
  sd: ReadonlyMap<string, PickledTensor>,
): Promise<Float32Weights> {
  const out: Float32Weights = new Map();
  for (const [k, t] of sd) out.set(k, { shape: t.shape.slice(), data: await ck.float32(t) });
  return out;
}

export interface ImportOptions {
  /** GroupNorm groups of the UNet (not in the checkpoint; default 32, the paper's). */
  normGroups?: number;
  /** UNet dropout for further training (not in the checkpoint; default 0.2, the paper's). */
  dropout?: number;
  /** The head's diffusion time steps (not in the checkpoint; default [5, 50, 100]). */
  timeSteps?: number[];
  /** The head's feature scales (default: inferred, the paper's [2, 5, 8, 11, 14] at its size). */
  featScales?: number[];
  /**
   * The beta schedule (default: inferred from the checkpoint's `betas` buffer, see
   * {@link inferSchedule}); needed when the buffer is absent or matches no known schedule.
   */
  schedule?: NoiseScheduleConfig;
}

export interface ImportedDifFusion {
  unet: { config: UNetConfig; weights: Float32Weights; source: string };
  /** The DDPM's beta schedule (from the options, else inferred from `betas`). */
  schedule: NoiseScheduleConfig;
  head: { config: FusionHeadConfig; weights: Float32Weights; source: string } | null;
}

/**
 * Read the official DDPM checkpoint (and optionally the fusion head's), infer the configs
 * and return float32 weights under the official names (UNet keys without `denoise_fn.`).
 */
export async function importDifFusion(
  paths: { ddpm: string; head?: string },
  options: ImportOptions = {},
): Promise<ImportedDifFusion> {
  const ddpm = await TorchCheckpoint.open(paths.ddpm);
  let unet: ImportedDifFusion['unet'];
  let schedule: NoiseScheduleConfig;
  try {
    const what = paths.ddpm;
    const full = findStateDict(ddpm.root, what);
    const sd = splitDdpmStateDict(full, what);
    const config = inferUnetConfig(shapesOf(sd), { ...options, what });
    checkShapes(shapesOf(sd), new UNet(config).params(), what);
    let sched = options.schedule ?? null;
    if (!sched) {
      const betas = full.get('betas');
      if (!betas)
        fail(`${what}: no betas buffer to infer the beta schedule from: pass it (--schedule)`);
      sched = inferSchedule(await ddpm.float64(betas!));
      if (!sched)
        fail(
          `${what}: its betas buffer matches none of the beta schedules (${BETA_SCHEDULES.join(', ')}): pass it (--schedule)`,
        );
    }
    schedule = sched!;
    unet = { config, weights: await readFloat32(ddpm, sd), source: paths.ddpm };
  } finally {
    ddpm.close();
  }
  if (!paths.head) return { unet, schedule, head: null };
  const head = await TorchCheckpoint.open(paths.head);
  try {
    const what = paths.head;
    const sd = findStateDict(head.root, what);
    const config = inferHeadConfig(shapesOf(sd), unet.config, { ...options, what });
    checkShapes(shapesOf(sd), new FusionHead(config, unet.config).params(), what);
    return {
      unet,
      schedule,
      head: { config, weights: await readFloat32(head, sd), source: paths.head },
    };
  } finally {
    head.close();
  }
}
