/**
 * `dif-train import-torch`: the authors' PyTorch checkpoints as dif-train checkpoints.
 *
 *   dif-train import-torch --ddpm I…_E…_gen.pth --head df_model_E…_gen.pth -o DIR
 *   dif-train export --ddpm DIR/ddpm --head DIR/head -o MODEL
 *
 * The `.pth` files are read by @dif-fusion/torch-import (a restricted unpickler: no Python,
 * nothing executed); the UNet and head configs are inferred from the tensor shapes, the beta
 * schedule from the DDPM's `betas` buffer. Output: `DIR/ddpm/ddpm-<step>.safetensors` and
 * `DIR/head/head-<step>.safetensors` in the trainer's own checkpoint format (../checkpoint),
 * step and epoch taken from the official file names (`I<iter>_E<epoch>`) when they hold them.
 */
import { existsSync, readFileSync, rmSync, statSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import type { FusionHeadConfig } from '@dif-fusion/fusion-head';
import { type NoiseScheduleConfig, parseScheduleConfig } from '@dif-fusion/schedules';
import {
  type ImportedDifFusion,
  importDifFusion,
  TorchImportError,
} from '@dif-fusion/torch-import';
import { type UNetConfig, unetConfigToJSON } from '@dif-fusion/unet';
import { type Command, InvalidArgumentError } from 'commander';
import { listCheckpoints, saveCheckpoint } from '../checkpoint';
import { int, QUIET_FLAGS, QUIET_HELP, quietLog } from '../cli-args';
import { formatError, UserError } from '../errors';

export interface ImportTorchOptions {
  /** The official DDPM checkpoint (`I…_E…_gen.pth`: GaussianDiffusion state_dict). */
  ddpm: string;
  /** The official fusion head checkpoint (`df_model_E…_gen.pth`); optional. */
  head?: string;
  /** Output folder: gets `ddpm/` and `head/`. */
  out: string;
  /** GroupNorm groups (not stored in the checkpoint; default 32, the paper's). */
  normGroups?: number;
  /** UNet dropout for further training (not stored; default 0.2, the paper's). */
  dropout?: number;
  /** The head's diffusion time steps (not stored; default [5, 50, 100]). */
  timeSteps?: number[];
  /** The head's feature scales (default inferred: the paper's [2, 5, 8, 11, 14]). */
  featScales?: number[];
  /** Beta schedule (default inferred from the `betas` buffer). */
  schedule?: NoiseScheduleConfig;
  /** Replace checkpoints already in DIR/ddpm, DIR/head. */
  force?: boolean;
  /** Progress lines (default: stderr). */
  log?: (line: string) => void;
}

export interface ImportTorchResult {
  ddpm: string;
  head: string | null;
  unet: UNetConfig;
  headConfig: FusionHeadConfig | null;
  schedule: NoiseScheduleConfig;
}

/** `I640000_E32_gen.pth` -> { step: 640000, epoch: 32 } (missing parts: 0). */
export function stepFromOfficialName(path: string): { step: number; epoch: number } {
  const name = basename(path);
  const step = /(?:^|_)I(\d+)(?=_)/.exec(name);
  const epoch = /(?:^|_)E(\d+)(?=_|\.)/.exec(name);
  return { step: step ? Number(step[1]) : 0, epoch: epoch ? Number(epoch[1]) : 0 };
}

const count = (w: ImportedDifFusion['unet']['weights']) => {
  let n = 0;
  for (const t of w.values()) n += t.data.length;
  return n;
};

function prepareDir(dir: string, kind: 'ddpm' | 'head', force: boolean): void {
  const old = listCheckpoints(dir, kind);
  if (old.length === 0) return;
  if (!force)
    throw new UserError(
      `${dir}: already holds ${kind} checkpoints (${basename(old[old.length - 1].path)}); choose another -o or pass --force to replace them`,
    );
  for (const c of old) rmSync(c.path, { force: true });
}

/** A reference-format training config (config/fusion_train.json layout) describing the import. */
function importedConfig(r: ImportedDifFusion): Record<string, unknown> {
  const u = r.unet.config;
  // the one UNet block; its image_size is the official model.diffusion.image_size here
  const { image_size: _, ...block } = unetConfigToJSON(u);
  return {
    name: 'imported',
    model: {
      unet: block,
      beta_schedule: { train: r.schedule },
      diffusion: { image_size: u.image_size, channels: u.in_channel },
    },
    ...(r.head
      ? {
          model_df: {
            feat_scales: r.head.config.feat_scales,
            out_channels: r.head.config.out_channels,
            t: r.head.config.time_steps,
            mode: r.head.config.mode,
          },
        }
      : {}),
  };
}

/** Check the options and the output folder before the (long) read: a refusal costs nothing. */
function checkImportOptions(opts: ImportTorchOptions): { ddpmDir: string; headDir: string } {
  if (!opts.out) throw new UserError('no output folder: pass -o DIR');
  for (const p of [opts.ddpm, opts.head])
    if (p !== undefined && !existsSync(p)) throw new UserError(`${p}: no such file`);
  const out = resolve(opts.out);
  if (existsSync(out) && !statSync(out).isDirectory())
    throw new UserError(`${opts.out}: exists and is not a folder`);
  const ddpmDir = join(out, 'ddpm');
  const headDir = join(out, 'head');
  if (!opts.force) {
    prepareDir(ddpmDir, 'ddpm', false);
    prepareDir(headDir, 'head', false);
  }
  return { ddpmDir, headDir };
}

/** Import the official checkpoints into DIR; returns the written checkpoint paths. */
export async function runImportTorch(opts: ImportTorchOptions): Promise<ImportTorchResult> {
  const log = opts.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  const { ddpmDir, headDir } = checkImportOptions(opts);
  const r = await importDifFusion(
    { ddpm: opts.ddpm, head: opts.head },
    {
      normGroups: opts.normGroups,
      dropout: opts.dropout,
      timeSteps: opts.timeSteps,
      featScales: opts.featScales,
      schedule: opts.schedule,
    },
  );
  const u = r.unet.config;
  const s = r.schedule;
  const config = importedConfig(r);
  const imported = (source: string) => ({
    imported_from: resolve(source),
    importer: 'dif-train import-torch',
    schedule: s,
  });

  prepareDir(ddpmDir, 'ddpm', opts.force === true);
  const ds = stepFromOfficialName(opts.ddpm);
  const ddpmPath = saveCheckpoint(ddpmDir, {
    kind: 'ddpm',
    step: ds.step,
    epoch: ds.epoch,
    config,
    model: { ...unetConfigToJSON(u) },
    weights: r.unet.weights,
    optimizer: null,
    rng: null,
    sampler: null,
    extra: imported(opts.ddpm),
  });
  log(
    `imported ${opts.ddpm}: UNet inner_channel ${u.inner_channel} x [${u.channel_multiplier}], res_blocks ${u.res_blocks}, attn_res [${u.attn_res}] at image_size ${u.image_size}, norm_groups ${u.norm_groups}, ${count(r.unet.weights).toLocaleString('en-US')} params; schedule ${s.schedule} T=${s.n_timestep} [${s.linear_start}, ${s.linear_end}] -> ${ddpmPath}`,
  );

  let headPath: string | null = null;
  if (r.head && opts.head) {
    const h = r.head.config;
    prepareDir(headDir, 'head', opts.force === true);
    const hs = stepFromOfficialName(opts.head);
    headPath = saveCheckpoint(headDir, {
      kind: 'head',
      step: hs.step,
      epoch: hs.epoch,
      config,
      model: { ...h },
      weights: r.head.weights,
      optimizer: null,
      rng: null,
      sampler: null,
      extra: { ...imported(opts.head), ddpm: ddpmPath, ddpm_step: ds.step },
    });
    log(
      `imported ${opts.head}: fusion head (${h.mode} mode), feat_scales [${h.feat_scales}], time steps [${h.time_steps}], ${count(r.head.weights).toLocaleString('en-US')} params -> ${headPath}`,
    );
    log(`next: dif-train export --ddpm ${ddpmDir} --head ${headDir} -o MODEL`);
  }
  return {
    ddpm: ddpmPath,
    head: headPath,
    unet: u,
    headConfig: r.head?.config ?? null,
    schedule: s,
  };
}

function intList(name: string) {
  return (v: string): number[] => {
    const xs = v.split(',').map((x) => Number(x.trim()));
    if (xs.length === 0 || xs.some((x) => !Number.isInteger(x) || x < 0))
      throw new InvalidArgumentError(`${name} must be a comma-separated list of integers >= 0`);
    return xs;
  };
}

/**
 * --schedule: a JSON object (`{"schedule":"linear","n_timestep":2000,...}`) or a JSON file
 * holding one, or a reference config (model.beta_schedule.train).
 */
export function parseScheduleOption(v: string): NoiseScheduleConfig {
  let json: unknown;
  try {
    json = JSON.parse(v.trim().startsWith('{') ? v : readFileSync(v, 'utf8'));
  } catch (e) {
    throw new InvalidArgumentError(
      `--schedule must be a JSON object or a JSON file (${formatError(e)})`,
    );
  }
  const o = json as { model?: { beta_schedule?: { train?: unknown } } };
  try {
    return parseScheduleConfig(o?.model?.beta_schedule?.train ?? json);
  } catch (e) {
    throw new InvalidArgumentError(formatError(e));
  }
}

/** Register `dif-train import-torch` on the CLI program. */
export function registerImportTorchCommand(program: Command): void {
  program
    .command('import-torch')
    .description(
      "import the authors' PyTorch checkpoints (.pth) as dif-train checkpoints (no Python needed)",
    )
    .requiredOption('--ddpm <file>', 'official DDPM checkpoint (I…_E…_gen.pth)')
    .option('--head <file>', 'official fusion head checkpoint (df_model_E…_gen.pth)')
    .requiredOption('-o, --out <dir>', 'output folder (gets ddpm/ and head/)')
    .option(
      '--norm-groups <n>',
      'UNet GroupNorm groups (not stored in the .pth; default 32)',
      int('--norm-groups', 1),
    )
    .option('--dropout <p>', 'UNet dropout for further training (default 0.2)', (v) => {
      const p = Number(v);
      if (!(p >= 0 && p < 1)) throw new InvalidArgumentError('--dropout must be in [0, 1)');
      return p;
    })
    .option(
      '--time-steps <list>',
      'head time steps (not stored; default 5,50,100)',
      intList('--time-steps'),
    )
    .option(
      '--feat-scales <list>',
      'head feature scales (default inferred: 2,5,8,11,14 at the paper size)',
      intList('--feat-scales'),
    )
    .option(
      '--schedule <json|file>',
      'beta schedule (default inferred from the betas buffer)',
      parseScheduleOption,
    )
    .option('--force', 'replace checkpoints already in DIR/ddpm and DIR/head')
    .addHelpText(
      'after',
      `
Examples:
  dif-train import-torch --ddpm I640000_E32_gen.pth --head df_model_E1000_gen.pth -o models/official-ckpt
  dif-train export --ddpm models/official-ckpt/ddpm --head models/official-ckpt/head -o models/official`,
    )
    .option(QUIET_FLAGS, QUIET_HELP)
    .action(async (o: Record<string, unknown>) => {
      try {
        await runImportTorch({
          log: quietLog(o),
          ddpm: o.ddpm as string,
          head: o.head as string | undefined,
          out: o.out as string,
          normGroups: o.normGroups as number | undefined,
          dropout: o.dropout as number | undefined,
          timeSteps: o.timeSteps as number[] | undefined,
          featScales: o.featScales as number[] | undefined,
          schedule: o.schedule as NoiseScheduleConfig | undefined,
          force: Boolean(o.force),
        });
      } catch (e) {
        if (e instanceof TorchImportError || UserError.isInstance(e)) throw e;
        throw new UserError(`${o.ddpm}: ${formatError(e)}`, { cause: e });
      }
    });
}
