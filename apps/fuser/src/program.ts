/**
 * The `dif-fuse` command line: argument parsing, validation of every input before any work,
 * the batch loop with its progress bar and summary, and one-line errors.
 */

import { accessSync, constants, existsSync, mkdirSync, realpathSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { basename, dirname, join, resolve } from 'node:path';
import { Progress, reportError } from '@dif-fusion/cli-kit';
import {
  DEFAULT_MAX_PIXELS,
  describeUnmatched,
  formatError,
  formatFromPath,
  type ImageFormat,
  removeStaleTempFiles,
  scanPairs,
  writeFileAtomic,
} from '@dif-fusion/io';
import { Command, InvalidArgumentError, Option } from 'commander';
import { deviceOption, intArg, threadsOption, tileArg } from './args';
import { findPairFolders } from './batch';
import { FuseError } from './errors';
import { registerEvalCommand } from './eval/index';
import { fuseImages, type OpenedFuser, openFuser } from './fuse';
import {
  encodePlanar,
  type ImageSource,
  OUTPUT_EXTENSIONS,
  outputFormat,
  type Planar,
  readPair as readImagePair,
  sideBySide,
  writeImage,
} from './images';
import { BASELINES, METHODS } from './methods';
import { AUTO_TILE_PIXELS, DEFAULT_MEMORY_BUDGET, DEFAULT_OVERLAP, DEFAULT_TILE } from './pipeline';
import { registerQueueCommands } from './queue/cli';
import { registerServeCommand } from './serve/command';
import { runVideoFlags, type VideoFlags } from './video/cli';
import { isVideoJob } from './video/run';

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

/** `-` as a file name: stdin for --ir/--vis, stdout for -o. */
const STDIO = '-';

/** The flags of `dif-fuse`: the video branch's, plus those of image pairs and batches. */
interface FuseFlags extends VideoFlags {
  recursive?: boolean;
  skipExisting?: boolean;
  format?: string;
  maxPixels?: number;
  allowCorrupt?: boolean;
}

export function buildProgram(io: CliIo): Command {
  const program = new Command('dif-fuse');
  program
    .description(
      'Fuse infrared and visible images with a Dif-Fusion ONNX model or a classical baseline.',
    )
    .enablePositionalOptions()
    // `dif-fuse help eval` as well as `dif-fuse eval --help` (commander adds the help command
    // only to programs without an action of their own).
    .helpCommand('help [command]', 'show the help of a command (dif-fuse help eval)')
    .version(packageVersion(), '-V, --version', 'print the version and exit')
    .showHelpAfterError(false)
    .configureOutput({
      writeOut: (s) => io.out(s.replace(/\n$/, '')),
      writeErr: (s) => io.err(s.replace(/\n$/, '')),
      outputError: (s, write) => write(`error: ${s.replace(/^error: /, '').trim()}`),
    })
    .exitOverride()
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
      `working-memory budget of one model run for --tile auto (default ${DEFAULT_MEMORY_BUDGET / 1e6})`,
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
      await runFuse(flags, io);
    });
  registerEvalCommand(program, io);
  registerQueueCommands(program, io);
  registerServeCommand(program, io);
  return program;
}

interface Job {
  name: string;
  ir: string;
  vis: string;
  out: string;
}

function fail(msg: string, code = 2): never {
  throw new FuseError(msg, code);
}

function checkOutputDir(dir: string): void {
  try {
    if (existsSync(dir) && !statSync(dir).isDirectory())
      fail(`${dir}: output folder is not a folder`, 1);
    mkdirSync(dir, { recursive: true });
    accessSync(dir, constants.W_OK);
    // Temporary files of outputs whose run was killed mid-write (owner process gone).
    removeStaleTempFiles(dir);
  } catch (err) {
    if (err instanceof FuseError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    fail(`${dir}: output folder is not writable (${code ?? formatError(err)})`, 1);
  }
}

function real(p: string): string {
  try {
    return realpathSync(p);
  } catch {
    return resolve(p);
  }
}

function validate(f: FuseFlags): void {
  const single = f.ir !== undefined || f.vis !== undefined;
  if (single && f.pairs) fail('--pairs cannot be combined with --ir/--vis');
  if (!single && !f.pairs)
    fail('give --ir and --vis (one pair) or --pairs DIR (a folder); see --help');
  if (single && (!f.ir || !f.vis))
    fail(`--${f.ir ? 'vis' : 'ir'} is missing: a pair needs both --ir and --vis`);
  if (!f.output) fail(single ? '-o FILE is required' : '-o DIR is required');
  if (f.ir === STDIO && f.vis === STDIO)
    fail('--ir - and --vis - cannot both read stdin: give one of them as a file');
  if (f.output === STDIO && !single)
    fail('-o - writes one image to stdout; with --pairs, -o takes a folder');
  if (f.format && !single) fail('--format applies to --ir/--vis; with --pairs use --ext');
  if (
    f.format &&
    !(OUTPUT_EXTENSIONS as readonly string[]).includes(f.format.replace(/^\./, '').toLowerCase())
  )
    fail(`unsupported --format ${f.format}: use ${OUTPUT_EXTENSIONS.join(', ')}`);
  if (f.output === STDIO && !f.format)
    fail('-o - writes to stdout: give the format with --format (png, jpg, tif, webp, bmp)');
  if (f.sideBySide === STDIO) fail('--side-by-side takes a file name, not - (stdout)');
  if (f.recursive && !f.pairs) fail('--recursive applies to --pairs only');
  if (single && f.ext)
    fail(
      '--ext applies to --pairs only; with --ir/--vis the output format comes from the -o extension',
    );
  if (f.pairs && f.sideBySide) fail('--side-by-side applies to a single pair (--ir/--vis) only');
  if (
    f.ext &&
    !(OUTPUT_EXTENSIONS as readonly string[]).includes(f.ext.replace(/^\./, '').toLowerCase())
  )
    fail(`unsupported --ext ${f.ext}: use ${OUTPUT_EXTENSIONS.join(', ')}`);
  if (f.method !== 'model' && f.model)
    fail(`--model applies to --method model only, not ${f.method}`);
  if (f.tile === 'off' && f.overlap !== undefined)
    fail('--overlap needs tiling, but --tile is off');
  if (typeof f.tile === 'number' && f.overlap !== undefined && 2 * f.overlap >= f.tile)
    fail(`--overlap ${f.overlap} must be less than half the tile size ${f.tile}`);
  if (typeof f.tile === 'number' && f.overlap === undefined && 2 * DEFAULT_OVERLAP >= f.tile)
    f.overlap = Math.floor(f.tile / 4);
}

/** The jobs of a run, with every path checked (inputs exist, outputs writable, no input overwritten). */
async function planJobs(f: FuseFlags, io: CliIo): Promise<Job[]> {
  const jobs: Job[] = [];
  const outDirs = new Set<string>();
  if (f.pairs) {
    const outDir = resolve(f.output!);
    if (existsSync(outDir) && !statSync(outDir).isDirectory())
      fail(`${outDir}: output folder is not a folder`, 1);
    const ext = (f.ext ?? 'png').replace(/^\./, '').toLowerCase();
    for (const folder of await findPairFolders(f.pairs, f.recursive)) {
      const scan = await scanPairs(folder.dir).catch((err) => {
        // Below a --recursive root, a folder whose ir/ and vi/ share no name is skipped.
        if (!f.recursive) throw err;
        if (!f.quiet) io.err(`warning: ${formatError(err)}, skipped`);
        return null;
      });
      if (!scan) continue;
      if (!f.quiet)
        for (const line of describeUnmatched(scan))
          io.err(`warning: skipping unmatched files: ${line}`);
      const dir = join(outDir, folder.rel);
      for (const p of scan.pairs)
        jobs.push({
          name: join(folder.rel, p.name),
          ir: p.ir,
          vis: p.vi,
          out: join(dir, `${p.name}.${ext}`),
        });
      outDirs.add(dir);
    }
    if (jobs.length === 0) fail(`${f.pairs.join(' ')}: no infrared/visible pairs found`, 1);
  } else {
    for (const [flag, p] of [
      ['--ir', f.ir!],
      ['--vis', f.vis!],
    ] as const) {
      if (p === STDIO) continue;
      if (!existsSync(p)) fail(`${p}: no such file (${flag})`, 1);
      if (!statSync(p).isFile()) fail(`${p}: not a file (${flag})`, 1);
    }
    for (const [flag, o] of [
      ['-o', f.output!],
      ['--side-by-side', f.sideBySide],
    ] as const)
      if (o && o !== STDIO && existsSync(o) && statSync(o).isDirectory())
        fail(
          `${o}: is a folder; with --ir/--vis, ${flag} takes an image file name such as ${join(o, `${basename(f.ir!).replace(/\.[^.]*$/, '')}.png`)} (--pairs writes into a folder)`,
          1,
        );
    if (!f.format) outputFormat(f.output!);
    if (f.sideBySide) outputFormat(f.sideBySide);
    const toStdout = f.output === STDIO;
    jobs.push({
      name: f.ir === STDIO ? basename(f.vis!) : basename(f.ir!),
      ir: f.ir!,
      vis: f.vis!,
      out: toStdout ? STDIO : resolve(f.output!),
    });
    if (!toStdout) outDirs.add(dirname(resolve(f.output!)));
    if (f.sideBySide) outDirs.add(dirname(resolve(f.sideBySide)));
  }
  // Never overwrite an input (compared after resolving links).
  const inputs = new Set<string>();
  for (const j of jobs) {
    inputs.add(real(j.ir));
    inputs.add(real(j.vis));
  }
  const outs = new Set<string>();
  for (const j of jobs) {
    for (const o of [j.out, ...(f.sideBySide ? [resolve(f.sideBySide)] : [])]) {
      if (o === STDIO) continue;
      if (inputs.has(real(o)))
        fail(`${o}: refusing to overwrite an input, choose another output`, 1);
      if (outs.has(o)) fail(`${o}: two outputs would be written to this file`, 1);
      outs.add(o);
    }
  }
  for (const d of outDirs) checkOutputDir(d);
  return jobs;
}

interface Pair {
  ir: Planar;
  vis: Planar;
}

/** All of stdin, for `--ir -` / `--vis -`. */
async function readAllStdin(): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** Writes bytes to stdout and waits until they are flushed (a pipe may be slow). */
function writeAllStdout(data: Uint8Array): Promise<void> {
  return new Promise((res, rej) => process.stdout.write(data, (e) => (e ? rej(e) : res())));
}

/** --ir/--vis as a source: a path, or stdin's bytes for `-`. */
async function inputSource(path: string, flag: string, io: CliIo): Promise<ImageSource> {
  if (path !== STDIO) return path;
  if (io.stdinIsTTY ?? process.stdin.isTTY === true)
    fail(`${flag} - reads an image from stdin, but stdin is a terminal: pipe an image into it`);
  const bytes = await (io.readStdin ?? readAllStdin)();
  if (bytes.length === 0) fail(`<stdin>: empty, no image was piped in (${flag} -)`, 1);
  return { name: '<stdin>', bytes };
}

async function runFuse(f: FuseFlags, io: CliIo): Promise<void> {
  if (isVideoJob(f.ir, f.vis, f.output)) return runVideoFlags(f, io);
  validate(f);
  const toStdout = f.output === STDIO;
  if (toStdout && (io.stdoutIsTTY ?? process.stdout.isTTY === true))
    fail(
      '-o - writes a binary image to stdout, but stdout is a terminal: redirect it (> fused.png or | ...)',
    );
  // With the image on stdout, the summary goes to stderr.
  const say = toStdout ? io.err : io.out;
  const jobs = await planJobs(f, io);
  const skipped = f.skipExisting ? jobs.filter((j) => j.out !== STDIO && existsSync(j.out)) : [];
  const todo = jobs.filter((j) => !skipped.includes(j));
  if (skipped.length && !f.quiet)
    io.err(
      `skipping ${skipped.length} pair${skipped.length === 1 ? '' : 's'} whose output exists (--skip-existing)`,
    );
  const readPair = async (job: Job): Promise<Pair> =>
    readImagePair(await inputSource(job.ir, '--ir', io), await inputSource(job.vis, '--vis', io), {
      maxPixels: f.maxPixels === undefined ? undefined : f.maxPixels * 1e6,
      allowCorrupt: f.allowCorrupt,
      onWarning: (w) => io.err(`warning: ${w}`),
    });
  // One pair: read and check it before the (slow) model load, so a bad input fails at once.
  const first = f.pairs || todo.length === 0 ? undefined : await readPair(todo[0]);
  const format: ImageFormat | undefined = f.format ? formatFromPath(`x.${f.format}`) : undefined;

  const fuser: OpenedFuser | undefined =
    todo.length === 0
      ? undefined
      : await openFuser({
          method: f.method,
          model: f.model,
          device: f.device,
          threads: f.threads,
          seed: f.seed,
        });
  try {
    if (!f.quiet && fuser?.provider)
      io.err(`dif-fuse: model ${fuser.modelDir}, provider ${fuser.provider}`);
    const batch = f.pairs !== undefined;
    // One pair: progress over its tiles; a batch: over its pairs (plain lines off a terminal).
    const progress = new Progress({
      label: batch ? 'fuse' : 'tiles',
      unit: batch ? 'pairs' : 'tiles',
      stream: io.progressStream ?? process.stderr,
      quiet: f.quiet,
      intervalMs: 10_000,
    });
    const tiles = {
      tile: f.tile,
      overlap: f.overlap,
      memoryBudget: f.memory === undefined ? undefined : f.memory * 1e6,
    };
    const t0 = performance.now();
    let pixels = 0;
    const failures: string[] = [];
    if (batch) progress.start(todo.length);
    let started = false;
    for (const job of todo) {
      try {
        const { ir, vis } = first ?? (await readPair(job));
        const fused = await fuseImages(ir, vis, fuser!, {
          ...tiles,
          onProgress: batch
            ? undefined
            : (d, t) => {
                if (t <= 1) return;
                if (!started) progress.start(t);
                started = true;
                progress.update(d);
              },
        });
        if (job.out === STDIO)
          await (io.writeStdout ?? writeAllStdout)(await encodePlanar(fused, format!));
        else if (format) await writeFileAtomic(job.out, await encodePlanar(fused, format));
        else await writeImage(job.out, fused);
        if (f.sideBySide) await writeImage(resolve(f.sideBySide), sideBySide(fused, vis, ir));
        pixels += fused.width * fused.height;
      } catch (err) {
        if (!batch) throw err;
        failures.push(`${job.name}: ${formatError(err)}`);
      }
      if (batch) progress.increment(1, { extra: job.name });
    }
    progress.stop();
    const secs = (performance.now() - t0) / 1000;
    const ok = todo.length - failures.length;
    for (const m of failures) io.err(`error: ${m}`);
    if (!f.quiet) {
      const where = f.pairs ? resolve(f.output!) : toStdout ? 'stdout' : jobs[0].out;
      const kept = skipped.length ? `, ${skipped.length} kept (--skip-existing)` : '';
      say(
        `fused ${ok} image${ok === 1 ? '' : 's'} in ${secs.toFixed(2)} s (${(pixels / 1e6 / Math.max(secs, 1e-9)).toFixed(3)} MP/s)${kept} -> ${where}`,
      );
      if (f.sideBySide)
        say(`side by side (fused | visible | infrared) -> ${resolve(f.sideBySide)}`);
    }
    if (failures.length) fail(`${failures.length} of ${todo.length} pairs failed`, 1);
  } finally {
    await fuser?.release();
  }
}

/** Runs the CLI; resolves to the exit code. Never throws. */
export async function main(argv: string[], io: CliIo = defaultIo()): Promise<number> {
  const program = buildProgram(io);
  try {
    await program.parseAsync(argv, { from: 'user' });
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
