/**
 * Frame sources for video fusion: a video file (decoded by ffmpeg) or an image sequence (a
 * folder of images in natural name order). Frames come out as the planar [-1,1] arrays the
 * fusion methods take, converted exactly as `dif-fuse --ir/--vis` converts still images.
 */
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { type Image, imageToFloat, isImageFile, readImageHeader, toChannels } from '@dif-fusion/io';
import { FuseError } from '../errors';
import { type Planar, readInfrared, readVisible } from '../images';
import { decodeFrames, probeVideo } from './ffmpeg';

export type Role = 'ir' | 'vis';

export interface FrameSource {
  path: string;
  kind: 'video' | 'sequence';
  width: number;
  height: number;
  /** Frames per second (videos; undefined for image sequences). */
  fps?: number;
  /** Presentation time of each frame in seconds (videos). */
  times?: number[];
  /** Number of frames. */
  count: number;
  /** The frames in order: IR as [1,H,W], visible as [3,H,W]. */
  frames(role: Role): AsyncGenerator<Planar>;
}

/** A video file or a folder of frames. */
export async function openSource(path: string, flag: string): Promise<FrameSource> {
  let st: ReturnType<typeof statSync>;
  try {
    st = statSync(path);
  } catch {
    throw new FuseError(`${path}: no such file or folder (${flag})`);
  }
  return st.isDirectory() ? openSequence(path, flag) : openVideo(path);
}

function openVideo(path: string): FrameSource {
  const info = probeVideo(path);
  return {
    path,
    kind: 'video',
    width: info.width,
    height: info.height,
    fps: info.fps,
    times: info.times,
    count: info.times.length,
    async *frames(role) {
      for await (const buf of decodeFrames(info)) {
        const rgb: Image = {
          width: info.width,
          height: info.height,
          channels: 3,
          bitDepth: 8,
          data: new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength),
        };
        // As readInfrared does for an 8-bit colour file: gray when R = G = B, else rgb2gray.
        yield imageToFloat(role === 'ir' ? toChannels(rgb, 1) : rgb);
      }
    },
  };
}

const natural = new Intl.Collator('en', { numeric: true });

async function openSequence(dir: string, flag: string): Promise<FrameSource> {
  const files = readdirSync(dir)
    .filter((n) => !n.startsWith('.') && isImageFile(n))
    .sort(natural.compare)
    .map((n) => join(dir, n));
  if (files.length === 0) throw new FuseError(`${dir}: no images in the folder (${flag})`);
  const h = await readImageHeader(files[0]);
  return {
    path: dir,
    kind: 'sequence',
    width: h.width,
    height: h.height,
    count: files.length,
    async *frames(role) {
      for (const f of files) {
        const img = role === 'ir' ? await readInfrared(f) : await readVisible(f);
        if (img.width !== h.width || img.height !== h.height)
          throw new FuseError(
            `${f}: frame size ${img.width}x${img.height} differs from the sequence's ${h.width}x${h.height}`,
          );
        yield img;
      }
    },
  };
}
