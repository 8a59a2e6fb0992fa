/**
 * ffmpeg and ffprobe (Debian's `ffmpeg` package, found on PATH) as child processes: probing a
 * video stream, decoding it to raw RGB frames and encoding numbered frames into a video.
 * No npm wrapper is used: the commonly used one (fluent-ffmpeg) is deprecated and unmaintained,
 * and the three invocations below are all this module needs.
 */
import { spawn, spawnSync } from 'node:child_process';
import { FuseError } from '../errors';

export { isVideoPath, VIDEO_EXTENSIONS } from './paths';

const bin = (name: 'ffmpeg' | 'ffprobe') =>
  name === 'ffmpeg'
    ? (process.env.DIF_FUSE_FFMPEG ?? 'ffmpeg')
    : (process.env.DIF_FUSE_FFPROBE ?? 'ffprobe');

/** Fails with one line when ffmpeg or ffprobe is not on PATH. */
export function requireFfmpeg(): void {
  for (const name of ['ffmpeg', 'ffprobe'] as const) {
    const r = spawnSync(bin(name), ['-version'], { stdio: 'ignore' });
    if (r.error || r.status !== 0)
      throw new FuseError(
        `${bin(name)} not found on PATH: video needs ffmpeg (Debian/Ubuntu: apt-get install ffmpeg)`,
      );
  }
}

export interface VideoInfo {
  path: string;
  width: number;
  height: number;
  /** Frames per second (the stream's average frame rate). */
  fps: number;
  /** Presentation time in seconds of every frame, in display order, from 0. */
  times: number[];
}

function rate(s: string | undefined): number {
  const m = /^(\d+)\/(\d+)$/.exec(s ?? '');
  if (!m || Number(m[2]) === 0) return Number.NaN;
  return Number(m[1]) / Number(m[2]);
}

/** Size, frame rate and frame times of the first video stream (audio is ignored). */
export function probeVideo(path: string): VideoInfo {
  const r = spawnSync(
    bin('ffprobe'),
    [
      '-v',
      'error',
      '-select_streams',
      'v:0',
      '-show_entries',
      'stream=width,height,avg_frame_rate,r_frame_rate:packet=pts_time',
      '-of',
      'json',
      path,
    ],
    { encoding: 'utf8', maxBuffer: 1 << 30 },
  );
  if (r.error) throw new FuseError(`${path}: ffprobe failed (${r.error.message})`);
  const firstLine = lastLine(r.stderr ?? '', path);
  if (r.status !== 0)
    throw new FuseError(
      `${path}: not a readable video (${firstLine || `ffprobe exit ${r.status}`})`,
    );
  const j = JSON.parse(r.stdout) as {
    streams?: { width?: number; height?: number; avg_frame_rate?: string; r_frame_rate?: string }[];
    packets?: { pts_time?: string }[];
  };
  const s = j.streams?.[0];
  if (!s?.width || !s.height) throw new FuseError(`${path}: no video stream`);
  const times = (j.packets ?? [])
    .map((p) => Number(p.pts_time))
    .filter((t) => Number.isFinite(t))
    .sort((a, b) => a - b);
  if (times.length === 0) throw new FuseError(`${path}: the video stream has no frames`);
  const t0 = times[0];
  let fps = rate(s.avg_frame_rate);
  if (!(fps > 0)) fps = rate(s.r_frame_rate);
  if (!(fps > 0)) throw new FuseError(`${path}: unknown frame rate`);
  return { path, width: s.width, height: s.height, fps, times: times.map((t) => t - t0) };
}

/**
 * Decodes the first video stream to RGB24 frames, one Buffer of width*height*3 bytes per
 * decoded frame (`-fps_mode passthrough`: no frame is duplicated or dropped), in display order.
 */
export async function* decodeFrames(info: VideoInfo): AsyncGenerator<Buffer> {
  const size = info.width * info.height * 3;
  const child = spawn(
    bin('ffmpeg'),
    [
      ...['-nostdin', '-v', 'error', '-i', info.path, '-map', '0:v:0', '-an', '-sn'],
      ...['-fps_mode', 'passthrough', '-f', 'rawvideo', '-pix_fmt', 'rgb24', 'pipe:1'],
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (d: string) => {
    stderr = (stderr + d).slice(-4000);
  });
  const exited = new Promise<number | null>((res) => child.on('close', (code) => res(code)));
  let pending: Buffer[] = [];
  let have = 0;
  let finished = false;
  try {
    for await (const chunk of child.stdout as AsyncIterable<Buffer>) {
      pending.push(chunk);
      have += chunk.length;
      while (have >= size) {
        const all = pending.length === 1 ? pending[0] : Buffer.concat(pending);
        yield Buffer.from(all.subarray(0, size));
        const rest = all.subarray(size);
        pending = rest.length ? [rest] : [];
        have = rest.length;
      }
    }
    finished = true;
  } finally {
    if (!finished) child.kill('SIGKILL');
  }
  const code = await exited;
  if (code !== 0) {
    const line = lastLine(stderr, info.path);
    throw new FuseError(`${info.path}: ffmpeg could not decode it (${line || `exit ${code}`})`);
  }
}

/** ffmpeg's last stderr line, without the file name it starts with (the error names it). */
function lastLine(stderr: string, path: string): string {
  const line = stderr.trim().split('\n').pop() ?? '';
  return line.startsWith(`${path}: `) ? line.slice(path.length + 2) : line;
}

/** Encoder arguments by container: H.264 in yuv420p (even sizes) for the common ones. */
function encoderArgs(out: string): string[] {
  const ext = /\.([^.]+)$/.exec(out)?.[1]?.toLowerCase();
  const even = ['-vf', 'pad=ceil(iw/2)*2:ceil(ih/2)*2'];
  if (ext === 'webm') return [...even, '-c:v', 'libvpx-vp9', '-pix_fmt', 'yuv420p', '-b:v', '0'];
  if (ext === 'avi') return ['-c:v', 'mpeg4', '-q:v', '2'];
  return [...even, '-c:v', 'libx264', '-pix_fmt', 'yuv420p', '-crf', '18'];
}

/**
 * Encodes numbered frames (`pattern` like `dir/%06d.png`, from 1) at `fps` into `out`, which
 * is written by ffmpeg directly: callers pass a temporary name and rename it.
 */
export async function encodeFrames(
  pattern: string,
  fps: number,
  out: string,
  format: string,
): Promise<void> {
  const args = [
    ...['-nostdin', '-v', 'error', '-y', '-framerate', String(fps), '-start_number', '1'],
    ...['-i', pattern, ...encoderArgs(out), '-an', '-f', format, out],
  ];
  const child = spawn(bin('ffmpeg'), args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (d: string) => {
    stderr = (stderr + d).slice(-4000);
  });
  const code = await new Promise<number | null>((res, rej) => {
    child.on('error', rej);
    child.on('close', res);
  });
  if (code !== 0) {
    const line = lastLine(stderr, out);
    throw new FuseError(`${out}: ffmpeg could not encode the video (${line || `exit ${code}`})`);
  }
}

/** ffmpeg's muxer name for an output extension. */
export function muxerFor(path: string): string {
  const ext = /\.([^.]+)$/.exec(path)?.[1]?.toLowerCase() ?? 'mp4';
  const map: Record<string, string> = {
    mp4: 'mp4',
    m4v: 'mp4',
    mov: 'mov',
    mkv: 'matroska',
    webm: 'webm',
    avi: 'avi',
    ts: 'mpegts',
    mts: 'mpegts',
    mpg: 'mpeg',
  };
  return map[ext] ?? 'mp4';
}
