/**
 * `dif-fuse --ir A --vis B -o OUT` where A/B are videos or image-sequence folders: pairs the
 * frames, fuses each pair with ONE opened fuser (so every frame gets the same seeded noise and
 * a static scene does not flicker), keeps the fused frames in a work folder so that an
 * interrupted run continues where it stopped, and encodes them with ffmpeg into a temporary
 * file renamed over OUT (atomic). OUT without a video extension is a folder of frames.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, realpathSync, renameSync, rmSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { Progress, type ProgressStream } from '@dif-fusion/cli-kit';
import {
  checkRigSizes,
  makeDirsSync,
  registerPairs,
  removeStaleTempFiles,
  toGray,
  writeFileAtomicSync,
} from '@dif-fusion/io';
import {
  type Aligner,
  type AlignFlags,
  createAligner,
  describeTransform,
  type FixedTransform,
  fixedFromFlags,
} from '../align/apply';
import { FuseError } from '../errors';
import { fuseImages, type OpenedFuser, type OpenOptions, openFuser } from '../fuse';
import { outputFormat, type Planar, writeImage } from '../images';
import type { TilingOptions } from '../pipeline';
import { encodeFrames, isVideoPath, muxerFor, requireFfmpeg } from './ffmpeg';
import { type PairBy, pairFrames } from './pairing';
import { type FrameSource, openSource } from './source';

export interface VideoOptions extends OpenOptions {
  ir: string;
  vis: string;
  output: string;
  pairBy?: PairBy;
  /** Output frame rate (default: the IR video's, else the visible video's, else 25). */
  fps?: number;
  /** Frame format of a folder output (default png). */
  ext?: string;
  /** Keep the work folder of fused frames after encoding. */
  keepFrames?: boolean;
  tiling?: Omit<TilingOptions, 'onProgress'>;
  /** --align/--resize/--onto/--crop: one transform for the whole video. */
  align?: AlignFlags;
  quiet?: boolean;
  out?: (line: string) => void;
  err?: (line: string) => void;
  progressStream?: ProgressStream;
}

export interface VideoResult {
  output: string;
  frames: number;
  /** Frames found already fused in the work folder (resumed). */
  resumed: number;
  /** Frames per second of this run's fusion (0 when all were resumed). */
  fps: number;
}

/** True when `dif-fuse --ir/--vis/-o` describes a video or image-sequence job. */
export function isVideoJob(ir?: string, vis?: string, output?: string): boolean {
  const dir = (p?: string) => p !== undefined && existsSync(p) && statSync(p).isDirectory();
  return [ir, vis, output].some((p) => p !== undefined && isVideoPath(p)) || dir(ir) || dir(vis);
}

const RUN_FILE = '.dif-fuse-run.json';
/** Progress lines when stderr is not a terminal: at least one every 10 s. */
const PROGRESS_LINE_MS = 10_000;

function fileStamp(p: string): { path: string; size: number; mtimeMs: number } {
  const st = statSync(p);
  return { path: realpathSync(p), size: st.size, mtimeMs: st.mtimeMs };
}

export async function runVideo(o: VideoOptions): Promise<VideoResult> {
  const err = o.err ?? ((s: string) => process.stderr.write(`${s}\n`));
  const out = resolve(o.output);
  const videoOut = isVideoPath(out);
  if ([o.ir, o.vis, out].some((p) => isVideoPath(p)) || videoOut) requireFfmpeg();
  const ir = await openSource(o.ir, '--ir');
  const vis = await openSource(o.vis, '--vis');
  for (const s of [ir, vis])
    if (resolve(s.path) === out) throw new FuseError(`${out}: refusing to overwrite an input`);
  const aligning = Boolean(o.align && (o.align.align || o.align.resize));
  // A rig file is checked against the streams before anything else is said or done.
  let fixed = aligning ? rigTransform(o.align!, ir, vis) : undefined;
  const { pairs, warnings } = pairFrames(ir, vis, o.pairBy ?? 'index', aligning);
  if (!o.quiet) for (const w of warnings) err(`warning: ${w}`);
  let aligner: Aligner | undefined;
  if (aligning) {
    if (o.align!.align === 'auto') fixed = await autoTransform(ir, vis, pairs, err, o.quiet);
    aligner = createAligner(o.align!, fixed);
    if (!o.quiet) err(aligner.describe());
  }
  const fps = o.fps ?? ir.fps ?? vis.fps ?? 25;

  const ext = videoOut ? 'png' : (o.ext ?? 'png').replace(/^\./, '').toLowerCase();
  if (!videoOut) outputFormat(`x.${ext}`);
  if (!videoOut && existsSync(out) && !statSync(out).isDirectory())
    throw new FuseError(
      `${out}: not a folder; give a video name (.mp4, .mkv, .webm, ...) or a folder for frames`,
    );
  const work = videoOut ? join(dirname(out), `.${basename(out)}.frames`) : out;
  const stamp = JSON.stringify({
    ir: fileStamp(o.ir),
    vis: fileStamp(o.vis),
    method: o.method ?? 'model',
    model: o.model ?? null,
    seed: o.seed ?? 0,
    pairBy: o.pairBy ?? 'index',
    // What decides the frames' tiling: the tile option and, when given, --memory. The budget
    // taken from the memory available now changes from run to run and is left out, so a
    // resumed run is recognised (it may tile differently only where that memory changed).
    tiling: {
      tile: o.tiling?.tile,
      overlap: o.tiling?.overlap,
      memory: o.tiling?.memorySource?.startsWith('--memory') ? o.tiling.memoryBudget : undefined,
    },
    ext,
    align: aligning
      ? {
          visToIr: fixed?.visToIr ?? null,
          resize: o.align?.resize ?? false,
          onto: o.align?.onto ?? 'ir',
          crop: o.align?.crop ?? null,
        }
      : undefined,
  });
  prepareWork(work, stamp, videoOut);
  const frameName = (k: number) => join(work, `${String(k + 1).padStart(6, '0')}.${ext}`);
  const todo = pairs.map((_, k) => !existsSync(frameName(k)));
  const resumed = todo.filter((t) => !t).length;

  let fused = 0;
  let secs = 0;
  if (resumed < pairs.length) {
    const opened = await openFuser(o);
    try {
      if (!o.quiet && opened.provider)
        err(`dif-fuse: model ${opened.modelDir}, provider ${opened.provider}`);
      const t0 = performance.now();
      fused = await fuseFrames(
        ir,
        vis,
        pairs,
        todo,
        frameName,
        opened,
        { ...o, err },
        resumed,
        aligner,
      );
      secs = (performance.now() - t0) / 1000;
    } finally {
      await opened.release();
    }
  }
  if (videoOut) {
    removeStaleTempFiles(dirname(out)); // encodes of killed runs
    const tmp = join(
      dirname(out),
      `.${basename(out)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`,
    );
    try {
      await encodeFrames(join(work, `%06d.${ext}`), fps, tmp, muxerFor(out));
      renameSync(tmp, out);
    } finally {
      rmSync(tmp, { force: true });
    }
    if (!o.keepFrames) rmSync(work, { recursive: true, force: true });
  }
  const rate = fused / Math.max(secs, 1e-9);
  if (!o.quiet)
    (o.out ?? console.log)(
      `fused ${pairs.length} frame${pairs.length === 1 ? '' : 's'}${resumed ? ` (${resumed} resumed)` : ''}${fused ? ` at ${rate.toFixed(2)} fps` : ''} -> ${out}`,
    );
  return { output: out, frames: pairs.length, resumed, fps: fused ? rate : 0 };
}

/** Creates the work folder, or checks that the frames in it come from the same run. */
function prepareWork(work: string, stamp: string, owned: boolean): void {
  const runFile = join(work, RUN_FILE);
  if (existsSync(runFile) && readFileSync(runFile, 'utf8') !== stamp) {
    if (!owned)
      throw new FuseError(
        `${work}: holds frames of a different run (other inputs or settings); empty it or choose another -o`,
      );
    rmSync(work, { recursive: true, force: true });
  }
  try {
    makeDirsSync(work);
    removeStaleTempFiles(work);
    writeFileAtomicSync(runFile, stamp);
  } catch (e) {
    throw new FuseError(`${work}: cannot write the frames folder (${(e as Error).message})`);
  }
}

async function fuseFrames(
  ir: FrameSource,
  vis: FrameSource,
  pairs: [number, number][],
  todo: boolean[],
  frameName: (k: number) => string,
  opened: OpenedFuser,
  o: VideoOptions,
  resumed: number,
  aligner?: Aligner,
): Promise<number> {
  const progress = new Progress({
    label: 'frame',
    unit: 'frames',
    stream: o.progressStream ?? process.stderr,
    quiet: o.quiet,
    intervalMs: PROGRESS_LINE_MS,
  });
  progress.start(pairs.length, resumed);
  const irFrames = ir.frames('ir');
  const visFrames = vis.frames('vis');
  let irAt = -1;
  let visAt = -1;
  let irFrame: Planar | undefined;
  let visFrame: Planar | undefined;
  const next = async (gen: AsyncGenerator<Planar>, src: FrameSource): Promise<Planar> => {
    const r = await gen.next();
    if (r.done) throw new FuseError(`${src.path}: ended before its last frame (truncated?)`);
    return r.value;
  };
  const last = todo.lastIndexOf(true);
  let fused = 0;
  // One frame's PNG encoding (sharp, on libuv's threads) overlaps the next frame's decoding and
  // fusion; a failed write surfaces at the next frame or at the end.
  let writing: Promise<void> | undefined;
  const write = async (file: string, img: Planar) => {
    await writing;
    writing = writeImage(file, img).then(() => {
      fused++;
      progress.update(resumed + fused);
    });
    writing.catch(() => {}); // handled where it is awaited
  };
  try {
    for (let k = 0; k < pairs.length; k++) {
      const [i, j] = pairs[k];
      while (irAt < i) {
        irFrame = await next(irFrames, ir);
        irAt++;
      }
      while (visAt < j) {
        visFrame = await next(visFrames, vis);
        visAt++;
      }
      if (!todo[k]) continue;
      let img: Planar;
      if (aligner) {
        const a = aligner.alignImages(irFrame!, visFrame!, ir.path, vis.path);
        if (!o.quiet && fused === 0 && !writing) o.err?.(`frame ${k + 1}: ${a.note}`);
        img = a.finish(await fuseImages(a.ir, a.vis, opened, o.tiling));
      } else img = await fuseImages(irFrame!, visFrame!, opened, o.tiling);
      await write(frameName(k), img);
      if (k === last) break; // nothing left to fuse: stop decoding
    }
    await writing;
  } finally {
    await writing?.catch(() => {}); // a frame being written is finished (atomic) before return
    progress.stop();
    await irFrames.return(undefined);
    await visFrames.return(undefined);
  }
  return fused;
}

/** Frames registered jointly by `--align auto` on a video: at most this many pairs. */
export const AUTO_ALIGN_FRAMES = 4;
/** ... spread over at most this many first pairs (a long video is not decoded twice). */
const AUTO_ALIGN_SPAN = 250;

/** The rig file of `--align FILE`, its sizes checked against the streams; else undefined. */
function rigTransform(
  f: AlignFlags,
  ir: FrameSource,
  vis: FrameSource,
): FixedTransform | undefined {
  if (!f.align || f.align === 'auto') return undefined;
  const fixed = fixedFromFlags(f)!;
  checkRigSizes(
    fixed.rig!,
    f.align,
    { name: ir.path, width: ir.width, height: ir.height },
    { name: vis.path, width: vis.width, height: vis.height },
  );
  return fixed;
}

/**
 * The one transform of a video with `--align auto`: one joint estimate from a few frame pairs
 * spread over the start of the video (frame by frame the estimate would jitter and take
 * seconds per frame).
 */
async function autoTransform(
  ir: FrameSource,
  vis: FrameSource,
  pairs: [number, number][],
  err: (line: string) => void,
  quiet?: boolean,
): Promise<FixedTransform> {
  const span = Math.min(pairs.length, AUTO_ALIGN_SPAN);
  const n = Math.min(AUTO_ALIGN_FRAMES, span);
  const want = new Set(Array.from({ length: n }, (_, i) => Math.floor((i * span) / n)));
  const rasters: { ir: ReturnType<typeof toGray>; vis: ReturnType<typeof toGray> }[] = [];
  const irFrames = ir.frames('ir');
  const visFrames = vis.frames('vis');
  try {
    let irAt = -1;
    let visAt = -1;
    let irFrame: Planar | undefined;
    let visFrame: Planar | undefined;
    for (let k = 0; k < span && rasters.length < n; k++) {
      const [i, j] = pairs[k];
      while (irAt < i) {
        const r = await irFrames.next();
        if (r.done) throw new FuseError(`${ir.path}: ended before its last frame (truncated?)`);
        irFrame = r.value;
        irAt++;
      }
      while (visAt < j) {
        const r = await visFrames.next();
        if (r.done) throw new FuseError(`${vis.path}: ended before its last frame (truncated?)`);
        visFrame = r.value;
        visAt++;
      }
      if (want.has(k)) rasters.push({ ir: toGray(irFrame!), vis: toGray(visFrame!) });
    }
  } finally {
    await irFrames.return(undefined);
    await visFrames.return(undefined);
  }
  const t0 = performance.now();
  const r = registerPairs(rasters);
  if (!r.reliable)
    throw new FuseError(
      `${vis.path}: cannot align with ${ir.path} (${rasters.length} frame pairs): ${r.reason}; calibrate the rig with dif-fuse align (--points for hand-picked point pairs) and give --align rig.json`,
    );
  if (!quiet)
    err(
      `align: estimated from ${rasters.length} frame pair${rasters.length === 1 ? '' : 's'} in ${((performance.now() - t0) / 1000).toFixed(1)} s: ${describeTransform(r.visToIr)}; edge correlation ${r.scoreBefore.toFixed(2)} -> ${r.scoreAfter.toFixed(2)}`,
    );
  return {
    visToIr: r.visToIr,
    how: `estimated from ${rasters.length} frame pair${rasters.length === 1 ? '' : 's'} (--align auto)`,
  };
}
