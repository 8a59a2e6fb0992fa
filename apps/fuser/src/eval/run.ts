/**
 * `dif-fuse eval`: evaluate folders of fused images against their infrared/visible pairs.
 * Every per-image problem (missing fused image, size mismatch, unreadable file) is reported
 * on one line (`error: <file>: <problem>`) and the rest is still evaluated.
 */
import { readdirSync, statSync } from 'node:fs';
import { basename, extname, join, resolve } from 'node:path';
import { Progress, type ProgressStream } from '@dif-fusion/cli-kit';
import {
  formatError,
  type Image,
  isImageFile,
  readImage,
  scanPairs,
  writeFileAtomic,
} from '@dif-fusion/io';
import { evaluateFusion, type Image8 } from '@dif-fusion/metrics';
import { FuseError } from '../errors';
import { chartPng } from './chart';
import {
  comparableMethods,
  type EvalRow,
  formatTable,
  type Summary,
  summarize,
  toCsv,
  toJson,
} from './report';

export interface EvalOptions {
  /** Folder with ir/ and vi/ (or infrared/ and visible/), files matched by stem. */
  pairs: string;
  /** One or more folders of fused images `<stem>.<ext>`; the method name is the folder's name. */
  fused: string[];
  csv?: string;
  json?: string;
  chart?: string;
  /** Summary table and file notes (default: stdout). */
  out?: (line: string) => void;
  /** Per-image problems (default: stderr). */
  err?: (line: string) => void;
  /**
   * Progress stream (default: stderr): a bar on a TTY, plain periodic lines otherwise.
   * false: none.
   */
  progress?: ProgressStream | false;
  /** Where `-` (stdout) outputs go (default: process.stdout). */
  writeStdout?: (data: Uint8Array) => Promise<void>;
}

const STDOUT = '-';

/** Writes a result file, or to stdout for `-`. */
async function writeOutput(
  path: string,
  data: string | Uint8Array,
  writeStdout: (data: Uint8Array) => Promise<void>,
): Promise<void> {
  if (path !== STDOUT) return writeFileAtomic(path, data);
  await writeStdout(typeof data === 'string' ? Buffer.from(data) : data);
}

function processStdout(data: Uint8Array): Promise<void> {
  return new Promise((res, rej) => process.stdout.write(data, (e) => (e ? rej(e) : res())));
}

export interface EvalProblem {
  image: string;
  method: string;
  message: string;
}

export interface EvalResult {
  rows: EvalRow[];
  problems: EvalProblem[];
  summary: Summary;
  /** The printed table. */
  table: string;
}

/** Fused images of a folder by file stem (`0001.png` is image `0001`); a second file with the same stem is reported. */
function imagesByStem(dir: string, duplicate: (path: string, first: string) => void) {
  const map = new Map<string, string>();
  for (const name of readdirSync(dir).filter(isImageFile).sort()) {
    const path = join(dir, name);
    try {
      if (!statSync(path).isFile()) continue;
    } catch {
      continue;
    }
    const stem = basename(name, extname(name));
    const first = map.get(stem);
    if (first) duplicate(path, first);
    else map.set(stem, path);
  }
  return map;
}

function requireDir(path: string, what: string): void {
  let isDir = false;
  try {
    isDir = statSync(path).isDirectory();
  } catch {
    throw new FuseError(`${path}: ${what}: no such folder`);
  }
  if (!isDir) throw new FuseError(`${path}: ${what}: not a folder`);
}

/** 8-bit samples for the metrics: 16-bit images are scaled to 0..255 (round(v / 257)). */
function to8(img: Image): Image8 {
  if (img.bitDepth === 8)
    return {
      data: img.data as Uint8Array,
      width: img.width,
      height: img.height,
      channels: img.channels,
    };
  const d = img.data;
  const data = new Uint8Array(d.length);
  for (let i = 0; i < d.length; i++) data[i] = Math.round(d[i] / 257);
  return { data, width: img.width, height: img.height, channels: img.channels };
}

async function read8(path: string): Promise<Image8> {
  return to8(await readImage(path));
}

/** Method names from the fused folders' names, made unique (`name`, `name-2`, ...). */
function methodNames(dirs: string[]): string[] {
  const seen = new Map<string, number>();
  return dirs.map((d) => {
    const base = basename(resolve(d));
    const n = (seen.get(base) ?? 0) + 1;
    seen.set(base, n);
    return n === 1 ? base : `${base}-${n}`;
  });
}

export async function runEval(options: EvalOptions): Promise<EvalResult> {
  const err = options.err ?? ((s: string) => process.stderr.write(`${s}\n`));
  const toStdout = [options.csv, options.json, options.chart].filter((f) => f === STDOUT);
  if (toStdout.length > 1)
    throw new FuseError('only one of --csv, --json and --chart can be - (stdout)');
  // With a result file on stdout, the table and notes go to stderr.
  const out =
    toStdout.length > 0 ? err : (options.out ?? ((s: string) => process.stdout.write(`${s}\n`)));
  const writeStdout = options.writeStdout ?? processStdout;
  if (!options.fused || options.fused.length === 0)
    throw new FuseError('eval needs at least one --fused folder');
  if (options.chart && options.chart !== STDOUT && extname(options.chart).toLowerCase() !== '.png')
    throw new FuseError(`${options.chart}: the chart is written as PNG, use a .png file name`);
  requireDir(options.pairs, '--pairs');
  for (const d of options.fused) requireDir(d, '--fused');
  for (const d of options.fused)
    if (!readdirSync(d).some(isImageFile))
      throw new FuseError(
        `${d}: --fused folder holds no images (.png, .jpg, .tif, .webp or .bmp); fuse into it first with dif-fuse --pairs ... -o ${d}`,
      );

  const problems: EvalProblem[] = [];
  /** `file` names what the problem is about (a path, or `<folder>/<stem>.*` when missing). */
  const report = (image: string, method: string, file: string, message: string) => {
    problems.push({ image, method, message: `${file}: ${message}` });
    err(`error: ${file}: ${message}`);
  };

  let scan: Awaited<ReturnType<typeof scanPairs>>;
  try {
    scan = await scanPairs(options.pairs);
  } catch (e) {
    throw new FuseError(formatError(e));
  }
  for (const f of scan.unmatchedIr)
    report(
      basename(f, extname(f)),
      '',
      join(scan.irDir, f),
      'no visible image with this name, skipped',
    );
  for (const f of scan.unmatchedVi)
    report(
      basename(f, extname(f)),
      '',
      join(scan.viDir, f),
      'no infrared image with this name, skipped',
    );

  const methods = methodNames(options.fused);
  const fusedMaps = options.fused.map((d, k) =>
    imagesByStem(d, (path, first) =>
      report(
        basename(path, extname(path)),
        methods[k],
        path,
        `same name as ${basename(first)}, ignored`,
      ),
    ),
  );

  const total = scan.pairs.length * methods.length;
  const bar = new Progress({
    label: 'eval',
    unit: 'images',
    stream: options.progress || undefined,
    quiet: options.progress === false || total <= 1,
    intervalMs: 10_000,
  });
  bar.start(total, 0);

  const rows: EvalRow[] = [];
  try {
    for (const pair of scan.pairs) {
      const stem = pair.name;
      let ir: Image8;
      let vi: Image8;
      try {
        ir = await read8(pair.ir);
        vi = await read8(pair.vi);
      } catch (e) {
        const msg = formatError(e);
        for (const m of methods) report(stem, m, pair.ir, `pair not evaluated: ${msg}`);
        bar.increment(methods.length);
        continue;
      }
      if (ir.width !== vi.width || ir.height !== vi.height) {
        for (const m of methods)
          report(
            stem,
            m,
            pair.vi,
            `size ${vi.width}x${vi.height} differs from the infrared image's ${ir.width}x${ir.height}, pair skipped`,
          );
        bar.increment(methods.length);
        continue;
      }
      for (let k = 0; k < methods.length; k++) {
        const method = methods[k];
        const path = fusedMaps[k].get(stem);
        try {
          if (!path) {
            report(stem, method, join(options.fused[k], `${stem}.*`), 'missing fused image');
            continue;
          }
          let f: Image8;
          try {
            f = await read8(path);
          } catch (e) {
            // io's errors already start with the path.
            const msg = formatError(e);
            report(
              stem,
              method,
              path,
              msg.startsWith(`${path}: `) ? msg.slice(path.length + 2) : msg,
            );
            continue;
          }
          if (f.width !== ir.width || f.height !== ir.height) {
            report(
              stem,
              method,
              path,
              `size mismatch: fused ${f.width}x${f.height}, sources ${ir.width}x${ir.height}`,
            );
            continue;
          }
          rows.push({ image: stem, method, values: evaluateFusion(ir, vi, f) });
        } catch (e) {
          report(stem, method, path ?? options.fused[k], formatError(e));
        } finally {
          bar.increment(1, { extra: stem });
        }
      }
    }
  } finally {
    bar.stop();
  }

  const summary = summarize(rows, methods);
  for (const [k, m] of methods.entries())
    if (!summary[m]) report('*', m, options.fused[k], 'no image of this folder could be evaluated');
  if (rows.length === 0) throw new FuseError('no fused image could be evaluated');

  const table = formatTable(
    summary,
    Boolean((process.stdout as NodeJS.WriteStream).isTTY) && !options.out,
    comparableMethods(rows, methods),
  );
  const counts = methods.map(
    (m) => `${m} ${rows.filter((r) => r.method === m).length}/${scan.pairs.length}`,
  );
  out(
    `Evaluated ${rows.length} fused image(s) (${counts.join(', ')})${problems.length ? `, ${problems.length} problem(s) reported` : ''}`,
  );
  out(table);
  const written = (f: string) => out(`wrote ${f === STDOUT ? 'stdout' : f}`);
  if (options.csv) {
    await writeOutput(options.csv, toCsv(rows), writeStdout);
    written(options.csv);
  }
  if (options.json) {
    await writeOutput(options.json, toJson(summary), writeStdout);
    written(options.json);
  }
  if (options.chart) {
    await writeOutput(options.chart, await chartPng(summary), writeStdout);
    written(options.chart);
  }
  return { rows, problems, summary, table };
}
