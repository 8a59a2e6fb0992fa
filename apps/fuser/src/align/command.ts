/**
 * `dif-fuse align`: estimates a rig's visible -> infrared transform from one pair, several
 * pairs (joint estimate) or user point pairs, and writes the rig file plus a check image.
 */
import { existsSync, statSync } from 'node:fs';
import { basename, dirname, extname, join, resolve } from 'node:path';
import {
  gradientScore,
  overlapRect,
  pointRms,
  type RegisterResult,
  RIG_FORMAT,
  type RigFile,
  readImageHeader,
  readPointsFile,
  registerPairs,
  scanPairs,
  stretchTransform,
  TRANSFORM_KINDS,
  type TransformKind,
  toGray,
  transformFromPoints,
  writeRigFile,
} from '@dif-fusion/io';
import { type Command, Option } from 'commander';
import { FuseError } from '../errors';
import { readInfrared, readVisible, writeImage } from '../images';
import { checkImage, describeTransform } from './apply';

export { checkImage };

export interface AlignIo {
  out: (s: string) => void;
  err: (s: string) => void;
}

interface AlignFlags {
  ir?: string;
  vis?: string;
  pairs?: string[];
  output: string;
  transform: TransformKind;
  points?: string;
  check?: string;
  maxPairs: number;
  quiet?: boolean;
}

function defaultCheckPath(out: string): string {
  const base = basename(out, extname(out));
  return join(dirname(resolve(out)), `${base}.check.png`);
}

async function collectPairs(f: AlignFlags): Promise<{ ir: string; vis: string }[]> {
  if (f.pairs) {
    const all: { ir: string; vis: string }[] = [];
    for (const dir of f.pairs) {
      const scan = await scanPairs(dir);
      for (const p of scan.pairs) all.push({ ir: p.ir, vis: p.vi });
    }
    if (all.length === 0)
      throw new FuseError(`${f.pairs.join(' ')}: no infrared/visible pairs found`);
    // Spread over the whole set (a drive or flight changes scene over time).
    const k = Math.min(f.maxPairs, all.length);
    return Array.from({ length: k }, (_, i) => all[Math.floor((i * all.length) / k)]);
  }
  for (const [flag, p] of [
    ['--ir', f.ir],
    ['--vis', f.vis],
  ] as const) {
    if (!p) throw new FuseError(`${flag} is missing: give --ir and --vis, or --pairs DIR`, 2);
    if (!existsSync(p)) throw new FuseError(`${p}: no such file (${flag})`);
    if (!statSync(p).isFile()) throw new FuseError(`${p}: not a file (${flag})`);
  }
  return [{ ir: f.ir!, vis: f.vis! }];
}

export async function runAlign(f: AlignFlags, io: AlignIo): Promise<RigFile> {
  if (f.pairs && (f.ir || f.vis))
    throw new FuseError('--pairs cannot be combined with --ir/--vis', 2);
  if (f.points && f.pairs)
    throw new FuseError('--points belongs to one pair: give it with --ir and --vis', 2);
  const list = await collectPairs(f);
  // Sizes first (one rig: one infrared size, one visible size).
  const heads = await Promise.all(
    list.map(async (p) => ({ ir: await readImageHeader(p.ir), vis: await readImageHeader(p.vis) })),
  );
  for (const [i, h] of heads.entries())
    for (const k of ['ir', 'vis'] as const)
      if (h[k].width !== heads[0][k].width || h[k].height !== heads[0][k].height)
        throw new FuseError(
          `${list[i][k]}: is ${h[k].width}x${h[k].height} but ${list[0][k]} is ${heads[0][k].width}x${heads[0][k].height}: the pairs of one rig must share their sizes`,
        );
  const images = [];
  for (const p of list)
    images.push({ ir: await readInfrared(p.ir), vis: await readVisible(p.vis) });
  const rasters = images.map((p) => ({ ir: toGray(p.ir), vis: toGray(p.vis) }));
  const irSize: [number, number] = [images[0].ir.width, images[0].ir.height];
  const visSize: [number, number] = [images[0].vis.width, images[0].vis.height];
  const t0 = performance.now();
  let visToIr: number[];
  let result: Pick<RegisterResult, 'scoreBefore' | 'scoreAfter' | 'overlap'>;
  let source: RigFile['source'];
  if (f.points) {
    const pts = readPointsFile(f.points);
    visToIr = [...transformFromPoints(f.points, pts, f.transform)];
    const before = gradientScore(rasters[0], stretchTransform(irSize, visSize));
    const after = gradientScore(rasters[0], visToIr);
    result = { scoreBefore: before.score, scoreAfter: after.score, overlap: after.overlap };
    const rms = pointRms(visToIr, pts);
    source = { method: 'points', points: pts.length, rms_px: Number(rms.toFixed(3)) };
  } else {
    const r = registerPairs(rasters, { transform: f.transform });
    if (!r.reliable)
      throw new FuseError(
        `${list[0].vis}: cannot align with ${list[0].ir}: ${r.reason}; no rig file written (give --points with 4 or more point pairs, or more pairs of the rig with --pairs)`,
      );
    visToIr = r.visToIr;
    result = r;
    source = { method: 'auto', pairs: list.length };
  }
  const secs = (performance.now() - t0) / 1000;
  const overlap = overlapRect(visToIr, visSize, irSize);
  if (!overlap)
    throw new FuseError(`${list[0].vis}: the visible image does not overlap the infrared frame`);
  const rig: RigFile = {
    format: RIG_FORMAT,
    version: 1,
    transform: f.transform,
    vis_to_ir: visToIr.map((v) => Number(v.toPrecision(10))),
    ir_size: irSize,
    vis_size: visSize,
    overlap,
    source,
    quality: {
      before: Number(result.scoreBefore.toFixed(4)),
      after: Number(result.scoreAfter.toFixed(4)),
      ir_coverage: Number(result.overlap.toFixed(4)),
    },
  };
  await writeRigFile(resolve(f.output), rig);
  const check = f.check ?? defaultCheckPath(f.output);
  await writeImage(resolve(check), checkImage(images[0].ir, images[0].vis, visToIr));
  if (!f.quiet) {
    const from = f.points
      ? `${source.points} point pairs (rms ${source.rms_px} px)`
      : `${list.length} pair${list.length === 1 ? '' : 's'}`;
    io.out(
      `aligned visible ${visSize.join('x')} -> infrared ${irSize.join('x')} (${f.transform}, from ${from}, ${secs.toFixed(1)} s): ${describeTransform(visToIr)}`,
    );
    io.out(
      `edge correlation ${result.scoreBefore.toFixed(2)} before -> ${result.scoreAfter.toFixed(2)} after; the visible image covers ${(result.overlap * 100).toFixed(0)}% of the infrared frame, common overlap ${overlap.width}x${overlap.height} at (${overlap.x}, ${overlap.y})`,
    );
    io.out(
      `rig -> ${resolve(f.output)}; check image (infrared | visible checkerboard) -> ${resolve(check)}`,
    );
  }
  return rig;
}

export function registerAlignCommand(program: Command, io: AlignIo): Command {
  return program
    .command('align')
    .description(
      "Estimate the transform that maps a camera rig's visible images onto its infrared ones (writes a rig file for dif-fuse --align)",
    )
    .option('--ir <file>', 'infrared image of the rig')
    .option('--vis <file>', 'visible image taken at the same moment')
    .option(
      '--pairs <dirs...>',
      'folders holding ir/ and vi/ of the same rig: one joint estimate from several pairs (more robust)',
    )
    .requiredOption('-o, --output <rig.json>', 'rig file to write')
    .addOption(
      new Option('--transform <kind>', 'transform between the cameras')
        .choices(TRANSFORM_KINDS as unknown as string[])
        .default('affine'),
    )
    .option(
      '--points <pts.json>',
      'estimate from 4 or more hand-picked point pairs instead: [{"ir": [x, y], "vis": [x, y]}, ...]',
    )
    .option('--check <file.png>', 'check image to write (default: <rig>.check.png next to -o)')
    .option(
      '--max-pairs <n>',
      'with --pairs: use at most this many pairs, spread over the set (default 8)',
      (v: string) => {
        const n = Number(v);
        if (!Number.isInteger(n) || n < 1)
          throw new FuseError('--max-pairs must be a positive integer', 2);
        return n;
      },
      8,
    )
    .option('-q, --quiet', 'no summary')
    .addHelpText(
      'after',
      [
        '',
        'Examples:',
        '  dif-fuse align --ir ir/0001.png --vis vi/0001.jpg -o rig.json',
        '  dif-fuse align --pairs drive1 -o rig.json --transform homography',
        '  dif-fuse align --ir a.png --vis a.jpg --points pts.json -o rig.json',
        '  dif-fuse --pairs drive1 -o fused --align rig.json',
      ].join('\n'),
    )
    .action(async (opts: AlignFlags) => {
      await runAlign(opts, io);
    });
}
