/**
 * Test helpers for the external programs video and queue tests need: ffmpeg (video) and a
 * throw-away redis-server on loopback (a random free port, a temp folder, no persistence).
 * Tests that need them skip with a clear message when they are not installed.
 */
import { spawnSync } from 'node:child_process';

export function hasCommand(name: string): boolean {
  const r = spawnSync(name, ['--version'], { stdio: 'ignore' });
  return !r.error;
}

export const HAS_FFMPEG = hasCommand('ffmpeg') && hasCommand('ffprobe');
export const HAS_REDIS = hasCommand('redis-server');

/** Runs ffmpeg quietly; throws with its stderr on failure. */
export function ffmpeg(args: string[]): void {
  const r = spawnSync('ffmpeg', ['-nostdin', '-v', 'error', '-y', ...args], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ffmpeg ${args.join(' ')}: ${r.stderr}`);
}

/** Number of frames, size and frame rate of a video's first stream, and whether it has audio. */
export function probe(path: string): {
  frames: number;
  width: number;
  height: number;
  fps: number;
  audio: boolean;
} {
  const r = spawnSync(
    'ffprobe',
    [
      '-v',
      'error',
      '-count_frames',
      '-show_entries',
      'stream=codec_type,width,height,nb_read_frames,avg_frame_rate',
      '-of',
      'json',
      path,
    ],
    { encoding: 'utf8' },
  );
  const s = JSON.parse(r.stdout).streams as Record<string, string | number>[];
  const v = s.find((x) => x.codec_type === 'video')!;
  const [a, b] = String(v.avg_frame_rate).split('/').map(Number);
  return {
    frames: Number(v.nb_read_frames),
    width: Number(v.width),
    height: Number(v.height),
    fps: a / b,
    audio: s.some((x) => x.codec_type === 'audio'),
  };
}

// The throw-away redis-server lives in one plain ESM module that scripts/bench uses too.
export { startRedis, type TestRedis } from '../../../scripts/lib/redis-server.mjs';
