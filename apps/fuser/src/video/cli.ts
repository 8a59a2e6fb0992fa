/** The video branch of `dif-fuse --ir/--vis/-o`: flag checks, then {@link runVideo}. */
import type { ProgressStream } from '@dif-fusion/cli-kit';
import { type AlignFlags, validateAlignFlags } from '../align/apply';
import { FuseError } from '../errors';
import { runTiling } from '../memory';
import type { Method } from '../methods';
import type { PairBy } from './pairing';
import { runVideo } from './run';

export interface VideoFlags {
  ir?: string;
  vis?: string;
  output?: string;
  pairs?: string[];
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
  pairBy?: PairBy;
  fps?: number;
  keepFrames?: boolean;
}

export async function runVideoFlags(
  f: VideoFlags & AlignFlags,
  io: { out: (s: string) => void; err: (s: string) => void; progressStream?: ProgressStream },
): Promise<void> {
  const no = (m: string): never => {
    throw new FuseError(m, 2);
  };
  if (f.pairs?.length) no('--pairs cannot be combined with --ir/--vis');
  if (!f.ir || !f.vis) no(`--${f.ir ? 'vis' : 'ir'} is missing: a video needs both --ir and --vis`);
  if (!f.output) no('-o is required: a video file (.mp4, .mkv, .webm, ...) or a folder for frames');
  if (f.sideBySide) no('--side-by-side applies to a single image pair only');
  validateAlignFlags(f);
  await runVideo({
    ir: f.ir!,
    vis: f.vis!,
    output: f.output!,
    pairBy: f.pairBy,
    fps: f.fps,
    ext: f.ext,
    keepFrames: f.keepFrames,
    method: f.method,
    model: f.model,
    seed: f.seed,
    device: f.device,
    threads: f.threads,
    // Decided once for the whole video (every frame tiles alike).
    tiling: runTiling(f, io.err),
    align:
      f.align || f.resize
        ? { align: f.align, resize: f.resize, onto: f.onto, crop: f.crop }
        : undefined,
    quiet: f.quiet,
    out: io.out,
    err: io.err,
    progressStream: io.progressStream,
  });
}
