/**
 * The `dif-train` command line: `ddpm`, `head`, `export`, `sample` and `import-torch`
 * subcommands.
 * {@link main} runs it and resolves to the exit code, as `dif-fuse`'s: 0 done, 1 failure
 * (one line `error: <problem>`; a NaN loss), 2 usage error, 130 interrupted.
 */
import { createRequire } from 'node:module';
import { EXIT, reportError } from '@dif-fusion/cli-kit';
import type { Device } from '@dif-fusion/onnx';
import { BACKEND_NAMES } from '@dif-fusion/tfjs';
import { Command, Option } from 'commander';
import { int, nonNegative, positive, QUIET_FLAGS, QUIET_HELP } from './cli-args';
import { registerExportCommand } from './commands/export';
import { registerImportTorchCommand } from './commands/import-torch';
import { registerSampleCommand } from './commands/sample';
import { trainDdpm } from './ddpm';
import { trainHead } from './head-train';
import type { TrainBackend } from './session';

/** This package's version (package.json beside src/ and dist/, in the repository and on npm). */
function packageVersion(): string {
  return (createRequire(import.meta.url)('../package.json') as { version: string }).version;
}

const backendOption = () =>
  new Option(
    '--backend <name>',
    'where training runs: onnxruntime (default: ONNX Runtime training graphs, CPU or --device cuda), or a tfjs backend: wasm, cpu, tensorflow, tensorflow-gpu',
  ).choices(['onnxruntime', ...BACKEND_NAMES]);

const deviceOption = () =>
  new Option(
    '--device <name>',
    'ONNX Runtime execution provider for --backend onnxruntime: cpu (default), cuda or auto',
  ).choices(['cpu', 'cuda', 'auto']);

/** The options both training commands share. */
function common(cmd: Command): Command {
  return cmd
    .option(
      '--data <dir>',
      'training pairs: a folder holding ir/ and vi/ (datasets.train.dataroot)',
    )
    .requiredOption(
      '-o, --out <dir>',
      'run folder (checkpoints/, log.jsonl, loss.png, PNGs, config.json)',
    )
    .addOption(backendOption())
    .addOption(deviceOption())
    .option(
      '--threads <n>',
      'ONNX Runtime intra-op threads (default: one per core)',
      int('--threads', 1),
    )
    .option('--batch <n>', 'batch size (datasets.train.batch_size)', int('--batch', 1))
    .option('--crop <n>', 'random crop size (datasets.train.resolution)', int('--crop', 8))
    .option('--lr <x>', 'learning rate (train.optimizer.lr)', positive('--lr'))
    .option('--seed <n>', 'seed of every random draw (default 0)', int('--seed', 0))
    .option(
      '--resume [ckpt]',
      'continue a run: its latest checkpoint in --out, or the given file/folder',
    )
    .option('--keep <n>', 'checkpoints kept (default 3, 0 = all)', int('--keep', 0))
    .option('--no-progress', 'plain progress lines instead of the bar')
    .option(QUIET_FLAGS, QUIET_HELP);
}

/** The values of the options {@link common} declares (commander hands them untyped). */
function commonValues(o: Record<string, unknown>) {
  return {
    config: o.config as string | undefined,
    data: o.data as string | undefined,
    out: o.out as string,
    backend: o.backend as TrainBackend | undefined,
    device: o.device as Device | undefined,
    threads: o.threads as number | undefined,
    batch: o.batch as number | undefined,
    crop: o.crop as number | undefined,
    lr: o.lr as number | undefined,
    seed: o.seed as number | undefined,
    resume: o.resume as boolean | string | undefined,
    keep: o.keep as number | undefined,
    progressBar: o.progress === false ? false : undefined,
    quiet: o.quiet === true ? true : undefined,
  };
}

/** Where a training command leaves the exit code of a run that ended early. */
export interface ExitState {
  code: number;
}

/** Run a training command; a NaN loss or Ctrl-C sets the exit code, errors propagate to main. */
async function runTraining(
  exit: ExitState,
  fn: () => Promise<{ stopped: 'done' | 'interrupted' | 'nan' }>,
): Promise<void> {
  const r = await fn();
  if (r.stopped === 'nan') exit.code = EXIT.failure;
  else if (r.stopped === 'interrupted') exit.code = EXIT.interrupted;
}

/** Register `dif-train ddpm`. */
export function registerDdpmCommand(program: Command, exit: ExitState = { code: 0 }): void {
  common(
    program
      .command('ddpm')
      .description(
        'train the 4-channel DDPM (visible RGB + infrared), reference config/ddpm_train.json format',
      )
      .option(
        '-c, --config <file>',
        'training config (reference ddpm_train.json format); default: the shipped small config',
      ),
  )
    .option('--iters <n>', 'total training steps (train.n_iter)', int('--iters', 1))
    .option(
      '--workers <n>',
      'data-parallel threads, gradients averaged each step (default: min(cores, 2))',
      int('--workers', 1),
    )
    .option(
      '--sample-steps <n>',
      'sampling steps of the validation grid (default 50)',
      int('--sample-steps', 1),
    )
    .option(
      '--gradient-checkpointing',
      'recompute activations in the backward pass: less memory where activations dominate (larger batches), some extra compute (model.unet.use_checkpoint; onnxruntime backend; may be switched on at --resume)',
    )
    .addHelpText(
      'after',
      `
Examples:
  dif-train ddpm --data ../shared/data/roadscene/train -o runs/ddpm
  dif-train ddpm -c config/ddpm_train.json --data DIR -o runs/ddpm --iters 20000 --workers 2
  dif-train ddpm -o runs/ddpm --resume            # after Ctrl-C: continues exactly`,
    )
    .action(async (o: Record<string, unknown>) => {
      await runTraining(exit, () =>
        trainDdpm({
          ...commonValues(o),
          iters: o.iters as number | undefined,
          workers: o.workers as number | undefined,
          sampleSteps: o.sampleSteps as number | undefined,
          gradientCheckpointing: o.gradientCheckpointing === true ? true : undefined,
        }),
      );
    });
}

/** Register `dif-train head`. */
export function registerHeadCommand(program: Command, exit: ExitState = { code: 0 }): void {
  common(
    program
      .command('head')
      .description(
        'train the fusion head on a frozen DDPM, reference config/fusion_train.json format',
      )
      .option(
        '-c, --config <file>',
        'training config (reference fusion_train.json format); default: the shipped one',
      )
      .option(
        '--ddpm <ckpt>',
        'DDPM checkpoint: file, checkpoints folder or ddpm run folder (latest)',
      )
      .option('--ema', "features from the DDPM's EMA weights (trained with train.ema_decay)"),
  )
    .option(
      '--val <dir>',
      'validation pairs (ir/ + vi/): loss and fused | visible | infrared PNG each epoch',
    )
    .option('--epochs <n>', 'epochs (train.n_epoch)', int('--epochs', 1))
    .addOption(
      new Option('--mode <mode>', 'head forward pass (default full)').choices([
        'reference',
        'full',
      ]),
    )
    .addOption(
      new Option(
        '--output <kind>',
        'head output (model_df.output): rgb (official), luma (lightness change on the visible image, its chroma kept) or weight (per-pixel weight between the sources)',
      ).choices(['rgb', 'luma', 'weight']),
    )
    .option(
      '--source-skip',
      'feed the source images to the final layers too (model_df.source_skip)',
    )
    .addOption(
      new Option(
        '--noise <kind>',
        'feature noise: fixed (deterministic, default) or random (official)',
      ).choices(['fixed', 'random']),
    )
    .option(
      '--init <ckpt>',
      'start from the weights of a head checkpoint (fresh optimizer and schedule)',
    )
    .option(
      '--color-weight <x>',
      'weight of the chroma term |CbCr(F) - CbCr(V)| in the loss (train.loss.color_weight; 0 = official)',
      nonNegative('--color-weight'),
    )
    .option(
      '--alpha <x>',
      'weight of the gradient term |S(F) - max(S(V), S(I))| in the loss (train.loss.alpha; official 1)',
      nonNegative('--alpha'),
    )
    .addOption(
      new Option(
        '--loss-space <space>',
        'where the loss compares intensities and gradients: rgb (official, per channel) or luma (Y(F) against max(Y(V), I); for --output luma) (train.loss.space)',
      ).choices(['rgb', 'luma']),
    )
    .addOption(
      new Option(
        '--target <kind>',
        'what the loss compares against: max (official: max(V, I), max(S(V), S(I))) or salient (the infrared where it is informative, its texture kept out of well-exposed regions; needs --loss-space luma) (train.loss.target)',
      ).choices(['max', 'salient']),
    )
    .option(
      '--feature-cache <n>',
      'compute the DDPM features of n crops per training pair once and train on them (train.feature_cache; ~3.5x faster steps on wasm, ~1.6x on onnxruntime)',
      int('--feature-cache', 0),
    )
    .addHelpText(
      'after',
      `
Examples:
  dif-train head --ddpm runs/ddpm --data DIR/train --val DIR/test -o runs/head
  dif-train head -c config/fusion_train.json --ddpm runs/ddpm/checkpoints/ddpm-00020000.safetensors --data DIR -o runs/head`,
    )
    .action(async (o: Record<string, unknown>) => {
      await runTraining(exit, () =>
        trainHead({
          ...commonValues(o),
          ddpm: o.ddpm as string | undefined,
          ema: o.ema === true ? true : undefined,
          val: o.val as string | undefined,
          epochs: o.epochs as number | undefined,
          mode: o.mode as 'reference' | 'full' | undefined,
          output: o.output as 'rgb' | 'luma' | 'weight' | undefined,
          sourceSkip: o.sourceSkip as boolean | undefined,
          noise: o.noise as 'fixed' | 'random' | undefined,
          init: o.init as string | undefined,
          colorWeight: o.colorWeight as number | undefined,
          alpha: o.alpha as number | undefined,
          lossSpace: o.lossSpace as 'rgb' | 'luma' | undefined,
          target: o.target as 'max' | 'salient' | undefined,
          featureCache: o.featureCache as number | undefined,
        }),
      );
    });
}

export interface CliIo {
  out: (s: string) => void;
  err: (s: string) => void;
}

export function defaultIo(): CliIo {
  return {
    out: (s) => process.stdout.write(`${s}\n`),
    err: (s) => process.stderr.write(`${s}\n`),
  };
}

/** The whole `dif-train` program; a training run that ends early sets `exit.code`. */
export function createProgram(io: CliIo = defaultIo(), exit: ExitState = { code: 0 }): Command {
  const program = new Command('dif-train')
    .description(
      'Train the Dif-Fusion DDPM and fusion head in TypeScript; export to ONNX; import PyTorch checkpoints',
    )
    .version(packageVersion(), '-V, --version', 'print the version and exit')
    .showHelpAfterError(false)
    .addHelpText(
      'after',
      `
Examples:
  dif-train ddpm --data data/train -o runs/ddpm                  # 1. the DDPM (Ctrl-C, then --resume)
  dif-train head --ddpm runs/ddpm --data data/train --val data/test -o runs/head   # 2. the head
  dif-train export --ddpm runs/ddpm --head runs/head -o models/mine               # 3. ONNX model
  dif-fuse --ir ir.png --vis vis.png --model models/mine -o fused.png             # 4. use it
  dif-train sample --ddpm runs/ddpm -n 16 -o grid.png            # look at what the DDPM learnt
  dif-train ddpm --data data/train -o runs/ddpm -q               # -q: no progress output

Each command's options: dif-train help <command> (or <command> --help).`,
    );
  registerDdpmCommand(program, exit);
  registerHeadCommand(program, exit);
  registerExportCommand(program);
  registerSampleCommand(program);
  registerImportTorchCommand(program);
  for (const cmd of [program, ...program.commands])
    cmd.exitOverride().configureOutput({
      writeOut: (s) => io.out(s.replace(/\n$/, '')),
      writeErr: (s) => io.err(s.replace(/\n$/, '')),
    });
  return program;
}

/** Runs `dif-train argv...`; resolves to the exit code ({@link EXIT}). Never throws. */
export async function main(argv: string[], io: CliIo = defaultIo()): Promise<number> {
  const exit: ExitState = { code: EXIT.ok };
  try {
    await createProgram(io, exit).parseAsync(argv, { from: 'user' });
    return exit.code;
  } catch (err) {
    return reportError(err, io.err);
  }
}
