/**
 * Which visible frame goes with which infrared frame: by index (the cameras are synchronised
 * and run at the same rate) or by timestamp (the nearest visible frame within half a visible
 * frame interval). Sizes and, for index pairing, frame rates are checked first.
 */
import { FuseError } from '../errors';

export type PairBy = 'index' | 'timestamp';

export interface PairingInput {
  path: string;
  width: number;
  height: number;
  fps?: number;
  times?: number[];
  count: number;
}

export interface Pairing {
  /** [irIndex, visIndex], irIndex increasing, visIndex non-decreasing. */
  pairs: [number, number][];
  warnings: string[];
}

/** Relative frame-rate difference above which index pairing would drift (0.1 %). */
export const FPS_TOLERANCE = 1e-3;

/**
 * `aligned`: the frames go through --align/--resize, so their sizes may differ; otherwise a
 * size mismatch is refused, naming the options that fuse such a pair.
 */
export function pairFrames(
  ir: PairingInput,
  vis: PairingInput,
  by: PairBy,
  aligned = false,
): Pairing {
  if (!aligned && (ir.width !== vis.width || ir.height !== vis.height))
    throw new FuseError(
      `${vis.path}: size mismatch: ${ir.path} is ${ir.width}x${ir.height} but ${vis.path} is ${vis.width}x${vis.height} (a camera rig's pair: --align rig.json from dif-fuse align, or --align auto; the same field of view at another resolution: --resize)`,
    );
  const warnings: string[] = [];
  const pairs: [number, number][] = [];
  if (by === 'index') {
    if (ir.fps && vis.fps && Math.abs(ir.fps - vis.fps) > FPS_TOLERANCE * ir.fps)
      throw new FuseError(
        `${vis.path}: frame rate ${fmt(vis.fps)} fps differs from ${ir.path}'s ${fmt(ir.fps)} fps: pairing by index would drift; use --pair-by timestamp`,
      );
    const n = Math.min(ir.count, vis.count);
    if (ir.count !== vis.count) {
      const longer = ir.count > vis.count ? ir : vis;
      warnings.push(
        `${ir.path} has ${ir.count} frames, ${vis.path} ${vis.count}: the last ${longer.count - n} of ${longer.path} are not fused`,
      );
    }
    for (let i = 0; i < n; i++) pairs.push([i, i]);
    return { pairs, warnings };
  }
  if (!ir.times || !vis.times || !vis.fps)
    throw new FuseError(
      `--pair-by timestamp needs two videos: ${!ir.times ? ir.path : vis.path} is an image sequence (no timestamps)`,
    );
  const tol = 0.5 / vis.fps + 1e-6;
  const vt = vis.times;
  let j = 0;
  let dropped = 0;
  for (let i = 0; i < ir.times.length; i++) {
    const t = ir.times[i];
    while (j + 1 < vt.length && Math.abs(vt[j + 1] - t) < Math.abs(vt[j] - t)) j++;
    if (Math.abs(vt[j] - t) <= tol) pairs.push([i, j]);
    else dropped++;
  }
  if (dropped)
    warnings.push(
      `${dropped} frame(s) of ${ir.path} have no frame of ${vis.path} within ${fmt(500 / vis.fps)} ms and are not fused`,
    );
  if (pairs.length === 0)
    throw new FuseError(`${vis.path}: no frame is close in time to a frame of ${ir.path}`);
  return { pairs, warnings };
}

function fmt(x: number): string {
  return Number(x.toFixed(3)).toString();
}
