/**
 * `dif-fuse --ir/--vis` and `dif-fuse --pairs`: validation of every input before any work, the
 * batch loop with its progress bar and summary, and one-line errors. Loaded by the program
 * only when a fusion runs (with sharp and ONNX Runtime behind it).
 */

import { accessSync, constants, existsSync, realpathSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { Progress } from '@dif-fusion/cli-kit';
import {
  DifFusionError,
  describeUnmatched,
  formatError,
  formatFromPath,
  type ImageFormat,
  makeDirsSync,
  removeStaleTempFiles,
  scanPairs,
  writeFileAtomic,
} from '@dif-fusion/io';
import { type AlignedPair, createAligner, validateAlignFlags } from '../align/apply';
import { findPairFolders } from '../batch';
import { FuseError } from '../errors';
import { fuseImages, type OpenedFuser, openFuser } from '../fuse';
import {
  encodePlanar,
  type ImageSource,
  OUTPUT_EXTENSIONS,
  outputFormat,
  type Planar,
  readPair as readImagePair,
  sideBySide,
  writeImage,
} from '../images';
import { runTiling } from '../memory';
import { isBaseline } from '../methods';
import { DEFAULT_OVERLAP } from '../pipeline';
import type { CliIo, FuseFlags } from '../program';
import { isVideoJob } from '../video/run';

const STDIO = '-';

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
    makeDirsSync(dir);
    accessSync(dir, constants.W_OK);
    // Temporary files of outputs whose run was killed mid-write (owner process gone).
    removeStaleTempFiles(dir);
  } catch (err) {
    if (err instanceof DifFusionError) throw err; // ours, and makeDirsSync's one line
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
  validateAlignFlags(f);
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
  /** With --align/--resize: what was done, and the output's finishing step. */
  aligned?: AlignedPair;
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

export async function runFuse(f: FuseFlags, io: CliIo): Promise<void> {
  if (isVideoJob(f.ir, f.vis, f.output)) {
    return (await import('../video/cli')).runVideoFlags(f, io);
  }
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
  const readOpts = {
    maxPixels: f.maxPixels === undefined ? undefined : f.maxPixels * 1e6,
    allowCorrupt: f.allowCorrupt,
    onWarning: (w: string) => io.err(`warning: ${w}`),
  };
  const aligner = f.align || f.resize ? createAligner(f) : undefined;
  const readPair = async (job: Job): Promise<Pair> => {
    const ir = await inputSource(job.ir, '--ir', io);
    const vis = await inputSource(job.vis, '--vis', io);
    if (!aligner) return readImagePair(ir, vis, readOpts);
    const aligned = await aligner.read(ir, vis, readOpts);
    if (!f.quiet && !f.pairs) io.err(aligned.note);
    return { ir: aligned.ir, vis: aligned.vis, aligned };
  };
  // One pair: read and check it before the (slow) model load, so a bad input fails at once.
  // Its decoding runs on libuv's threads (sharp) while this thread loads ONNX Runtime's module.
  const firstRead = f.pairs || todo.length === 0 ? undefined : readPair(todo[0]);
  if (firstRead && !isBaseline(f.method ?? 'model'))
    await Promise.allSettled([
      firstRead,
      import('@dif-fusion/onnx'),
      import('@dif-fusion/fusion-head'),
    ]);
  const first = await firstRead;
  if (aligner && !f.quiet && f.pairs) io.err(aligner.describe());
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
    // --tile auto: --memory, else a share of the memory available now (cgroup limit too).
    const tiles = runTiling(f, io.err);
    const t0 = performance.now();
    let pixels = 0;
    const failures: string[] = [];
    if (batch) progress.start(todo.length);
    let started = false;
    for (const job of todo) {
      try {
        const { ir, vis, aligned } = first ?? (await readPair(job));
        let fused = await fuseImages(ir, vis, fuser!, {
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
        if (aligned) fused = aligned.finish(fused);
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
