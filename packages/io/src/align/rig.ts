/**
 * Rig files: the visible -> infrared transform of a camera rig with both image sizes, the
 * common overlap and the quality of the estimate, as JSON (written atomically).
 */
import { readFileSync } from 'node:fs';
import { writeFileAtomic } from '../atomic';
import { DifFusionError, fileError, fsError } from '../errors';
import {
  fitTransform,
  type Mat3,
  type PointPair,
  TRANSFORM_KINDS,
  type TransformKind,
} from './matrix';
import type { Rect } from './warp';

export const RIG_FORMAT = 'dif-fusion-rig';

export interface RigFile {
  format: typeof RIG_FORMAT;
  version: 1;
  transform: TransformKind;
  /** Maps visible pixel coordinates (x, y; pixel centres at integers) to infrared ones. */
  vis_to_ir: number[];
  ir_size: [number, number];
  vis_size: [number, number];
  /** The common overlap on the infrared grid. */
  overlap: Rect;
  /** How it was estimated: automatically from n pairs, or from user points. */
  source: { method: 'auto' | 'points'; pairs?: number; points?: number; rms_px?: number };
  /** Gradient correlation over the overlap, before (frames stretched) and after. */
  quality: { before: number; after: number; ir_coverage: number };
}

function isSize(v: unknown): v is [number, number] {
  return Array.isArray(v) && v.length === 2 && v.every((n) => Number.isInteger(n) && n > 0);
}

/** Reads and validates a rig file; one-line errors naming the file. */
export function readRigFile(path: string): RigFile {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw fsError(path, err, 'rig file');
  }
  let j: Partial<RigFile>;
  try {
    j = JSON.parse(text);
  } catch (err) {
    throw fileError(path, `not a rig file: invalid JSON (${(err as Error).message})`);
  }
  if (!j || typeof j !== 'object' || j.format !== RIG_FORMAT)
    throw fileError(
      path,
      `not a rig file (no "format": "${RIG_FORMAT}"); write one with dif-fuse align`,
    );
  if (
    !Array.isArray(j.vis_to_ir) ||
    j.vis_to_ir.length !== 9 ||
    !j.vis_to_ir.every(Number.isFinite)
  )
    throw fileError(path, 'rig file: vis_to_ir must be 9 numbers (a row-major 3x3 matrix)');
  if (!isSize(j.ir_size) || !isSize(j.vis_size))
    throw fileError(path, 'rig file: ir_size and vis_size must be [width, height]');
  if (!TRANSFORM_KINDS.includes(j.transform as TransformKind))
    throw fileError(path, `rig file: transform must be one of ${TRANSFORM_KINDS.join(', ')}`);
  return j as RigFile;
}

export async function writeRigFile(path: string, rig: RigFile): Promise<void> {
  await writeFileAtomic(path, `${JSON.stringify(rig, null, 2)}\n`);
}

/**
 * Checks that a pair's sizes are the rig's; the error names both sizes of the mismatch.
 */
export function checkRigSizes(
  rig: RigFile,
  rigPath: string,
  ir: { name: string; width: number; height: number },
  vis: { name: string; width: number; height: number },
): void {
  for (const [what, img, size] of [
    ['infrared', ir, rig.ir_size],
    ['visible', vis, rig.vis_size],
  ] as const)
    if (img.width !== size[0] || img.height !== size[1])
      throw new DifFusionError(
        `${img.name}: ${what} image is ${img.width}x${img.height} but the rig ${rigPath} was calibrated for ${size[0]}x${size[1]} ${what} images`,
      );
}

/**
 * Point pairs from a JSON file: `[{ "ir": [x, y], "vis": [x, y] }, ...]` (pixel coordinates,
 * pixel centres at integers), or `{ "points": [...] }`.
 */
export function readPointsFile(path: string): PointPair[] {
  let j: unknown;
  try {
    j = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code) throw fsError(path, err, 'points file');
    throw fileError(path, `invalid JSON (${(err as Error).message})`);
  }
  const list = Array.isArray(j) ? j : (j as { points?: unknown })?.points;
  const ok = (p: unknown) =>
    Array.isArray(p) &&
    p.length === 2 &&
    p.every((v) => typeof v === 'number' && Number.isFinite(v));
  if (!Array.isArray(list) || !list.every((q) => q && ok(q.ir) && ok(q.vis)))
    throw fileError(path, 'points file: expected [{"ir": [x, y], "vis": [x, y]}, ...]');
  return list.map((q) => ({ from: q.vis as [number, number], to: q.ir as [number, number] }));
}

/** The vis -> ir transform from user points (at least 4), with a one-line error otherwise. */
export function transformFromPoints(path: string, pairs: PointPair[], kind: TransformKind): Mat3 {
  if (pairs.length < 4) throw fileError(path, `needs at least 4 point pairs, has ${pairs.length}`);
  try {
    return fitTransform(pairs, kind);
  } catch (err) {
    throw fileError(path, (err as Error).message);
  }
}
