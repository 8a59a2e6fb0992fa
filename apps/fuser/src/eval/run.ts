/**
 * `dif-fuse eval`: evaluate folders of fused images against their infrared/visible pairs.
 * Every per-image problem (missing fused image, size mismatch, unreadable file) is reported
 * on one line and the rest is still evaluated.
 */
import { existsSync, mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, extname, join, resolve } from 'node:path';
import { evaluateFusion, type Image8 } from '@dif-fusion/metrics';
import { SingleBar } from 'cli-progress';
import sharp from 'sharp';
import { FuseError, oneLine } from '../errors';
import { writeChart } from './chart';
import { type EvalRow, formatTable, type Summary, summarize, toCsv, toJson } from './report';

/** Extensions looked at in ir/, vi/ and the fused folders. */
export const EVAL_IMAGE_EXTENSIONS = ['.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp'];

export interface EvalOptions {
  /** Folder with ir/ and vi/ (files matched by stem). */
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
  /** Progress bar stream; drawn only when it is a TTY (default: stderr). false: none. */
  progress?: NodeJS.WriteStream | false;
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

function imagesByStem(dir: string): Map<string, string> {
  const map = new Map<string, string>();
  for (const name of readdirSync(dir).sort()) {
    if (!EVAL_IMAGE_EXTENSIONS.includes(extname(name).toLowerCase())) continue;
    const path = join(dir, name);
    try {
      if (!statSync(path).isFile()) continue;
    } catch {
      continue;
    }
    const stem = basename(name, extname(name));
    if (!map.has(stem)) map.set(stem, path);
  }
  return map;
}

function requireDir(path: string, what: string): void {
  if (!existsSync(path)) throw new FuseError(`${what} ${path}: no such folder`);
  if (!statSync(path).isDirectory()) throw new FuseError(`${what} ${path}: not a folder`);
}

/** Decodes to 8-bit interleaved samples (16-bit input is scaled down by sharp). */
async function readImage8(path: string): Promise<Image8> {
  try {
    const { data, info } = await sharp(path, { failOn: 'error', limitInputPixels: false })
      .raw({ depth: 'uchar' })
      .toBuffer({ resolveWithObject: true });
    return {
      data: new Uint8Array(data.buffer, data.byteOffset, data.length),
      width: info.width,
      height: info.height,
      channels: info.channels,
    };
  } catch (err) {
    throw new FuseError(`cannot read ${path}: ${oneLine(err)}`);
  }
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

function writeText(path: string, text: string): void {
  mkdirSync(dirname(resolve(path)), { recursive: true });
  writeFileSync(path, text);
}

export async function runEval(options: EvalOptions): Promise<EvalResult> {
  const out = options.out ?? ((s: string) => process.stdout.write(`${s}\n`));
  const err = options.err ?? ((s: string) => process.stderr.write(`${s}\n`));
  if (!options.fused || options.fused.length === 0)
    throw new FuseError('eval needs at least one --fused folder');
  if (options.chart && extname(options.chart).toLowerCase() !== '.png')
    throw new FuseError(
      `--chart ${options.chart}: the chart is written as PNG, use a .png file name`,
    );
  requireDir(options.pairs, '--pairs');
  const irDir = join(options.pairs, 'ir');
  const viDir = join(options.pairs, 'vi');
  requireDir(irDir, '--pairs: infrared folder');
  requireDir(viDir, '--pairs: visible folder');
  for (const d of options.fused) requireDir(d, '--fused');

  const irs = imagesByStem(irDir);
  const vis = imagesByStem(viDir);
  const methods = methodNames(options.fused);
  const fusedMaps = options.fused.map((d) => imagesByStem(d));
  const problems: EvalProblem[] = [];
  const report = (image: string, method: string, message: string) => {
    problems.push({ image, method, message });
    err(`${method ? `${method}/` : ''}${image}: ${message}`);
  };

  const stems = [...irs.keys()];
  for (const stem of vis.keys())
    if (!irs.has(stem)) report(stem, '', 'visible image has no infrared pair, skipped');
  const pairStems = stems.filter((s) => {
    if (vis.has(s)) return true;
    report(s, '', 'infrared image has no visible pair, skipped');
    return false;
  });
  if (pairStems.length === 0)
    throw new FuseError(`--pairs ${options.pairs}: no matching ir/ and vi/ images`);

  const stream = options.progress === undefined ? process.stderr : options.progress || undefined;
  const total = pairStems.length * methods.length;
  const bar =
    stream?.isTTY && total > 1
      ? new SingleBar({
          format: 'eval [{bar}] {value}/{total} {percentage}% eta {eta_formatted}',
          stream,
          hideCursor: true,
          clearOnComplete: true,
        })
      : undefined;
  bar?.start(total, 0);

  const rows: EvalRow[] = [];
  try {
    for (const stem of pairStems) {
      let ir: Image8;
      let vi: Image8;
      try {
        ir = await readImage8(irs.get(stem)!);
        vi = await readImage8(vis.get(stem)!);
      } catch (e) {
        for (const m of methods) report(stem, m, oneLine(e));
        bar?.increment(methods.length);
        continue;
      }
      if (ir.width !== vi.width || ir.height !== vi.height) {
        for (const m of methods)
          report(
            stem,
            m,
            `infrared ${ir.width}x${ir.height} and visible ${vi.width}x${vi.height} differ in size`,
          );
        bar?.increment(methods.length);
        continue;
      }
      for (let k = 0; k < methods.length; k++) {
        const method = methods[k];
        const path = fusedMaps[k].get(stem);
        try {
          if (!path) {
            report(stem, method, `missing fused image ${join(options.fused[k], `${stem}.*`)}`);
            continue;
          }
          const f = await readImage8(path);
          if (f.width !== ir.width || f.height !== ir.height) {
            report(
              stem,
              method,
              `size mismatch: fused ${f.width}x${f.height}, sources ${ir.width}x${ir.height}`,
            );
            continue;
          }
          rows.push({ image: stem, method, values: evaluateFusion(ir, vi, f) });
        } catch (e) {
          report(stem, method, oneLine(e));
        } finally {
          bar?.increment(1);
        }
      }
    }
  } finally {
    bar?.stop();
  }

  const summary = summarize(rows, methods);
  for (const [k, m] of methods.entries())
    if (!summary[m]) report('*', m, `no image of ${options.fused[k]} could be evaluated`);
  if (rows.length === 0) throw new FuseError('no fused image could be evaluated');

  const table = formatTable(
    summary,
    Boolean((process.stdout as NodeJS.WriteStream).isTTY) && !options.out,
  );
  const counts = methods.map(
    (m) => `${m} ${rows.filter((r) => r.method === m).length}/${pairStems.length}`,
  );
  out(
    `Evaluated ${rows.length} fused image(s) (${counts.join(', ')})${problems.length ? `, ${problems.length} problem(s) reported above` : ''}`,
  );
  out(table);
  if (options.csv) {
    writeText(options.csv, toCsv(rows));
    out(`wrote ${options.csv}`);
  }
  if (options.json) {
    writeText(options.json, toJson(summary));
    out(`wrote ${options.json}`);
  }
  if (options.chart) {
    await writeChart(summary, options.chart);
    out(`wrote ${options.chart}`);
  }
  return { rows, problems, summary, table };
}
