/**
 * `dif-train export`: a fusion model folder (`model.onnx` + `config.json`) for dif-fuse.
 *
 *   dif-train export --ddpm CKPT --head CKPT -o DIR          trained weights
 *   dif-train export --config FILE --random-init -o DIR      random weights (benchmarks)
 *   ... --precision int8 --calibration data/train            int8 convolutions (QDQ)
 *
 * The graph comes from @dif-fusion/export `exportFusionModel`: the same UNet and head code as
 * training, run on OnnxOps. Checkpoints are read with ../checkpoint (a file, a checkpoints
 * folder or a run folder: the latest checkpoint of the right kind).
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { relative, resolve } from 'node:path';
import { learnsVariance, type VarType } from '@dif-fusion/diffusion';
import type { ExportResult } from '@dif-fusion/export';
import {
  FusionHead,
  type FusionHeadConfigInput,
  type FusionHeadMode,
  headConfigFromReference,
} from '@dif-fusion/fusion-head';
import type { NoiseScheduleConfig } from '@dif-fusion/schedules';
import { parseUNetConfig, UNet, type UNetConfig } from '@dif-fusion/unet';
import { type Command, InvalidArgumentError, Option } from 'commander';
import { loadCheckpoint } from '../checkpoint';
import { int, QUIET_FLAGS, QUIET_HELP, quietLog } from '../cli-args';
import { parseJsonWithComments, refuseSkipUnetFeatures } from '../config';
import { formatError, UserError } from '../errors';
import type { LoadedCheckpoint } from '../session';

export interface ExportOptions {
  /** DDPM checkpoint (file, checkpoints folder or run folder). */
  ddpm?: string;
  /** Head checkpoint (file, checkpoints folder or run folder). */
  head?: string;
  /** Export the DDPM's EMA weights (train.ema_decay) instead of its trained weights. */
  ema?: boolean;
  /** Reference fusion config (config/fusion_train.json format), for --random-init. */
  config?: string;
  randomInit?: boolean;
  /** Output model folder. */
  out: string;
  /** Seed of the random weights (default 0). */
  seed?: number;
  /** Head mode for --random-init (default: model_df.mode, else full as dif-train head). */
  mode?: FusionHeadMode;
  /** UNet image_size for --random-init (decides where attention sits). */
  imageSize?: number;
  opset?: number;
  externalData?: 'auto' | 'always' | 'never';
  /**
   * int8: the convolutions quantized (QDQ, @dif-fusion/export quantizeModelFolder), calibrated
   * on `calibrationPairs` (default 16) pairs of the `calibration` folder (ir/ and vi/).
   */
  precision?: 'fp32' | 'int8';
  calibration?: string;
  calibrationPairs?: number;
  /**
   * Convs kept in float at the graph's start and end (default 1 and 2: the UNet's first conv
   * and the head's two output convs; all-int8 lost 3-9% of SSIM, MI, Qabf and VIF on the
   * validation pairs, these three float kept every metric within 0.2%: BENCHMARKS.md).
   */
  floatConvs?: { first: number; last: number };
  /** Progress lines (default: stderr). */
  log?: (line: string) => void;
}

function readJsonFile(path: string): Record<string, unknown> {
  if (!existsSync(path)) throw new UserError(`${path}: file not found`);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new UserError(`${path}: cannot read (${formatError(e)})`);
  }
  const json = parseJsonWithComments(text, path);
  if (typeof json !== 'object' || json === null || Array.isArray(json))
    throw new UserError(`${path}: not a JSON object`);
  return json as Record<string, unknown>;
}

/** Re-throw any error as a one-line UserError prefixed with `where` (unless it names a file already). */
function userError(where: string, e: unknown): never {
  const msg = formatError(e);
  const named = msg.startsWith('/') || msg.includes(where);
  // A project error that already names its file stays as it is; one that names none (an
  // ExportError about a tensor) gets the file it came from.
  if (UserError.isInstance(e) && (named || e.path !== undefined)) throw e;
  throw new UserError(named ? msg : `${where}: ${msg}`, { path: where, cause: e });
}

function checkOut(out: string): string {
  const dir = resolve(out);
  if (existsSync(dir) && !statSync(dir).isDirectory())
    throw new UserError(`${out}: exists and is not a folder`);
  return dir;
}

/** Refuse combinations of options that do not make sense, before any work. */
function checkExportOptions(opts: ExportOptions): void {
  if (!opts.out) throw new UserError('no output folder: pass -o DIR');
  const fromCkpt = opts.ddpm !== undefined || opts.head !== undefined;
  if (opts.randomInit && fromCkpt)
    throw new UserError('--random-init cannot be combined with --ddpm/--head');
  if (!opts.randomInit && opts.config !== undefined)
    throw new UserError(
      '--config is for --random-init (a trained model takes its config from the checkpoints)',
    );
  if (!opts.randomInit && (opts.ddpm === undefined || opts.head === undefined))
    throw new UserError('pass --ddpm CKPT and --head CKPT, or --config FILE --random-init');
  if (
    fromCkpt &&
    (opts.mode !== undefined || opts.imageSize !== undefined || opts.seed !== undefined)
  )
    throw new UserError(
      '--mode, --image-size and --seed apply to --random-init only (a trained model keeps its own)',
    );
  if (opts.precision === 'int8' && !opts.calibration)
    throw new UserError(
      '--precision int8 needs --calibration DIR: a folder of pairs (ir/, vi/) like those the model will fuse, e.g. training pairs',
    );
  if (
    opts.precision !== 'int8' &&
    (opts.calibration !== undefined || opts.floatConvs !== undefined)
  )
    throw new UserError('--calibration and --float-convs are for --precision int8');
}

/**
 * Calibration inputs for int8: `count` pairs spread over the folder, each cropped to the
 * model's size multiple (centred), with the noise dif-fuse feeds for seed 0.
 */
async function* calibrationInputs(
  scan: PairScan,
  count: number,
  multiple: number,
  steps: number,
): AsyncGenerator<import('@dif-fusion/onnx').CalibrationInput> {
  const { cropFloat, readPair, pairToFloat } = await import('@dif-fusion/io');
  const { cellNoise } = await import('@dif-fusion/schedules');
  const noise = cellNoise(0, steps, 4);
  const n = Math.min(count, scan.pairs.length);
  for (let i = 0; i < n; i++) {
    const pair = scan.pairs[Math.floor((i * scan.pairs.length) / n)];
    const { ir, vi } = pairToFloat(await readPair(pair, { resize: true }));
    const h = Math.floor(ir.height / multiple) * multiple;
    const w = Math.floor(ir.width / multiple) * multiple;
    if (h === 0 || w === 0)
      throw new UserError(
        `${pair.ir}: ${ir.width}x${ir.height} is smaller than the model's size multiple ${multiple}`,
      );
    const crop = (img: typeof ir) =>
      cropFloat(img, (img.width - w) >> 1, (img.height - h) >> 1, w, h).data;
    yield { ir: crop(ir), vis: crop(vi), noise: noise(0, 0, h, w), height: h, width: w };
  }
}

type PairScan = Awaited<ReturnType<typeof import('@dif-fusion/io').scanPairs>>;

/** --precision int8: the calibration pairs, scanned before any export work. */
async function scanCalibration(opts: ExportOptions): Promise<PairScan> {
  const { scanPairs, describeUnmatched } = await import('@dif-fusion/io');
  let scan: PairScan;
  try {
    scan = await scanPairs(resolve(opts.calibration!));
  } catch (e) {
    userError(opts.calibration!, e);
  }
  if (scan.pairs.length === 0)
    throw new UserError(
      `${opts.calibration}: no calibration pairs (${describeUnmatched(scan).join('; ') || 'ir/ and vi/ hold no matching images'})`,
    );
  return scan;
}

/** --precision int8: the written float folder quantized in place. */
async function quantizeExport(
  opts: ExportOptions,
  scan: PairScan,
  res: ExportResult,
  log: (l: string) => void,
) {
  const folder = resolve(opts.calibration!);
  const { quantizeModelFolder } = await import('@dif-fusion/export');
  const count = opts.calibrationPairs ?? 16;
  log(`int8: calibrating on ${Math.min(count, scan.pairs.length)} pairs of ${folder}`);
  try {
    const { config, record, nodes, bytes } = await quantizeModelFolder(
      res.dir,
      res.dir,
      calibrationInputs(scan, count, res.config.size_multiple, res.config.head.time_steps.length),
      {
        source: relative(resolve(res.dir), folder),
        floatConvs: opts.floatConvs ?? { first: 1, last: 2 },
        // 7-bit weights: the same results on AVX2 CPUs without VNNI (no int16 saturation),
        // at equal metrics on the shipped model (BENCHMARKS.md)
        reduceRange: true,
      },
    );
    // the report describes the written int8 graph, not the float one it replaced
    Object.assign(res, { config, nodes, bytes });
    log(
      `int8: ${record.convs} convolutions quantized (QDQ, u8 activations, s8 weights), ${record.float_convs} kept in float`,
    );
  } catch (e) {
    userError(opts.calibration!, e);
  }
}

type OnnxExport = typeof import('@dif-fusion/export');

/** Export a fusion model folder; returns what was written. */
export async function runExport(opts: ExportOptions): Promise<ExportResult> {
  const log = opts.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  checkExportOptions(opts);
  const dir = checkOut(opts.out);
  const calibration = opts.precision === 'int8' ? await scanCalibration(opts) : undefined;
  // Loaded lazily: onnxruntime-node and the graph builder are only needed here.
  const onnx = await import('@dif-fusion/export');
  const res = opts.randomInit
    ? exportRandomInit(opts, dir, onnx, log)
    : exportCheckpoints(opts, dir, onnx, log);
  if (calibration) await quantizeExport(opts, calibration, res, log);
  report(log, res);
  return res;
}

/** --random-init: random weights for the networks a reference config describes. */
function exportRandomInit(
  opts: ExportOptions,
  dir: string,
  onnx: OnnxExport,
  log: (line: string) => void,
): ExportResult {
  const configPath = opts.config;
  if (!configPath)
    throw new UserError('--random-init needs --config FILE (config/fusion_train.json format)');
  const json = readJsonFile(configPath);
  const model = (json.model ?? {}) as Record<string, any>;
  if (!model.unet) throw new UserError(`${configPath}: model.unet is missing`);
  refuseSkipUnetFeatures(model.which_model_G, configPath);
  const schedule = model.beta_schedule?.train as NoiseScheduleConfig | undefined;
  if (!schedule) throw new UserError(`${configPath}: model.beta_schedule.train is missing`);
  const datasets = json.datasets as { train?: { resolution?: number } } | undefined;
  const imageSize =
    opts.imageSize ??
    model.unet.image_size ??
    model.diffusion?.image_size ??
    datasets?.train?.resolution ??
    160;
  const seed = opts.seed ?? 0;
  let unetCfg: UNetConfig;
  let headCfg: FusionHeadConfigInput;
  try {
    unetCfg = parseUNetConfig({ ...model.unet, image_size: imageSize });
    const mode =
      opts.mode ?? (json.model_df as { mode?: FusionHeadMode } | undefined)?.mode ?? 'full';
    headCfg = headConfigFromReference(json, unetCfg, { mode });
  } catch (e) {
    userError(configPath, e);
  }
  // PyTorch's default init (uniform) for both networks, the head's orthogonal init
  // included: fast at any size; orthogonalising the paper's 1024-channel convolutions
  // would take minutes and does not change the timing.
  const unet = new UNet(unetCfg, { init: 'torch' });
  const head = new FusionHead(headCfg, unetCfg);
  log(
    `dif-train export: random weights (seed ${seed}), UNet inner_channel ${unetCfg.inner_channel} x [${unetCfg.channel_multiplier}], head mode ${head.config.mode}, time steps [${head.config.time_steps}]`,
  );
  return writeModel(configPath, dir, opts, onnx, {
    unet,
    unetWeights: onnx.randomWeights(unet.params(), seed),
    head,
    headWeights: onnx.randomWeights(head.params(), seed, { orthogonal: 'uniform' }),
    schedule,
    seed,
    provenance: { source: 'random-init', config: resolve(configPath) },
  });
}

/**
 * The UNet config of a DDPM checkpoint: its model block (the one UNet config; `channel_mults`
 * in checkpoints written before the rename), else its training config's; a `learned_range`
 * DDPM's final conv has twice out_channel outputs (fusion reads decoder features only, but
 * the weights must load).
 */
function ddpmUnetConfig(ddpm: LoadedCheckpoint): UNetConfig {
  const cfg = ddpm.config as {
    model?: { unet?: Record<string, unknown>; diffusion?: { var_type?: VarType } };
    datasets?: { train?: { resolution?: number } };
  };
  let c: UNetConfig;
  try {
    const m = ddpm.model;
    c =
      m.channel_mults !== undefined || m.channel_multiplier !== undefined
        ? parseUNetConfig(m)
        : parseUNetConfig(cfg.model?.unet ?? {}, { image_size: cfg.datasets?.train?.resolution });
  } catch (e) {
    userError(ddpm.path, e);
  }
  return learnsVariance(cfg.model?.diffusion?.var_type)
    ? { ...c, out_channel: 2 * c.out_channel }
    : c;
}

/** The beta schedule a head checkpoint was trained with. */
function headSchedule(headCk: LoadedCheckpoint): NoiseScheduleConfig {
  const config = headCk.config as { model?: { beta_schedule?: { train?: NoiseScheduleConfig } } };
  const schedule =
    (headCk.extra.schedule as NoiseScheduleConfig | undefined) ??
    config.model?.beta_schedule?.train;
  if (!schedule)
    throw new UserError(
      `${headCk.path}: the checkpoint records no beta schedule (extra.schedule or config.model.beta_schedule.train)`,
    );
  return schedule;
}

/** A trained model: the DDPM and head checkpoints' weights and configs. */
function exportCheckpoints(
  opts: ExportOptions,
  dir: string,
  onnx: OnnxExport,
  log: (line: string) => void,
): ExportResult {
  const ddpm = loadOrExplain(opts.ddpm!, 'ddpm', opts.ema);
  const which = (ddpm.config as { model?: { which_model_G?: unknown } } | null)?.model
    ?.which_model_G;
  refuseSkipUnetFeatures(which, ddpm.path);
  const headCk = loadOrExplain(opts.head!, 'head');
  const unet = new UNet(ddpmUnetConfig(ddpm));
  let head: FusionHead;
  try {
    // the head's channels are the UNet's (a copy in older checkpoints must match it)
    head = new FusionHead(headCk.model as unknown as FusionHeadConfigInput, unet.config);
  } catch (e) {
    userError(headCk.path, e);
  }
  const schedule = headSchedule(headCk);
  // Each file's weights against its network, so a missing tensor or a wrong shape names the
  // file it is in (the export as a whole would blame the head).
  try {
    onnx.checkNetworkWeights('UNet', unet.params(), ddpm.weights);
  } catch (e) {
    userError(ddpm.path, e);
  }
  try {
    onnx.checkNetworkWeights('head', head.usedParams(), headCk.weights);
  } catch (e) {
    userError(headCk.path, e);
  }
  const { ddpm: trainedOn, ddpm_step: trainedStep } = headCk.extra as {
    ddpm?: string;
    ddpm_step?: number;
  };
  if (trainedOn && resolve(trainedOn) !== ddpm.path)
    log(
      `note: the head was trained on ${trainedOn}${trainedStep !== undefined ? ` (step ${trainedStep})` : ''}, exporting it with ${ddpm.path} (step ${ddpm.step})`,
    );
  log(
    `dif-train export: DDPM ${ddpm.path} (step ${ddpm.step}${opts.ema ? ', EMA weights' : ''}), head ${headCk.path} (step ${headCk.step}), head mode ${head.config.mode}, time steps [${head.config.time_steps}]`,
  );
  return writeModel(headCk.path, dir, opts, onnx, {
    unet,
    unetWeights: ddpm.weights,
    head,
    headWeights: headCk.weights,
    schedule,
    // Paths relative to the model folder (no absolute path of the exporting machine leaks
    // into a published config.json) and the files' SHA-256, which identify them anywhere.
    provenance: {
      source: 'checkpoints',
      ddpm_checkpoint: relative(resolve(dir), ddpm.path),
      ddpm_sha256: sha256File(ddpm.path),
      ddpm_step: ddpm.step,
      head_checkpoint: relative(resolve(dir), headCk.path),
      head_sha256: sha256File(headCk.path),
      head_step: headCk.step,
    },
  });
}

function sha256File(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

function loadOrExplain(path: string, kind: 'ddpm' | 'head', ema = false): LoadedCheckpoint {
  try {
    return loadCheckpoint(path, kind, { ema });
  } catch (e) {
    userError(path, e);
  }
}

/** Write the model folder with the options' opset and external-data policy. */
function writeModel(
  where: string,
  dir: string,
  opts: ExportOptions,
  onnx: OnnxExport,
  model: Omit<Parameters<OnnxExport['exportFusionModel']>[1], 'opset' | 'externalData'>,
): ExportResult {
  try {
    return onnx.exportFusionModel(dir, {
      ...model,
      opset: opts.opset,
      externalData: opts.externalData,
      provenance: { ...model.provenance, exporter: 'dif-train export' },
    });
  } catch (e) {
    userError(where, e);
  }
}

function report(log: (l: string) => void, r: ExportResult): void {
  const mb = (r.bytes / 1e6).toFixed(1);
  log(
    `wrote ${r.dir}: model.onnx${r.config.external_data ? ' + model.onnx.data' : ''} (${mb} MB, ${r.weights.toLocaleString('en-US')} weights, ${r.nodes} nodes, opset ${r.config.opset}), config.json (noise levels [${r.config.noise_levels.map((l) => l.toFixed(6)).join(', ')}], feature indices [${r.config.feature_indices}])`,
  );
}

/** Register `dif-train export` on the CLI program. */
export function registerExportCommand(program: Command): void {
  program
    .command('export')
    .description('export a fusion model folder (model.onnx + config.json) for dif-fuse')
    .option('--ddpm <ckpt>', 'DDPM checkpoint: file, checkpoints folder or run folder (latest)')
    .option(
      '--head <ckpt>',
      'fusion head checkpoint: file, checkpoints folder or run folder (latest)',
    )
    .option(
      '--config <file>',
      'with --random-init: fusion config (config/fusion_train.json format)',
    )
    .option('--ema', "export the DDPM's EMA weights (trained with train.ema_decay)")
    .option('--random-init', 'random weights from --config (for benchmarks)')
    .requiredOption('-o, --out <dir>', 'output model folder')
    .option('--seed <n>', 'with --random-init: seed of the weights (default 0)', int('--seed', 0))
    .addOption(
      new Option(
        '--mode <mode>',
        'with --random-init: head mode (default model_df.mode, else full)',
      ).choices(['reference', 'full']),
    )
    .option(
      '--image-size <n>',
      'with --random-init: UNet image_size (where attention sits)',
      int('--image-size', 1),
    )
    .option('--opset <n>', 'ONNX opset (17 or later)', int('--opset', 17), 17)
    .addOption(
      new Option(
        '--external-data <when>',
        'weights in model.onnx.data: auto (past ~1.8 GB), always, never',
      )
        .choices(['auto', 'always', 'never'])
        .default('auto'),
    )
    .addOption(
      new Option(
        '--precision <p>',
        'fp32, or int8: convolutions quantized (QDQ), calibrated on --calibration pairs',
      )
        .choices(['fp32', 'int8'])
        .default('fp32'),
    )
    .option('--calibration <dir>', 'with --precision int8: pairs folder (ir/, vi/) to calibrate on')
    .option(
      '--float-convs <first,last>',
      'with --precision int8: convs kept in float at the start and end of the graph (default 1,2)',
      (v: string) => {
        const m = /^(\d+),(\d+)$/.exec(v);
        if (!m) throw new InvalidArgumentError('--float-convs takes two counts like 1,2');
        return { first: Number(m[1]), last: Number(m[2]) };
      },
    )
    .option(
      '--calibration-pairs <n>',
      'with --precision int8: pairs to calibrate on (default 16)',
      int('--calibration-pairs', 1),
    )
    .addHelpText(
      'after',
      `
Examples:
  dif-train export --ddpm runs/ddpm --head runs/head -o models/mine
  dif-train export --config config/fusion_train.json --random-init -o /tmp/paper-size
  dif-train export --ddpm runs/ddpm --head runs/head -o models/mine-int8 \\
    --precision int8 --calibration data/train`,
    )
    .option(QUIET_FLAGS, QUIET_HELP)
    .action(async (o: Record<string, unknown>) => {
      await runExport({
        log: quietLog(o),
        ddpm: o.ddpm as string | undefined,
        head: o.head as string | undefined,
        ema: o.ema === true,
        config: o.config as string | undefined,
        randomInit: Boolean(o.randomInit),
        out: o.out as string,
        seed: o.seed as number | undefined,
        mode: o.mode as FusionHeadMode | undefined,
        imageSize: o.imageSize as number | undefined,
        opset: o.opset as number,
        externalData: o.externalData as 'auto' | 'always' | 'never',
        precision: o.precision as 'fp32' | 'int8',
        calibration: o.calibration as string | undefined,
        calibrationPairs: o.calibrationPairs as number | undefined,
        floatConvs: o.floatConvs as { first: number; last: number } | undefined,
      });
    });
}
