/**
 * Training checkpoints: one safetensors file per checkpoint,
 * `RUN/checkpoints/<kind>-<step>.safetensors`, written atomically (temp file + rename).
 *
 * File layout:
 * - weights under their official PyTorch `state_dict` keys, PyTorch layouts, float32.
 *   DDPM checkpoints prefix the UNet keys with `denoise_fn.` exactly as the official
 *   GaussianDiffusion state_dict (`*_gen.pth`) does; head checkpoints use the head's keys
 *   as they are (`df_model_*_gen.pth`).
 * - the exponential moving average of the weights (`train.ema_decay`), when kept, as
 *   `ema.<param name>` tensors (same layout as the weights).
 * - optimizer state as `optim.<slot>.<param name>` tensors (slots `exp_avg`, `exp_avg_sq`
 *   for Adam/AdamW, PyTorch's names, same layout as the parameter).
 * - `__metadata__` (all strings): `format` ({@link CHECKPOINT_FORMAT}), `kind`, `step`,
 *   `epoch`, `config` (the full training config, JSON), `model` (network config, JSON),
 *   `optimizer` (optimizer config + step count, JSON), `rng` (training RNG state, JSON),
 *   `sampler` (data sampler state, JSON), `extra` (JSON), `created` (ISO time).
 */
import { existsSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import {
  checkWeights,
  makeDirsSync,
  readSafetensors,
  type SamplerState,
  UserError,
  writeSafetensorsSync,
} from '@dif-fusion/io';
import type { OptimizerState, ParamSpec, TorchTensor, TorchWeights } from '@dif-fusion/nn';
import type { RngState } from '@dif-fusion/schedules';

/** Format id written into every checkpoint's metadata. */
export const CHECKPOINT_FORMAT = 'dif-fusion-checkpoint/1';

export type CheckpointKind = 'ddpm' | 'head';

/** Prefix of the weight keys in the file, per kind (the official state_dict prefixes). */
export const WEIGHT_PREFIX: Record<CheckpointKind, string> = { ddpm: 'denoise_fn.', head: '' };

const OPTIM_PREFIX = 'optim.';
const EMA_PREFIX = 'ema.';

export type { OptimizerState };

export interface Checkpoint {
  kind: CheckpointKind;
  /** Training steps completed. */
  step: number;
  /** Epochs completed (head training; DDPM: epochs over the data, informational). */
  epoch: number;
  /** The resolved training config (reference JSON format). */
  config: Record<string, unknown>;
  /** The network config (UNet config for ddpm, head config for head). */
  model: Record<string, unknown>;
  /** Weights keyed by the network's own parameter names (no `denoise_fn.`), PyTorch layout. */
  weights: TorchWeights;
  /** EMA of the weights (`train.ema_decay`), same names and layout; absent when not kept. */
  ema?: TorchWeights | null;
  optimizer: OptimizerState | null;
  /** Training RNG state (exact resume). */
  rng: RngState | null;
  /** Data sampler state (exact resume). */
  sampler: SamplerState | null;
  /** Anything else a trainer needs (JSON). */
  extra: Record<string, unknown>;
}

export interface SavedCheckpoint {
  path: string;
  kind: CheckpointKind;
  step: number;
}

/** Checkpoint file name for a kind and step. */
export function checkpointFileName(kind: CheckpointKind, step: number): string {
  return `${kind}-${String(step).padStart(8, '0')}.safetensors`;
}

const NAME_RE = /^(ddpm|head)-(\d+)\.safetensors$/;

/** Checkpoints in a folder, oldest step first. */
export function listCheckpoints(dir: string, kind?: CheckpointKind): SavedCheckpoint[] {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) return [];
  const out: SavedCheckpoint[] = [];
  for (const f of readdirSync(dir)) {
    const m = NAME_RE.exec(f);
    if (!m) continue;
    if (kind && m[1] !== kind) continue;
    out.push({ path: join(dir, f), kind: m[1] as CheckpointKind, step: Number(m[2]) });
  }
  return out.sort((a, b) => a.step - b.step || a.path.localeCompare(b.path));
}

/**
 * Resolve a checkpoint path: a file as is; a folder -> the latest checkpoint in it, or in
 * its `checkpoints/` subfolder (a run folder). Throws a one-line Error when none is found.
 */
export function resolveCheckpointPath(pathOrDir: string, kind?: CheckpointKind): string {
  const p = resolve(pathOrDir);
  if (!existsSync(p)) throw new Error(`checkpoint not found: ${pathOrDir}`);
  if (statSync(p).isFile()) return p;
  for (const dir of [join(p, 'checkpoints'), p]) {
    const list = listCheckpoints(dir, kind);
    if (list.length > 0) return list[list.length - 1].path;
  }
  throw new Error(
    `no ${kind ?? 'ddpm or head'} checkpoint in ${pathOrDir} (looked for ${kind ?? '<kind>'}-<step>.safetensors there and in its checkpoints/ folder)`,
  );
}

/**
 * Write a checkpoint into `dir` (created if needed) as `<kind>-<step>.safetensors`,
 * atomically, then delete older checkpoints of the same kind beyond the newest `keep`
 * (keep <= 0 keeps all) except those in `protect`. Returns the file path.
 */
export function saveCheckpoint(
  dir: string,
  ckpt: Checkpoint,
  options: { keep?: number; protect?: Array<string | null> } = {},
): string {
  makeDirsSync(dir);
  const prefix = WEIGHT_PREFIX[ckpt.kind];
  const tensors: Array<[string, TorchTensor]> = [];
  for (const [name, t] of ckpt.weights) tensors.push([prefix + name, t]);
  for (const [name, t] of ckpt.ema ?? []) tensors.push([EMA_PREFIX + name, t]);
  let optimizerMeta: (Omit<OptimizerState, 'slots'> & { slots: string[] }) | null = null;
  if (ckpt.optimizer) {
    const { slots, ...rest } = ckpt.optimizer;
    optimizerMeta = { ...rest, slots: Object.keys(slots) };
    for (const [slot, ws] of Object.entries(slots))
      for (const [name, t] of ws) tensors.push([`${OPTIM_PREFIX}${slot}.${name}`, t]);
  }
  const metadata: Record<string, string> = {
    format: CHECKPOINT_FORMAT,
    kind: ckpt.kind,
    step: String(ckpt.step),
    epoch: String(ckpt.epoch),
    config: JSON.stringify(ckpt.config),
    model: JSON.stringify(ckpt.model),
    optimizer: JSON.stringify(optimizerMeta),
    rng: JSON.stringify(ckpt.rng ?? null),
    sampler: JSON.stringify(ckpt.sampler ?? null),
    extra: JSON.stringify(ckpt.extra ?? {}),
    created: new Date().toISOString(),
  };
  const path = join(dir, checkpointFileName(ckpt.kind, ckpt.step));
  writeSafetensorsSync(
    path,
    new Map(
      tensors.map(([name, t]) => [name, { dtype: 'F32' as const, shape: t.shape, data: t.data }]),
    ),
    metadata,
  );
  const keep = options.keep ?? 0;
  if (keep > 0) {
    const all = listCheckpoints(dir, ckpt.kind);
    const spared = new Set([path, ...(options.protect ?? [])]);
    for (const old of all.slice(0, Math.max(0, all.length - keep)))
      if (!spared.has(old.path)) rmSync(old.path, { force: true });
  }
  return path;
}

function parseJson(value: string | undefined, what: string, path: string): unknown {
  if (value === undefined) return null;
  try {
    return JSON.parse(value);
  } catch {
    throw new Error(`${path}: metadata '${what}' is not valid JSON`);
  }
}

/**
 * Read a checkpoint from a file, or the latest one in a folder (see
 * {@link resolveCheckpointPath}). `kind` restricts which checkpoints a folder lookup
 * considers and is checked against the file. `ema: true` returns the EMA weights as
 * `weights` (an error when the checkpoint holds none). Returns the checkpoint and its path.
 */
export function loadCheckpoint(
  pathOrDir: string,
  kind?: CheckpointKind,
  options: { ema?: boolean } = {},
): Checkpoint & { path: string } {
  const path = resolveCheckpointPath(pathOrDir, kind);
  let file: ReturnType<typeof readSafetensors>;
  try {
    file = readSafetensors(path);
  } catch (err) {
    throw new Error(`${path}: not a readable safetensors file (${(err as Error).message})`);
  }
  const md = file.metadata;
  if (md.format !== CHECKPOINT_FORMAT)
    throw new Error(
      `${path}: not a dif-train checkpoint (metadata format '${md.format ?? ''}', expected '${CHECKPOINT_FORMAT}')`,
    );
  const k = md.kind as CheckpointKind;
  if (k !== 'ddpm' && k !== 'head')
    throw new Error(`${path}: unknown checkpoint kind '${md.kind}'`);
  if (kind && k !== kind)
    throw new Error(`${path}: a ${k} checkpoint, expected a ${kind} checkpoint`);
  const prefix = WEIGHT_PREFIX[k];
  // A diverged run's NaN weights, or an integer tensor, would resume or export silently.
  checkWeights(file.tensors, path, (n) => n.startsWith(prefix) || n.startsWith(OPTIM_PREFIX));
  const optMeta = parseJson(md.optimizer, 'optimizer', path) as
    | (Omit<OptimizerState, 'slots'> & { slots: string[] })
    | null;
  const weights: TorchWeights = new Map();
  const ema: TorchWeights = new Map();
  const slots: Record<string, TorchWeights> = {};
  for (const s of optMeta?.slots ?? []) slots[s] = new Map();
  for (const [name, t] of file.tensors) {
    const data = t.data instanceof Float32Array ? t.data : Float32Array.from(t.data);
    const tensor: TorchTensor = { shape: t.shape.slice(), data };
    if (name.startsWith(EMA_PREFIX)) {
      ema.set(name.slice(EMA_PREFIX.length), tensor);
    } else if (name.startsWith(OPTIM_PREFIX)) {
      const rest = name.slice(OPTIM_PREFIX.length);
      const dot = rest.indexOf('.');
      const slot = rest.slice(0, dot);
      if (dot < 0 || !slots[slot]) throw new Error(`${path}: unexpected optimizer tensor ${name}`);
      slots[slot].set(rest.slice(dot + 1), tensor);
    } else if (name.startsWith(prefix)) {
      weights.set(name.slice(prefix.length), tensor);
    }
  }
  const count = (what: 'step' | 'epoch'): number => {
    const v = Number(md[what] ?? 0);
    if (!Number.isSafeInteger(v) || v < 0)
      throw new Error(`${path}: metadata '${what}' must be a whole number >= 0, got '${md[what]}'`);
    return v;
  };
  if (options.ema && ema.size === 0)
    throw new Error(
      `${path}: holds no EMA weights (train with train.ema_decay, or leave out --ema)`,
    );
  return {
    path,
    kind: k,
    step: count('step'),
    epoch: count('epoch'),
    config: (parseJson(md.config, 'config', path) ?? {}) as Record<string, unknown>,
    model: (parseJson(md.model, 'model', path) ?? {}) as Record<string, unknown>,
    weights: options.ema ? ema : weights,
    ema: ema.size > 0 ? ema : null,
    // A stripped checkpoint (scripts/strip-checkpoint.mjs) keeps the optimizer metadata but
    // not its tensors: it resumes with a fresh optimizer.
    optimizer:
      optMeta && Object.values(slots).some((m) => m.size > 0) ? { ...optMeta, slots } : null,
    // Written by saveCheckpoint from Rng.getState / TrainingSampler.getState.
    rng: parseJson(md.rng, 'rng', path) as RngState | null,
    sampler: parseJson(md.sampler, 'sampler', path) as SamplerState | null,
    extra: (parseJson(md.extra, 'extra', path) ?? {}) as Record<string, unknown>,
  };
}

/**
 * A checkpoint's weights for a network's parameters, as fresh Float32Arrays: one-line errors
 * naming the checkpoint file and the tensor when one is missing or has another shape.
 */
export function networkWeights(
  specs: readonly ParamSpec[],
  weights: TorchWeights,
  path: string,
  what = 'weight',
): TorchWeights {
  const out: TorchWeights = new Map();
  for (const p of specs) {
    const w = weights.get(p.name);
    if (!w)
      throw new UserError(`${path}: ${what} ${p.name} is missing (expected shape [${p.shape}])`);
    const n = p.shape.reduce((a, b) => a * b, 1);
    if (w.data.length !== n)
      throw new UserError(
        `${path}: ${what} ${p.name} has shape [${w.shape}], expected [${p.shape}] (the checkpoint is for another network config)`,
      );
    out.set(p.name, { shape: p.shape.slice(), data: Float32Array.from(w.data) });
  }
  return out;
}
