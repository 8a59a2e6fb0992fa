/**
 * The `dif-fuse` command line: its options and subcommands, and `main`.
 * Each command's work lives in its own module, imported when the command runs
 * (commands/fuse.ts, eval/, queue/, serve/, video/), so `--help` and a fusion load only what
 * they use.
 */

import { createRequire } from 'node:module';
import { reportError } from '@dif-fusion/cli-kit';
import { DEFAULT_MAX_PIXELS } from '@dif-fusion/io';
import { Command, InvalidArgumentError, Option } from 'commander';
import type { AlignFlags } from './align/apply';
import { registerAlignCommand } from './align/command';
import { deviceOption, intArg, threadsOption, tileArg } from './args';
import { OUTPUT_EXTENSIONS } from './images';
import { addLazyCommands, rewriteHelpOfLazy } from './lazy-commands';
import { BASELINES, METHODS } from './methods';
import { AUTO_TILE_PIXELS, DEFAULT_OVERLAP, DEFAULT_TILE } from './pipeline';
import type { VideoFlags } from './video/cli';

/** This package's version (package.json beside src/ and dist/, in the repository and on npm). */
function packageVersion(): string {
  return (createRequire(import.meta.url)('../package.json') as { version: string }).version;
}

export interface CliIo {
  out: (s: string) => void;
  err: (s: string) => void;
  /** Progress stream: a bar on a TTY, plain periodic lines otherwise (default stderr). */
  progressStream?: { write(s: string): unknown; isTTY?: boolean };
  /** Reads all of stdin (`--ir -` / `--vis -`); default: process.stdin. */
  readStdin?: () => Promise<Buffer>;
  /** Writes bytes to stdout (`-o -`); default: process.stdout. */
  writeStdout?: (data: Uint8Array) => Promise<void>;
  /** Whether stdin / stdout are terminals (binary images are not read from or written to one). */
  stdinIsTTY?: boolean;
  stdoutIsTTY?: boolean;
}

/** The flags of `dif-fuse`: the video branch's, plus those of image pairs and batches. */
export interface FuseFlags extends VideoFlags, AlignFlags {
  recursive?: boolean;
  skipExisting?: boolean;
  format?: string;
  maxPixels?: number;
  allowCorrupt?: boolean;
}

export function buildProgram(io: CliIo): Command {
  const program = configureProgram(new Command('dif-fuse'), io);
  program
    .description(
      'Fuse infrared and visible images with a Dif-Fusion ONNX model or a classical baseline.',
    )
    .version(packageVersion(), '-V, --version', 'print the version and exit')
    .option(
      '--ir <file>',
      'infrared image (8- or 16-bit; colour IR is averaged to gray); - reads stdin',
    )
    .option('--vis <file>', 'visible image (RGB or gray); - reads stdin')
    .option(
      '-o, --output <path>',
      'output image (with --ir/--vis; - writes to stdout, with --format) or output folder (with --pairs)',
    )
    .option(
      '--format <fmt>',
      `output format of -o, instead of its extension (needed for -o -): ${OUTPUT_EXTENSIONS.join(', ')}`,
    )
    .option(
      '--pairs <dirs...>',
      "fuse every pair of folders holding ir/ and vi/ (matched by file name); also quoted glob patterns of such folders ('data/seq*'), written to OUTDIR/<folder>/",
    )
    .option(
      '-r, --recursive',
      'with --pairs: also every sub-folder holding ir/ and vi/, written to OUTDIR/<sub-folder>/',
    )
    .option(
      '--skip-existing',
      'keep outputs that already exist (a rerun after an interrupted batch continues where it stopped)',
    )
    .option(
      '--ext <ext>',
      `output format in batch mode: ${OUTPUT_EXTENSIONS.join(', ')} (default png)`,
    )
    .addOption(
      new Option('--method <name>', 'fusion method')
        .choices(METHODS as unknown as string[])
        .default('model'),
    )
    .option('--model <dir>', 'model folder (model.onnx + config.json); default: the shipped model')
    .option(
      '--seed <n>',
      'noise seed: the same inputs and seed give byte-identical output',
      intArg('--seed', 0),
      0,
    )
    .addOption(deviceOption())
    .addOption(threadsOption())
    .option(
      '--tile <size>',
      `tile edge in pixels (multiple of 16), off, or auto: the whole image when the model's working memory fits --memory, else the largest tiles that fit (baselines: ${DEFAULT_TILE}px tiles above ${AUTO_TILE_PIXELS / 1024 / 1024} MP)`,
      tileArg,
      'auto',
    )
    .option(
      '--overlap <px>',
      `overlap between tiles (default ${DEFAULT_OVERLAP}, at most a quarter of the tile)`,
      intArg('--overlap', 0),
    )
    .option(
      '--memory <MB>',
      'working-memory budget of one model run for --tile auto (default: 75% of the memory available now, under the cgroup limit if any)',
      intArg('--memory', 64),
    )
    .option(
      '--side-by-side <file>',
      'also write fused | visible | infrared side by side (single pair only)',
    )
    .option(
      '--max-pixels <MP>',
      `refuse inputs above this many megapixels, from their header, before decoding (default ${DEFAULT_MAX_PIXELS / 1e6}; larger images are fused in tiles)`,
      (v: string) => {
        const n = Number(v);
        if (!/^\d+(\.\d+)?$/.test(v.trim()) || !(n > 0))
          throw new InvalidArgumentError('--max-pixels must be a positive number of megapixels');
        return n;
      },
    )
    .option(
      '--allow-corrupt',
      'read damaged images (corrupt JPEG data, truncated TIFF/PNG) as far as they decode, with a warning, instead of failing',
    )
    .addOption(
      new Option('--pair-by <how>', 'video: pair frames by index or by timestamp')
        .choices(['index', 'timestamp'])
        .default('index'),
    )
    .option(
      '--fps <n>',
      "video: output frame rate (default: the IR video's; 25 for image sequences)",
      (v: string) => {
        const n = Number(v);
        if (!(n > 0) || !Number.isFinite(n))
          throw new InvalidArgumentError('--fps must be a positive number');
        return n;
      },
    )
    .option('--keep-frames', 'video: keep the folder of fused frames after encoding')
    .option(
      '--align <rig.json|auto>',
      'pairs of a camera rig (other sizes, fields of view): warp the visible image onto the infrared grid with the rig file of dif-fuse align, or register each pair (auto)',
    )
    .addOption(
      new Option(
        '--onto <grid>',
        'with --align/--resize: the output grid (vis: upsample the infrared)',
      ).choices(['ir', 'vis']),
    )
    .addOption(
      new Option(
        '--crop <what>',
        'with --align/--resize: cut the output to the common overlap',
      ).choices(['overlap']),
    )
    .option(
      '--resize',
      'pairs that differ only in resolution (same field of view): scale the visible image onto the infrared grid (--onto vis: the other way)',
    )
    .option('-q, --quiet', 'no progress bar, provider line or summary')
    .addHelpText(
      'after',
      [
        '',
        'Examples:',
        '  dif-fuse --ir ir.png --vis vis.jpg -o fused.png --side-by-side compare.png',
        '  dif-fuse --pairs data/test -o out/fused --ext jpg      (data/test holds ir/ and vi/)',
        '  dif-fuse --pairs data/test -o out/ycbcr-max --method ycbcr-max',
        '  dif-fuse --ir ir.mp4 --vis vis.mp4 -o fused.mp4     (videos or folders of frames; ffmpeg)',
        '  dif-fuse queue add --pairs data/test --out out/fused --redis redis://host:6379',
        '  dif-fuse worker --redis redis://host:6379 --concurrency 1',
        '  dif-fuse eval --pairs data/test --fused out/fused --fused out/ycbcr-max',
        '',
        'The output format follows the -o extension (png, jpg, tif, webp, bmp). Inputs are never',
        'overwritten. The same inputs, model and --seed give byte-identical output.',
      ].join('\n'),
    )
    .action(async (flags: FuseFlags) => {
      await (await import('./commands/fuse')).runFuse(flags, io);
    });
  registerAlignCommand(program, io);
  // eval, queue, worker, serve: stand-ins that load their module when they run.
  addLazyCommands(program, io, (fresh) => configureProgram(fresh, io));
  return program;
}

/** Output, errors and parsing settings shared by the program and its lazily loaded commands. */
function configureProgram(program: Command, io: CliIo): Command {
  return (
    program
      .enablePositionalOptions()
      // `dif-fuse help eval` as well as `dif-fuse eval --help` (commander adds the help command
      // only to programs without an action of their own).
      .helpCommand('help [command]', 'show the help of a command (dif-fuse help eval)')
      .showHelpAfterError(false)
      .configureOutput({
        writeOut: (s) => io.out(s.replace(/\n$/, '')),
        writeErr: (s) => io.err(s.replace(/\n$/, '')),
        outputError: (s, write) => write(`error: ${s.replace(/^error: /, '').trim()}`),
      })
      .exitOverride()
  );
}

/** Runs the CLI; resolves to the exit code. Never throws. */
export async function main(argv: string[], io: CliIo = defaultIo()): Promise<number> {
  const program = buildProgram(io);
  try {
    await program.parseAsync(rewriteHelpOfLazy(argv), { from: 'user' });
    return 0;
  } catch (err) {
    return reportError(err, io.err);
  }
}

export function defaultIo(): CliIo {
  return {
    out: (s) => process.stdout.write(`${s}\n`),
    err: (s) => process.stderr.write(`${s}\n`),
    progressStream: process.stderr,
  };
}

export { BASELINES };
