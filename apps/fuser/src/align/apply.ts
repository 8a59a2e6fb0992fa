/**
 * Fusing pairs that are not registered: `--align rig.json|auto`, `--onto ir|vis`,
 * `--crop overlap`, `--resize`. The visible image is warped onto the infrared pixel grid (or
 * the infrared onto the visible grid with `--onto vis`); where the warped camera sees
 * nothing, the output comes from the other camera alone.
 */
import {
  CorruptImageError,
  checkPixelLimit,
  checkRigSizes,
  cropFloat,
  decodeImageHeader,
  type FloatImage,
  ImageTooLargeError,
  inv3,
  type Mat3,
  megapixels,
  overlapRect,
  pixelScale,
  type Rect,
  type RigFile,
  readImageHeader,
  readRigFile,
  registerPairs,
  toGray,
  warpImage,
} from '@dif-fusion/io';
import { FuseError } from '../errors';
import {
  type ImageSource,
  type Planar,
  type ReadOptions,
  readInfrared,
  readVisible,
  sourceName,
} from '../images';

export interface AlignFlags {
  /** A rig file, or `auto` (each pair registered on its own). */
  align?: string;
  /** The grid of the output: the infrared camera's (default) or the visible one's. */
  onto?: 'ir' | 'vis';
  /** `overlap`: cut the output to the common overlap. */
  crop?: 'overlap';
  /** Same field of view, other resolution: scale one image onto the other. */
  resize?: boolean;
}

/** A pair ready to fuse, with what the aligner did and the finishing step of the output. */
export interface AlignedPair {
  ir: Planar;
  vis: Planar;
  /** One line: what was done to this pair. */
  note: string;
  /** Blends the fused image with the reference camera where the other one saw nothing. */
  finish(fused: Planar): Planar;
}

export interface Aligner {
  read(ir: ImageSource, vis: ImageSource, opts: ReadOptions): Promise<AlignedPair>;
  /** The same for decoded images (video frames, uploads). */
  alignImages(ir: Planar, vis: Planar, irName: string, visName: string): AlignedPair;
  /** One line describing the set-up (rig file, grid), for the start of a run. */
  describe(): string;
}

function header(src: ImageSource) {
  return typeof src === 'string'
    ? readImageHeader(src)
    : decodeImageHeader(src.bytes.subarray(0, 65536), src.name, src.bytes);
}

function fmt(n: number, d = 2): string {
  const s = n.toFixed(d);
  return /^-0\.?0*$/.test(s) ? s.slice(1) : s;
}

/** Scale, rotation (degrees) and shift of a transform, for messages. */
export function describeTransform(m: Mat3): string {
  const s = Math.sqrt(Math.abs(m[0] * m[4] - m[1] * m[3]));
  const rot = (Math.atan2(m[3] - m[1], m[0] + m[4]) * 180) / Math.PI;
  return `scale ${fmt(s, 3)}, rotation ${fmt(rot, 2)} deg, shift (${fmt(m[2], 1)}, ${fmt(m[5], 1)}) px`;
}

/** Checks the combination of flags; throws a one-line FuseError (exit 2) when wrong. */
export function validateAlignFlags(f: AlignFlags): void {
  if (f.align && f.resize)
    throw new FuseError(
      '--resize is for pairs with the same field of view; --align registers the pair: give one of them',
      2,
    );
  if ((f.onto || f.crop) && !f.align && !f.resize)
    throw new FuseError(`--${f.onto ? 'onto' : 'crop'} applies with --align or --resize`, 2);
}

/**
 * A transform fixed in advance: a rig file read elsewhere (a queued job carries its rig), or
 * one estimated once for a whole video.
 */
export interface FixedTransform {
  visToIr: Mat3;
  /** What it is, for the note of each pair ("rig rig.json", "estimated from 4 frames"). */
  how: string;
  /** The rig's sizes, checked against every pair. */
  rig?: RigFile;
  /** The rig's name in size errors. */
  rigName?: string;
}

/** Reads the rig file of `--align FILE`; undefined for `auto` and `--resize`. */
export function fixedFromFlags(f: AlignFlags): FixedTransform | undefined {
  if (!f.align || f.align === 'auto') return undefined;
  const rig = readRigFile(f.align);
  return { visToIr: rig.vis_to_ir, how: `rig ${f.align}`, rig, rigName: f.align };
}

function checkSizes(
  fixed: FixedTransform | undefined,
  ir: { name: string; width: number; height: number },
  vis: { name: string; width: number; height: number },
): void {
  if (fixed?.rig) checkRigSizes(fixed.rig, fixed.rigName ?? 'file', ir, vis);
}

/**
 * The aligner of `--align/--resize/--onto/--crop`. `fixed` replaces the rig file of
 * `f.align` (read here when not given) or, for `auto`, the per-pair registration.
 */
export function createAligner(
  f: AlignFlags,
  fixed: FixedTransform | undefined = fixedFromFlags(f),
): Aligner {
  const onto = f.onto ?? 'ir';
  const align = (ir: Planar, vis: Planar, irName: string, visName: string): AlignedPair => {
    checkSizes(fixed, { name: irName, ...ir }, { name: visName, ...vis });
    let visToIr: Mat3;
    let how: string;
    if (fixed) {
      visToIr = fixed.visToIr;
      how = fixed.how;
    } else if (f.resize) {
      visToIr = pixelScale(ir.width / vis.width, ir.height / vis.height);
      how = `resized ${vis.width}x${vis.height} -> ${ir.width}x${ir.height}`;
    } else {
      const r = registerPairs([{ ir: toGray(ir), vis: toGray(vis) }]);
      if (!r.reliable)
        throw new FuseError(
          `${visName}: cannot align with ${irName}: ${r.reason}; calibrate the rig with dif-fuse align (--points for hand-picked point pairs)`,
        );
      visToIr = r.visToIr;
      how = `aligned automatically (${describeTransform(visToIr)}; edge correlation ${fmt(r.scoreBefore)} -> ${fmt(r.scoreAfter)})`;
    }
    return alignPair(ir, vis, visToIr, onto, f.crop === 'overlap', how, visName);
  };
  return {
    describe() {
      const how = fixed
        ? `${fixed.how} (${fixed.rig ? `${fixed.rig.transform}: ` : ''}${describeTransform(fixed.visToIr)})`
        : f.align === 'auto'
          ? 'each pair registered automatically (--align auto)'
          : 'resized (--resize: same field of view)';
      const grid =
        onto === 'ir'
          ? 'visible warped onto the infrared grid'
          : 'infrared warped onto the visible grid';
      return `align: ${how}; ${grid}${f.crop ? ', cut to the common overlap' : ''}`;
    },
    alignImages: align,
    async read(irSrc, visSrc, opts) {
      const irName = sourceName(irSrc);
      const visName = sourceName(visSrc);
      let ir: Planar;
      let vis: Planar;
      try {
        const [hi, hv] = await Promise.all([header(irSrc), header(visSrc)]);
        checkPixelLimit(hi, irName, opts.maxPixels);
        checkPixelLimit(hv, visName, opts.maxPixels);
        checkSizes(
          fixed,
          { name: irName, width: hi.width, height: hi.height },
          { name: visName, width: hv.width, height: hv.height },
        );
        ir = await readInfrared(irSrc, opts);
        vis = await readVisible(visSrc, opts);
      } catch (err) {
        if (err instanceof ImageTooLargeError)
          throw new FuseError(
            `${err.message} (--max-pixels ${megapixels(err.width * err.height)} reads it)`,
          );
        if (err instanceof CorruptImageError)
          throw new FuseError(`${err.message}; --allow-corrupt reads it anyway`);
        throw err;
      }
      return align(ir, vis, irName, visName);
    },
  };
}

/** Checkerboard of the infrared image (gray) and the warped visible one, on the IR grid. */
export function checkImage(ir: Planar, vis: Planar, visToIr: Mat3): Planar {
  const { image: w, mask } = warpImage(vis, visToIr, ir.width, ir.height);
  const n = ir.width * ir.height;
  const cell = Math.max(8, Math.round(Math.max(ir.width, ir.height) / 10));
  const out = new Float32Array(3 * n);
  for (let y = 0; y < ir.height; y++)
    for (let x = 0; x < ir.width; x++) {
      const i = y * ir.width + x;
      const useVis = ((Math.floor(x / cell) + Math.floor(y / cell)) & 1) === 1 && mask[i] > 0.5;
      for (let c = 0; c < 3; c++) out[c * n + i] = useVis ? w.data[c * n + i] : ir.data[i];
    }
  return { width: ir.width, height: ir.height, channels: 3, data: out };
}

/** Replicates a gray plane into RGB. */
function grayToRgb(g: Planar): Planar {
  const n = g.width * g.height;
  const data = new Float32Array(3 * n);
  for (let c = 0; c < 3; c++) data.set(g.data.subarray(0, n), c * n);
  return { width: g.width, height: g.height, channels: 3, data };
}

function cropMask(mask: Float32Array, w: number, r: Rect): Float32Array {
  const out = new Float32Array(r.width * r.height);
  for (let y = 0; y < r.height; y++)
    out.set(mask.subarray((r.y + y) * w + r.x, (r.y + y) * w + r.x + r.width), y * r.width);
  return out;
}

/**
 * Warps one image of the pair onto the other's grid. Outside the warped image's footprint its
 * pixels are filled from the reference camera (so the model sees one consistent scene), and
 * `finish` puts the reference camera back there in the output.
 */
export function alignPair(
  ir: Planar,
  vis: Planar,
  visToIr: Mat3,
  onto: 'ir' | 'vis',
  crop: boolean,
  how: string,
  name: string,
): AlignedPair {
  let refIr: Planar;
  let refVis: Planar;
  let mask: Float32Array;
  let grid: [number, number];
  if (onto === 'ir') {
    const w = warpImage(vis, visToIr, ir.width, ir.height);
    refIr = ir;
    refVis = w.image;
    mask = w.mask;
    grid = [ir.width, ir.height];
    // Outside the footprint the visible input is the infrared image in gray.
    const n = ir.width * ir.height;
    for (let i = 0; i < n; i++) {
      const m = mask[i];
      if (m >= 1) continue;
      for (let c = 0; c < 3; c++)
        refVis.data[c * n + i] = m * refVis.data[c * n + i] + (1 - m) * ir.data[i];
    }
  } else {
    const w = warpImage(ir, inv3(visToIr), vis.width, vis.height);
    refIr = w.image;
    refVis = vis;
    mask = w.mask;
    grid = [vis.width, vis.height];
    // Outside the infrared footprint the infrared input is the visible luma.
    const luma = toGray(vis).data;
    for (let i = 0; i < mask.length; i++)
      if (mask[i] < 1) refIr.data[i] = mask[i] * refIr.data[i] + (1 - mask[i]) * luma[i];
  }
  let covered = 0;
  for (const m of mask) covered += m;
  const coverage = covered / mask.length;
  if (coverage < 0.01)
    throw new FuseError(
      `${name}: the ${onto === 'ir' ? 'visible' : 'infrared'} image does not overlap the ${onto === 'ir' ? 'infrared' : 'visible'} grid under this transform`,
    );
  let rect: Rect | undefined;
  if (crop) {
    const [srcSize, m]: [[number, number], Mat3] =
      onto === 'ir' ? [[vis.width, vis.height], visToIr] : [[ir.width, ir.height], inv3(visToIr)];
    rect = overlapRect(m, srcSize, grid);
    if (!rect) throw new FuseError(`${name}: the two images have no common overlap to crop to`);
    refIr = cropFloat(refIr, rect.x, rect.y, rect.width, rect.height);
    refVis = cropFloat(refVis, rect.x, rect.y, rect.width, rect.height);
    mask = cropMask(mask, grid[0], rect);
  }
  const outside = 1 - coverage;
  const note = `${how}; ${onto === 'ir' ? 'visible' : 'infrared'} warped onto the ${grid[0]}x${grid[1]} ${onto === 'ir' ? 'infrared' : 'visible'} grid${
    rect
      ? `, cut to the overlap ${rect.width}x${rect.height} at (${rect.x}, ${rect.y})`
      : outside > 0.001
        ? `; ${fmt(outside * 100, 1)}% of the output from the ${onto === 'ir' ? 'infrared' : 'visible'} image alone`
        : ''
  }`;
  const ref = onto === 'ir' ? grayToRgb(refIr) : refVis;
  return {
    ir: refIr,
    vis: refVis,
    note,
    finish(fused: FloatImage): FloatImage {
      const n = fused.width * fused.height;
      const out = fused.data.slice();
      for (let i = 0; i < n; i++) {
        const m = mask[i];
        if (m >= 1) continue;
        for (let c = 0; c < fused.channels; c++)
          out[c * n + i] = m * fused.data[c * n + i] + (1 - m) * ref.data[c * n + i];
      }
      return { ...fused, data: out };
    },
  };
}
