import { describe, expect, it } from 'vitest';
import { pairFrames } from './pairing';

const src = (path: string, fps: number | undefined, count: number, w = 64, h = 48) => ({
  path,
  width: w,
  height: h,
  fps,
  count,
  times: fps ? Array.from({ length: count }, (_, i) => i / fps) : undefined,
});

describe('pairFrames', () => {
  it('pairs by index up to the shorter source, with a warning naming the longer', () => {
    const r = pairFrames(src('ir.mp4', 10, 5), src('vis.mp4', 10, 3), 'index');
    expect(r.pairs).toEqual([
      [0, 0],
      [1, 1],
      [2, 2],
    ]);
    expect(r.warnings).toEqual([
      'ir.mp4 has 5 frames, vis.mp4 3: the last 2 of ir.mp4 are not fused',
    ]);
  });

  it('refuses index pairing of different frame rates, pointing at --pair-by timestamp', () => {
    expect(() => pairFrames(src('ir.mp4', 10, 5), src('vis.mp4', 20, 10), 'index')).toThrow(
      "vis.mp4: frame rate 20 fps differs from ir.mp4's 10 fps: pairing by index would drift; use --pair-by timestamp",
    );
    // 29.97 vs 30 is 0.1 %: refused; an image sequence (no rate) pairs with anything.
    expect(() => pairFrames(src('a', 30000 / 1001, 3), src('b', 30, 3), 'index')).toThrow(/drift/);
    expect(pairFrames(src('a', 10, 2), src('seq', undefined, 2), 'index').pairs).toHaveLength(2);
  });

  it('refuses different sizes', () => {
    expect(() => pairFrames(src('ir.mp4', 10, 1), src('vis.mp4', 10, 1, 80, 60), 'index')).toThrow(
      "vis.mp4: size mismatch: ir.mp4 is 64x48 but vis.mp4 is 80x60 (a camera rig's pair: --align rig.json from dif-fuse align, or --align auto; the same field of view at another resolution: --resize)",
    );
  });

  it('pairs by timestamp with the nearest visible frame within half its interval', () => {
    // IR at 10 fps (0, .1, .2, .3), visible at 20 fps: the even visible frames match exactly.
    const r = pairFrames(src('ir', 10, 4), src('vis', 20, 8), 'timestamp');
    expect(r.pairs).toEqual([
      [0, 0],
      [1, 2],
      [2, 4],
      [3, 6],
    ]);
    expect(r.warnings).toEqual([]);
    // Visible at 5 fps (0, .2, .4): IR 0.1 and 0.3 are 0.1 s from both neighbours, within
    // half the visible interval (0.1 s): the earlier one wins; IR 0.5 has no partner.
    const s = pairFrames(src('ir', 10, 6), src('vis', 5, 3), 'timestamp');
    expect(s.pairs).toEqual([
      [0, 0],
      [1, 0],
      [2, 1],
      [3, 1],
      [4, 2],
      [5, 2],
    ]);
    const late = { ...src('ir', 10, 3), times: [0, 0.1, 0.9] };
    const t = pairFrames(late, src('vis', 10, 3), 'timestamp');
    expect(t.pairs).toEqual([
      [0, 0],
      [1, 1],
    ]);
    expect(t.warnings[0]).toMatch(/^1 frame\(s\) of ir have no frame of vis within 50 ms/);
  });

  it('needs timestamps on both sides for --pair-by timestamp', () => {
    expect(() => pairFrames(src('ir', 10, 2), src('seq', undefined, 2), 'timestamp')).toThrow(
      '--pair-by timestamp needs two videos: seq is an image sequence (no timestamps)',
    );
  });
});
