/**
 * The `dif-fuse` command line: argument parsing, validation of every input before any work,
 * the batch loop with its progress bar and summary, and one-line errors.
 */

import { accessSync, constants, existsSync, mkdirSync, realpathSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { basename, dirname, join, resolve } from 'node:path';
import {
  DEFAULT_MAX_PIXELS,
  describeUnmatched,
  formatError,
  removeStaleTempFiles,
  reportError,
  scanPairs,
} from '@dif-fusion/io';
import { SingleBar } from 'cli-progress';
import { Command, InvalidArgumentError, Option } from 'commander';
import { FuseError } from './errors';
import { registerEvalCommand } from './eval/index';
import { fuseImages, type OpenedFuser, openFuser } from './fuse';
import {
  OUTPUT_EXTENSIONS,
  outputFormat,
  type Planar,
  readPair as readImagePair,
  sideBySide,
  writeImage,
} from './images';
import { BASELINES, METHODS, type Method } from './methods';
import { AUTO_TILE_PIXELS, DEFAULT_MEMORY_BUDGET, DEFAULT_OVERLAP, DEFAULT_TILE } from './pipeline';
import { registerServeCommand } from './serve/command';

/** This package's version (package.json beside src/ and dist/, in the repository and on npm). */
function packageVersion(): string {
  return (createRequire(import.meta.url)('../package.json') as { version: string }).version;
}

export interface CliIo {
  out: (s: string) => void;
  err: (s: string) => void;
  /** Progress bar stream; a bar is drawn only on a TTY. */
  progressStream?: NodeJS.WriteStream;
}

interface FuseFlags {
  ir?: string;
  vis?: string;
  output?: string;
  pairs?: string;
  ext?: string;
  method: Method;
  model?: string;
  seed: number;
  device: 'auto' | 'cuda' | 'cpu';
  threads?: number;
  tile: number | 'auto' | 'off';
  overlap?: number;
  memory?: number;
  sideBySide?: string;
  quiet?: boolean;
  maxPixels?: number;
  allowCorrupt?: boolean;
}

const intArg =
  (name: string, min: number, max = 2 ** 32 - 1) =>
  (v: string) => {
    if (!/^-?\d+$/.test(v.trim())) throw new InvalidArgumentError(`${name} must be an integer`);
    const n = Number(v);
    if (n < min) throw new InvalidArgumentError(`${name} must be at least ${min}`);
    if (n > max) throw new InvalidArgumentError(`${name} must be at most ${max}`);
    return n;
  };

const tileArg = (v: string): number | 'auto' | 'off' => {
  if (v === 'auto' || v === 'off') return v;
  if (!/^\d+$/.test(v))
    throw new InvalidArgumentError('--tile must be a size in pixels, auto or off');
  const n = Number(v);
  if (n < 32 || n % 16 !== 0)
    throw new InvalidArgumentError('--tile must be a multiple of 16, at least 32');
  return n;
};

export function buildProgram(io: CliIo): Command {
  const program = new Command('dif-fuse');
  program
    .description(
      'Fuse infrared and visible images with a Dif-Fusion ONNX model or a classical baseline.',
    )
    .enablePositionalOptions()
    .version(packageVersion(), '-V, --version', 'print the version and exit')
    .showHelpAfterError(false)
    .configureOutput({
      writeOut: (s) => io.out(s.replace(/\n$/, '')),
      writeErr: (s) => io.err(s.replace(/\n$/, '')),
      outputError: (s, write) => write(`error: ${s.replace(/^error: /, '').trim()}`),
    })
    .exitOverride()
    .option('--ir <file>', 'infrared image (8- or 16-bit; colour IR is averaged to gray)')
    .option('--vis <file>', 'visible image (RGB or gray)')
    .option('-o, --output <path>', 'output image (with --ir/--vis) or output folder (with --pairs)')
    .option(
      '--pairs <dir>',
      'fuse every pair of a folder holding ir/ and vi/ (matched by file name)',
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
    .addOption(
      new Option('--device <device>', 'ONNX Runtime device')
        .choices(['auto', 'cuda', 'cpu'])
        .default('auto'),
    )
    .option(
      '--threads <n>',
      'CPU threads for ONNX Runtime (default: all cores)',
      intArg('--threads', 1, 1024),
    )
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
    .option('-q, --quiet', 'no progress bar, provider line or summary')
    .addHelpText(
      'after',
      [
        '',
        'Examples:',
        '  dif-fuse --ir ir.png --vis vis.jpg -o fused.png --side-by-side compare.png',
        '  dif-fuse --pairs data/test -o out/fused --ext jpg      (data/test holds ir/ and vi/)',
        '  dif-fuse --pairs data/test -o out/ycbcr-max --method ycbcr-max',
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
  const outDirs: string[] = [];
  if (f.pairs) {
    if (!existsSync(f.pairs)) fail(`${f.pairs}: no such folder (--pairs)`, 1);
    if (!statSync(f.pairs).isDirectory())
      fail(`${f.pairs}: not a folder (--pairs needs a folder holding ir/ and vi/)`, 1);
    const outDir = resolve(f.output!);
    if (existsSync(outDir) && !statSync(outDir).isDirectory())
      fail(`${outDir}: output folder is not a folder`, 1);
    const scan = await scanPairs(f.pairs);
    if (!f.quiet)
      for (const line of describeUnmatched(scan))
        io.err(`warning: skipping unmatched files: ${line}`);
    const ext = (f.ext ?? 'png').replace(/^\./, '').toLowerCase();
    for (const p of scan.pairs)
      jobs.push({ name: p.name, ir: p.ir, vis: p.vi, out: join(outDir, `${p.name}.${ext}`) });
    outDirs.push(outDir);
  } else {
    for (const [flag, p] of [
      ['--ir', f.ir!],
      ['--vis', f.vis!],
    ] as const) {
      if (!existsSync(p)) fail(`${p}: no such file (${flag})`, 1);
      if (!statSync(p).isFile()) fail(`${p}: not a file (${flag})`, 1);
    }
    for (const [flag, o] of [
      ['-o', f.output!],
      ['--side-by-side', f.sideBySide],
    ] as const)
      if (o && existsSync(o) && statSync(o).isDirectory())
        fail(
          `${o}: is a folder; with --ir/--vis, ${flag} takes an image file name such as ${join(o, `${basename(f.ir!).replace(/\.[^.]*$/, '')}.png`)} (--pairs writes into a folder)`,
          1,
        );
    outputFormat(f.output!);
    if (f.sideBySide) outputFormat(f.sideBySide);
    jobs.push({ name: basename(f.ir!), ir: f.ir!, vis: f.vis!, out: resolve(f.output!) });
    outDirs.push(dirname(resolve(f.output!)));
    if (f.sideBySide) outDirs.push(dirname(resolve(f.sideBySide)));
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

async function runFuse(f: FuseFlags, io: CliIo): Promise<void> {
  validate(f);
  const jobs = await planJobs(f, io);
  const readPair = (job: Job): Promise<Pair> =>
    readImagePair(job.ir, job.vis, {
      maxPixels: f.maxPixels === undefined ? undefined : f.maxPixels * 1e6,
      allowCorrupt: f.allowCorrupt,
      onWarning: (w) => io.err(`warning: ${w}`),
    });
  // One pair: read and check it before the (slow) model load, so a bad input fails at once.
  const first = f.pairs ? undefined : await readPair(jobs[0]);

  const fuser: OpenedFuser = await openFuser({
    method: f.method,
    model: f.model,
    device: f.device,
    threads: f.threads,
    seed: f.seed,
  });
  try {
    if (!f.quiet && fuser.provider)
      io.err(`dif-fuse: model ${fuser.modelDir}, provider ${fuser.provider}`);
    const stream = io.progressStream ?? process.stderr;
    const useBar = !f.quiet && stream.isTTY === true;
    const bar = useBar
      ? new SingleBar({
          stream,
          format: ' {bar} {value}/{total} {unit} | {name} | ETA {eta_formatted}',
          hideCursor: true,
          clearOnComplete: true,
        })
      : null;
    const tiles = {
      tile: f.tile,
      overlap: f.overlap,
      memoryBudget: f.memory === undefined ? undefined : f.memory * 1e6,
    };
    const t0 = performance.now();
    let pixels = 0;
    const failures: string[] = [];
    const batch = f.pairs !== undefined;
    bar?.start(jobs.length, 0, { name: '', unit: batch ? 'images' : 'tiles' });
    for (const job of jobs) {
      bar?.update({ name: job.name });
      try {
        const { ir, vis } = first ?? (await readPair(job));
        const fused = await fuseImages(ir, vis, fuser, {
          ...tiles,
          onProgress:
            batch || !bar
              ? undefined
              : (d, t) => {
                  bar.setTotal(t);
                  bar.update(d);
                },
        });
        await writeImage(job.out, fused);
        if (f.sideBySide) await writeImage(resolve(f.sideBySide), sideBySide(fused, vis, ir));
        pixels += fused.width * fused.height;
      } catch (err) {
        if (!batch) throw err;
        failures.push(`${job.name}: ${formatError(err)}`);
      }
      if (batch) bar?.increment(1);
    }
    bar?.stop();
    const secs = (performance.now() - t0) / 1000;
    const ok = jobs.length - failures.length;
    for (const m of failures) io.err(`error: ${m}`);
    if (!f.quiet) {
      const where = f.pairs ? resolve(f.output!) : jobs[0].out;
      io.out(
        `fused ${ok} image${ok === 1 ? '' : 's'} in ${secs.toFixed(2)} s (${(pixels / 1e6 / Math.max(secs, 1e-9)).toFixed(3)} MP/s) -> ${where}`,
      );
      if (f.sideBySide)
        io.out(`side by side (fused | visible | infrared) -> ${resolve(f.sideBySide)}`);
    }
    if (failures.length) fail(`${failures.length} of ${jobs.length} pairs failed`, 1);
  } finally {
    await fuser.release();
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
