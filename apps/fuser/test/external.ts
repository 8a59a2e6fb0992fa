/**
 * Test helpers for the external programs video and queue tests need: ffmpeg (video) and a
 * throw-away redis-server on loopback (a random free port, a temp folder, no persistence).
 * Tests that need them skip with a clear message when they are not installed.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { createServer } from 'node:net';
import { tmp } from './helpers';

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

async function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.on('error', rej);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => res(port));
    });
  });
}

export interface TestRedis {
  url: string;
  stop(): Promise<void>;
}

/** Starts redis-server on 127.0.0.1 at a free port, in a temp folder, without persistence. */
export async function startRedis(): Promise<TestRedis> {
  for (let attempt = 0; ; attempt++) {
    const port = await freePort();
    const dir = tmp('dif-redis-');
    const child: ChildProcess = spawn(
      'redis-server',
      [
        '--port',
        String(port),
        '--bind',
        '127.0.0.1',
        '--save',
        '',
        '--appendonly',
        'no',
        '--dir',
        dir,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const ok = await new Promise<boolean>((res) => {
      let log = '';
      child.stdout!.on('data', (d: Buffer) => {
        log += d.toString();
        if (/Ready to accept connections/.test(log)) res(true);
      });
      child.on('exit', () => res(false));
    });
    if (ok)
      return {
        url: `redis://127.0.0.1:${port}`,
        stop: () =>
          new Promise((res) => {
            child.on('exit', () => res());
            child.kill('SIGTERM');
          }),
      };
    if (attempt >= 3) throw new Error('redis-server did not start');
  }
}
