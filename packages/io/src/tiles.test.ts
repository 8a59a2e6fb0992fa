import { Rng } from '@dif-fusion/schedules';
import { describe, expect, it } from 'vitest';
import type { FloatImage } from './convert';
import { extractTile, planTiles, rampWeights, TileBlender } from './tiles';

function randomImage(width: number, height: number, channels: number, seed: number): FloatImage {
  const r = new Rng(seed);
  const data = new Float32Array(width * height * channels);
  for (let i = 0; i < data.length; i++) data[i] = r.uniform() * 2 - 1;
  return { width, height, channels, data };
}

function blend(img: FloatImage, tile: number, overlap: number, op: (t: FloatImage) => FloatImage) {
  const b = new TileBlender(img.width, img.height, img.channels);
  for (const t of planTiles(img.width, img.height, tile, overlap))
    b.add(t, op(extractTile(img, t)));
  return b.result();
}

function maxDiff(a: Float32Array, b: Float32Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

describe('planTiles', () => {
  it('covers the image with overlapping tiles, the last aligned to the edge', () => {
    const t = planTiles(10, 7, 4, 1);
    expect(t.map((x) => [x.x, x.y])).toEqual([
      [0, 0],
      [3, 0],
      [6, 0],
      [0, 3],
      [3, 3],
      [6, 3],
    ]);
    expect(t.every((x) => x.width === 4 && x.height === 4)).toBe(true);
    expect(t[4].overlap).toEqual({ left: 1, right: 1, top: 1, bottom: 0 });
    expect(t[0].overlap).toEqual({ left: 0, right: 1, top: 0, bottom: 1 });
    expect(t.map((x) => x.index)).toEqual([0, 1, 2, 3, 4, 5]);
    // 11 wide: starts 0, 3, 6, then 7 (edge-aligned, overlapping its neighbour by 3)
    const u = planTiles(11, 4, 4, 1);
    expect(u.map((x) => x.x)).toEqual([0, 3, 6, 7]);
    expect(u[2].overlap.right).toBe(3);
    expect(u[3].overlap.left).toBe(3);
  });

  it('one tile, the image size, when the image is smaller than a tile', () => {
    expect(planTiles(3, 5, 8, 2)).toEqual([
      {
        index: 0,
        x: 0,
        y: 0,
        width: 3,
        height: 5,
        overlap: { left: 0, top: 0, right: 0, bottom: 0 },
      },
    ]);
  });

  it('rejects bad sizes', () => {
    expect(() => planTiles(4, 4, 4, 4)).toThrow('tile overlap must be an integer in 0..3, got 4');
    expect(() => planTiles(0, 4, 4, 1)).toThrow('cannot tile a 0x4 image');
    expect(() => planTiles(4, 4, 0, 0)).toThrow('tile size must be a positive integer, got 0');
  });
});

describe('blending tiles back', () => {
  it('ramp weights (k + 1) / (o + 1) over each overlap', () => {
    expect(Array.from(rampWeights(6, 2, 1))).toEqual(
      [1 / 3, 2 / 3, 1, 1, 1, 1 / 2].map(Math.fround),
    );
    expect(Array.from(rampWeights(3, 0, 0))).toEqual([1, 1, 1]);
  });

  it.each([
    [37, 23, 3, 16, 4],
    [37, 23, 1, 8, 0],
    [16, 16, 3, 16, 8],
    [5, 40, 2, 7, 6],
    [9, 9, 1, 32, 8],
  ])(
    'identity op gives the image back (%ix%i, %i ch, tile %i, overlap %i)',
    (w, h, c, tile, ov) => {
      const img = randomImage(w, h, c, w * h + tile);
      const back = blend(img, tile, ov, (t) => t);
      expect([back.width, back.height, back.channels]).toEqual([w, h, c]);
      expect(maxDiff(back.data, img.data)).toBeLessThan(1e-6);
    },
  );

  it('a pixelwise op commutes with tiling (x → 2x + 0.5)', () => {
    const img = randomImage(30, 20, 3, 5);
    const op = (t: FloatImage) => ({ ...t, data: t.data.map((v) => 2 * v + 0.5) });
    expect(maxDiff(blend(img, 12, 5, op).data, op(img).data)).toBeLessThan(1e-5);
  });

  it('overlaps are cross-faded: two constant tiles blend linearly', () => {
    // 7 wide, tiles of 5 with overlap 3: x = 0 and 2, overlap columns 2, 3, 4
    const tiles = planTiles(7, 1, 5, 3);
    expect(tiles.map((t) => t.x)).toEqual([0, 2]);
    const b = new TileBlender(7, 1, 1);
    b.add(tiles[0], new Float32Array(5).fill(0));
    b.add(tiles[1], new Float32Array(5).fill(1));
    // weights: left tile [1,1,3/4,2/4,1/4], right tile [1/4,2/4,3/4,1,1] over columns 2..6
    const got = Array.from(b.result().data);
    const want = [0, 0, 0.25, 0.5, 0.75, 1, 1];
    got.forEach((v, i) => {
      expect(v).toBeCloseTo(want[i], 6);
    });
  });

  it('checks tile sizes and coverage', () => {
    const [t] = planTiles(4, 4, 2, 0);
    const b = new TileBlender(4, 4, 1);
    expect(() => b.add(t, new Float32Array(3))).toThrow('tile 0 has 3 values, expected 4');
    expect(() => b.add(t, { width: 1, height: 4, channels: 1, data: new Float32Array(4) })).toThrow(
      'tile 0 is 1x4, expected 2x2',
    );
    b.add(t, new Float32Array(4));
    expect(() => b.result()).toThrow('pixel (2, 0) is covered by no tile');
  });
});
