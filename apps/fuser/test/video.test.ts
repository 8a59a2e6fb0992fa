/**
 * Video fusion end to end through the BUILT binary and Debian's ffmpeg (skipped with a
 * message when ffmpeg is absent): small synthetic videos (64x48, ffmpeg's test patterns).
 */
import { spawn } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { ffmpeg, HAS_FFMPEG, probe } from './external';
import { CLI, dif, expectOneLineError, tmp } from './helpers';

if (!HAS_FFMPEG)
  console.warn('skipping video tests: ffmpeg/ffprobe not on PATH (apt-get install ffmpeg)');

let dir: string;
const W = 64;
const H = 48;
const lavfi = (src: string, rate: number, size = `${W}x${H}`) => [
  '-f',
  'lavfi',
  '-i',
  `${src}=size=${size}:rate=${rate}:duration=1`,
];

beforeAll(() => {
  if (!HAS_FFMPEG) return;
  dir = tmp('dif-video-');
  // Visible: colour test pattern with an audio track (ignored); IR: another pattern in gray.
  ffmpeg([
    ...lavfi('testsrc', 10),
    '-f',
    'lavfi',
    '-i',
    'sine=duration=1',
    '-shortest',
    '-pix_fmt',
    'yuv420p',
    join(dir, 'vis.mp4'),
  ]);
  ffmpeg([
    ...lavfi('testsrc2', 10),
    '-vf',
    'format=gray',
    '-pix_fmt',
    'yuv420p',
    join(dir, 'ir.mp4'),
  ]);
  ffmpeg([...lavfi('testsrc', 20), '-pix_fmt', 'yuv420p', join(dir, 'vis20.mp4')]);
  ffmpeg([...lavfi('testsrc', 10, '80x60'), '-pix_fmt', 'yuv420p', join(dir, 'vis80.mp4')]);
  // The same frames as image sequences (RGB PNG, as the decoder hands them to the fuser).
  for (const s of ['ir', 'vis']) {
    mkdirSync(join(dir, `${s}-seq`));
    ffmpeg([
      '-i',
      join(dir, `${s}.mp4`),
      '-fps_mode',
      'passthrough',
      '-pix_fmt',
      'rgb24',
      join(dir, `${s}-seq`, '%04d.png'),
    ]);
  }
});

const frames = (d: string) =>
  readdirSync(d)
    .filter((n) => n.endsWith('.png'))
    .sort();

describe.skipIf(!HAS_FFMPEG)('dif-fuse on videos', () => {
  it('fuses a video pair into a video: every frame, the size and rate kept, audio dropped', () => {
    const out = join(dir, 'fused.mp4');
    const r = dif(['--ir', join(dir, 'ir.mp4'), '--vis', join(dir, 'vis.mp4'), '-o', out]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^fused 10 frames at [\d.]+ fps -> .*fused\.mp4$/m);
    expect(probe(out)).toEqual({ frames: 10, width: W, height: H, fps: 10, audio: false });
    // the work folder of fused frames is gone, and no temporary file is left
    expect(readdirSync(dir).filter((n) => n.startsWith('.'))).toEqual([]);
  });

  it('decodes frames as the image path reads them: video and PNG sequences fuse byte-identically', () => {
    const a = join(dir, 'from-video');
    const b = join(dir, 'from-seq');
    expect(
      dif(['--ir', join(dir, 'ir.mp4'), '--vis', join(dir, 'vis.mp4'), '-o', a, '-q']).code,
    ).toBe(0);
    expect(
      dif(['--ir', join(dir, 'ir-seq'), '--vis', join(dir, 'vis-seq'), '-o', b, '-q']).code,
    ).toBe(0);
    expect(frames(a)).toEqual(
      Array.from({ length: 10 }, (_, i) => `${String(i + 1).padStart(6, '0')}.png`),
    );
    for (const f of frames(a))
      expect(readFileSync(join(a, f)).equals(readFileSync(join(b, f))), f).toBe(true);
    // ... and the same bytes as fusing that pair of stills
    const one = join(dir, 'still-7.png');
    const s = dif([
      '--ir',
      join(dir, 'ir-seq', '0007.png'),
      '--vis',
      join(dir, 'vis-seq', '0007.png'),
      '-o',
      one,
      '-q',
    ]);
    expect(s.code, s.stderr).toBe(0);
    expect(readFileSync(one).equals(readFileSync(join(a, '000007.png')))).toBe(true);
  });

  it('resumes: frames already fused are kept, the rest are fused, the result is the same', () => {
    const a = join(dir, 'from-seq');
    const before = frames(a).map((f) => readFileSync(join(a, f)));
    for (const f of frames(a).slice(3)) rmSync(join(a, f));
    const r = dif(['--ir', join(dir, 'ir-seq'), '--vis', join(dir, 'vis-seq'), '-o', a]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/fused 10 frames \(3 resumed\) at [\d.]+ fps/);
    expect(frames(a).map((f) => readFileSync(join(a, f)))).toEqual(before);
    // other settings in the same folder: refused rather than mixed
    const e = dif([
      '--ir',
      join(dir, 'ir-seq'),
      '--vis',
      join(dir, 'vis-seq'),
      '-o',
      a,
      '--seed',
      '3',
    ]);
    expectOneLineError(e, /holds frames of a different run/, expect);
  });

  it('a video run killed mid-way continues from its work folder', async () => {
    const out = join(dir, 'killed.mp4');
    const work = join(dir, '.killed.mp4.frames');
    const child = spawn(
      process.execPath,
      [CLI, '--ir', join(dir, 'ir-seq'), '--vis', join(dir, 'vis-seq'), '-o', out, '-q'],
      { stdio: 'ignore' },
    );
    const exited = new Promise((res) => child.on('exit', res));
    while (!existsSync(join(work, '000002.png'))) await new Promise((r) => setTimeout(r, 20));
    child.kill('SIGKILL');
    await exited;
    expect(existsSync(out)).toBe(false);
    const kept = frames(work).length;
    expect(kept).toBeGreaterThanOrEqual(2);
    const r = dif(['--ir', join(dir, 'ir-seq'), '--vis', join(dir, 'vis-seq'), '-o', out]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`fused 10 frames \\(${kept} resumed\\)`));
    expect(probe(out).frames).toBe(10);
    expect(existsSync(work)).toBe(false);
  });

  it('a static scene gives identical fused frames (the same noise for every frame)', () => {
    const st = join(dir, 'static');
    for (const s of ['ir', 'vis']) {
      mkdirSync(join(st, s), { recursive: true });
      for (const k of [1, 2, 3])
        copyFileSync(join(dir, `${s}-seq`, '0004.png'), join(st, s, `${k}.png`));
    }
    for (const seed of ['0', '5']) {
      const o = join(st, `out${seed}`);
      expect(
        dif(['--ir', join(st, 'ir'), '--vis', join(st, 'vis'), '-o', o, '-q', '--seed', seed]).code,
      ).toBe(0);
      const [f1, f2, f3] = frames(o).map((f) => readFileSync(join(o, f)));
      expect(f1.equals(f2) && f2.equals(f3)).toBe(true);
    }
    // ... and the noise matters: another seed gives other frames
    expect(
      readFileSync(join(st, 'out0', '000001.png')).equals(
        readFileSync(join(st, 'out5', '000001.png')),
      ),
    ).toBe(false);
  });

  it('pairs by timestamp across frame rates; index pairing of different rates is refused', () => {
    const e = dif([
      '--ir',
      join(dir, 'ir.mp4'),
      '--vis',
      join(dir, 'vis20.mp4'),
      '-o',
      join(dir, 'x.mp4'),
    ]);
    expectOneLineError(
      e,
      /vis20\.mp4: frame rate 20 fps differs from .*ir\.mp4's 10 fps: .*--pair-by timestamp$/,
      expect,
    );
    const out = join(dir, 'ts');
    const r = dif([
      '--ir',
      join(dir, 'ir.mp4'),
      '--vis',
      join(dir, 'vis20.mp4'),
      '-o',
      out,
      '--pair-by',
      'timestamp',
      '-q',
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect(frames(out)).toHaveLength(10);
  });

  it('--resize and --align rig.json on videos of different sizes: the infrared grid, every frame', () => {
    const out = join(dir, 'resized.mp4');
    const r = dif([
      '--ir',
      join(dir, 'ir.mp4'),
      '--vis',
      join(dir, 'vis80.mp4'),
      '-o',
      out,
      '--method',
      'average',
      '--resize',
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(
      /frame 1: resized 80x60 -> 64x48; visible warped onto the 64x48 infrared grid/,
    );
    expect(probe(out)).toEqual({ frames: 10, width: W, height: H, fps: 10, audio: false });
    // A rig whose visible size is not the video's is refused, naming both sizes.
    const rig = join(dir, 'rig.json');
    writeFileSync(
      rig,
      JSON.stringify({
        format: 'dif-fusion-rig',
        version: 1,
        transform: 'affine',
        vis_to_ir: [0.8, 0, 0, 0, 0.8, 0, 0, 0, 1],
        ir_size: [W, H],
        vis_size: [160, 120],
      }),
    );
    expectOneLineError(
      dif([
        '--ir',
        join(dir, 'ir.mp4'),
        '--vis',
        join(dir, 'vis80.mp4'),
        '-o',
        join(dir, 'r.mp4'),
        '--align',
        rig,
      ]),
      /vis80\.mp4: visible image is 80x60 but the rig .*rig\.json was calibrated for 160x120 visible images/,
      expect,
    );
  });

  it('one-line errors: size mismatch, missing ffmpeg, unreadable video', () => {
    expectOneLineError(
      dif(['--ir', join(dir, 'ir.mp4'), '--vis', join(dir, 'vis80.mp4'), '-o', join(dir, 'x.mp4')]),
      /vis80\.mp4: size mismatch: .*ir\.mp4 is 64x48 but .*vis80\.mp4 is 80x60 \(.*--align rig\.json.*--align auto.*--resize\)/,
      expect,
    );
    expectOneLineError(
      dif(['--ir', join(dir, 'ir.mp4'), '--vis', join(dir, 'vis.mp4'), '-o', join(dir, 'x.mp4')], {
        DIF_FUSE_FFMPEG: '/nonexistent/ffmpeg',
      }),
      /ffmpeg not found on PATH: video needs ffmpeg \(Debian\/Ubuntu: apt-get install ffmpeg\)/,
      expect,
    );
    const bad = join(dir, 'bad.mp4');
    writeFileSync(bad, 'this is not a video');
    expectOneLineError(
      dif(['--ir', bad, '--vis', join(dir, 'vis.mp4'), '-o', join(dir, 'x.mp4')]),
      /bad\.mp4: not a readable video \(.+\)$/,
      expect,
    );
    expect(existsSync(join(dir, 'x.mp4'))).toBe(false);
  });
});
