import { Rng } from '@dif-fusion/schedules';
import { describe, expect, it } from 'vitest';
import type { Image } from './image';
import { type AugmentedPair, augmentPair, resizeShorterSide, TrainingSampler } from './sampler';

/**
 * A pair whose IR value at (x, y) is v = (y * W + x) % 256 and whose visible planes are
 * R = v, G = 255 - v, B = 7: whatever crop/flip is applied, R must equal the IR.
 */
function pair(name: string, W: number, H: number) {
  const ir = new Uint8Array(W * H);
  const vi = new Uint8Array(W * H * 3);
  for (let i = 0; i < W * H; i++) {
    const v = i % 256;
    ir[i] = v;
    vi[i * 3] = v;
    vi[i * 3 + 1] = 255 - v;
    vi[i * 3 + 2] = 7;
  }
  const irImg: Image = { width: W, height: H, channels: 1, bitDepth: 8, data: ir };
  const viImg: Image = { width: W, height: H, channels: 3, bitDepth: 8, data: vi };
  return { name, ir: irImg, vi: viImg };
}

const toF = (v: number) => (v / 255) * 2 - 1;

/** The IR value the sample should hold at output (i, j), from the window and flips. */
function expectedIr(s: AugmentedPair, W: number, crop: number, i: number, j: number): number {
  const sx = s.hflip ? crop - 1 - i : i;
  const sy = s.vflip ? crop - 1 - j : j;
  return toF(((s.y + sy) * W + s.x + sx) % 256);
}

describe('augmentPair', () => {
  it('draws y, x, then the flips from the Rng, and crops the same window from both', () => {
    const W = 20;
    const H = 13;
    const crop = 8;
    const p = pair('p', W, H);
    let flips = { h: 0, v: 0 };
    for (let seed = 0; seed < 24; seed++) {
      const s = augmentPair(p, crop, new Rng(seed));
      const r = new Rng(seed);
      const y = r.int(H - crop + 1);
      const x = r.int(W - crop + 1);
      const h = r.uniform() > 0.5;
      const v = r.uniform() > 0.5;
      expect({ x: s.x, y: s.y, hflip: s.hflip, vflip: s.vflip, scaled: s.scaled }).toEqual({
        x,
        y,
        hflip: h,
        vflip: v,
        scaled: false,
      });
      flips = { h: flips.h + +h, v: flips.v + +v };
      expect([s.ir.width, s.ir.height, s.ir.channels]).toEqual([crop, crop, 1]);
      expect([s.vi.width, s.vi.height, s.vi.channels]).toEqual([crop, crop, 3]);
      const hw = crop * crop;
      for (let j = 0; j < crop; j++) {
        for (let i = 0; i < crop; i++) {
          const k = j * crop + i;
          expect(s.ir.data[k]).toBeCloseTo(expectedIr(s, W, crop, i, j), 6);
          expect(s.vi.data[k]).toBe(s.ir.data[k]); // same window, same flips
          expect(s.vi.data[hw + k]).toBeCloseTo(-s.ir.data[k], 6); // 255 - v
          expect(s.vi.data[2 * hw + k]).toBeCloseTo(toF(7), 6);
        }
      }
    }
    // 24 seeds: both flips happen, and not always
    expect(flips.h).toBeGreaterThan(0);
    expect(flips.h).toBeLessThan(24);
    expect(flips.v).toBeGreaterThan(0);
    expect(flips.v).toBeLessThan(24);
  });

  it('flips can be turned off; an exactly crop-sized image draws no window', () => {
    const p = pair('p', 6, 6);
    const rng = new Rng(3);
    const s = augmentPair(p, 6, rng, { hflip: false, vflip: false });
    expect([s.x, s.y, s.hflip, s.vflip]).toEqual([0, 0, false, false]);
    expect(rng.getState()).toEqual(new Rng(3).getState()); // nothing drawn
    expect(Array.from(s.ir.data)).toEqual(Array.from(p.ir.data, toF).map(Math.fround));
  });

  it('upscales images smaller than the crop (shorter side → crop, aspect kept), then crops', () => {
    expect(resizeShorterSide(8, 6, 12)).toEqual([16, 12]);
    expect(resizeShorterSide(5, 7, 10)).toEqual([10, 14]);
    expect(resizeShorterSide(3, 7, 4)).toEqual([4, 9]); // int(28 / 3)
    // constant images stay constant, R still equals IR
    const W = 8;
    const H = 6;
    const ir: Image = {
      width: W,
      height: H,
      channels: 1,
      bitDepth: 8,
      data: new Uint8Array(W * H).fill(200),
    };
    const vi: Image = {
      width: W,
      height: H,
      channels: 3,
      bitDepth: 8,
      data: new Uint8Array(W * H * 3).fill(200),
    };
    const s = augmentPair({ name: 'small', ir, vi }, 12, new Rng(1));
    expect(s.scaled).toBe(true);
    expect(s.y).toBe(0); // 12 - 12 + 1 = 1 choice
    expect(s.x).toBeLessThanOrEqual(16 - 12);
    expect([s.ir.width, s.ir.height, s.vi.width, s.vi.height]).toEqual([12, 12, 12, 12]);
    for (const v of s.ir.data) expect(v).toBeCloseTo(toF(200), 6);
    for (const v of s.vi.data) expect(v).toBeCloseTo(toF(200), 6);
    // a gradient keeps R = IR after the upscale too
    const g = augmentPair(pair('g', 5, 4), 9, new Rng(2));
    expect(g.scaled).toBe(true);
    expect(Array.from(g.vi.data.subarray(0, 81))).toEqual(Array.from(g.ir.data));
  });

  it('refuses pairs of different sizes', () => {
    const a = pair('a', 6, 6);
    const b = pair('b', 6, 5);
    expect(() => augmentPair({ name: 'x', ir: a.ir, vi: b.vi }, 4, new Rng(0))).toThrow(
      /x: IR is 6x6, visible 6x5/,
    );
  });
});

describe('TrainingSampler', () => {
  const pairs = [pair('a', 10, 8), pair('b', 9, 9), pair('c', 12, 7)];
  const source = { length: pairs.length, get: (i: number) => pairs[i] };

  it('batches NCHW: vis [B,3], ir [B,1], img [B,4] = vis then IR; epochs are permutations', async () => {
    const s = new TrainingSampler(source, { cropSize: 4, batchSize: 2, seed: 11 });
    expect(s.batchesPerEpoch).toBe(2);
    const names: string[] = [];
    const epochs: number[] = [];
    for (let k = 0; k < 3; k++) {
      const b = await s.next();
      expect(b.vis.length).toBe(2 * 3 * 16);
      expect(b.ir.length).toBe(2 * 16);
      expect(b.img.length).toBe(2 * 4 * 16);
      for (let n = 0; n < 2; n++) {
        expect(Array.from(b.img.subarray(n * 64, n * 64 + 48))).toEqual(
          Array.from(b.vis.subarray(n * 48, n * 48 + 48)),
        );
        expect(Array.from(b.img.subarray(n * 64 + 48, n * 64 + 64))).toEqual(
          Array.from(b.ir.subarray(n * 16, n * 16 + 16)),
        );
        // R plane of the visible image equals the IR (same window, same flips)
        expect(Array.from(b.vis.subarray(n * 48, n * 48 + 16))).toEqual(
          Array.from(b.ir.subarray(n * 16, n * 16 + 16)),
        );
      }
      names.push(...b.names);
      epochs.push(...b.epochs);
    }
    expect(epochs).toEqual([0, 0, 0, 1, 1, 1]);
    expect([...names.slice(0, 3)].sort()).toEqual(['a', 'b', 'c']);
    expect([...names.slice(3)].sort()).toEqual(['a', 'b', 'c']);
  });

  it('is deterministic for a seed, differs across seeds, and resumes exactly from its state', async () => {
    const run = async (seed: number, n: number) => {
      const s = new TrainingSampler(source, { cropSize: 5, batchSize: 2, seed });
      const out: Float32Array[] = [];
      for (let k = 0; k < n; k++) out.push((await s.next()).img);
      return out;
    };
    const a = await run(7, 4);
    const b = await run(7, 4);
    expect(a.map((x) => Array.from(x))).toEqual(b.map((x) => Array.from(x)));
    const c = await run(8, 4);
    expect(a.map((x) => Array.from(x))).not.toEqual(c.map((x) => Array.from(x)));

    const s1 = new TrainingSampler(source, { cropSize: 5, batchSize: 2, seed: 7 });
    await s1.next();
    const state = JSON.parse(JSON.stringify(s1.getState()));
    const s2 = new TrainingSampler(source, { cropSize: 5, batchSize: 2, seed: 999 });
    s2.setState(state);
    for (let k = 1; k < 4; k++) {
      const x = await s1.next();
      const y = await s2.next();
      expect(Array.from(y.img)).toEqual(Array.from(a[k]));
      expect(Array.from(y.img)).toEqual(Array.from(x.img));
      expect(y.names).toEqual(x.names);
    }
  });

  it('keeps the order when shuffle is off', async () => {
    const s = new TrainingSampler(source, { cropSize: 4, batchSize: 4, shuffle: false });
    expect((await s.next()).names).toEqual(['a', 'b', 'c', 'a']);
  });

  it('rejects bad options and empty sources with one line', () => {
    expect(
      () => new TrainingSampler({ length: 0, get: () => pairs[0] }, { cropSize: 4, batchSize: 1 }),
    ).toThrow('training sampler: the dataset has no pairs');
    expect(() => new TrainingSampler(source, { cropSize: 0, batchSize: 1 })).toThrow(
      'crop size must be a positive integer, got 0',
    );
    expect(() => new TrainingSampler(source, { cropSize: 4, batchSize: 1.5 })).toThrow(
      'batch size must be a positive integer, got 1.5',
    );
    const s = new TrainingSampler(source, { cropSize: 4, batchSize: 1 });
    expect(() => s.setState({ ...s.getState(), order: [0] })).toThrow(
      'sampler state is for 1 pairs, the dataset has 3',
    );
  });
});
