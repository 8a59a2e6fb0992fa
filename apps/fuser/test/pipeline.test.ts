import { join } from 'node:path';
import { parseFusionBlocks } from '@dif-fusion/fusion-head';
import { reflectIndex } from '@dif-fusion/io';
import { readModelConfig } from '@dif-fusion/onnx';
import { describe, expect, it } from 'vitest';
import { modelMemory } from '../src/fuse';
import type { Planar } from '../src/images';
import {
  autoTile,
  ceilTo,
  cellNoise,
  cropPlanes,
  DEFAULT_TILE,
  type Fuser,
  fusePlanar,
  MIN_AUTO_TILE,
  NOISE_CELL,
  planTiles,
  reflectPad,
} from '../src/pipeline';
import { REPO } from './helpers';

/** Tile x starts of a plan's first row. */
const tileStarts = (len: number, size: number, ov: number) =>
  planTiles(1, len, 16, { tile: size, overlap: ov }).map((t) => t.x);

/** Small seeded generator for test data. */
class Rng {
  private a: number;
  constructor(seed: number) {
    this.a = seed >>> 0;
  }
  uniform(): number {
    this.a = (this.a + 0x6d2b79f5) >>> 0;
    let t = this.a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
}

function randomPair(h: number, w: number, seed = 1): { ir: Planar; vis: Planar } {
  const rng = new Rng(seed);
  const ir = new Float32Array(h * w).map(() => rng.uniform() * 2 - 1);
  const vis = new Float32Array(3 * h * w).map(() => rng.uniform() * 2 - 1);
  return {
    ir: { data: ir, channels: 1, height: h, width: w },
    vis: { data: vis, channels: 3, height: h, width: w },
  };
}

/** Test "normal" generator for cellNoise: seeded uniforms in [-0.5, 0.5). */
const uniformCells = (seed: number, count: number) => {
  const rng = new Rng(seed);
  return new Float32Array(count).map(() => rng.uniform() - 0.5);
};

/** A pointwise stand-in for the model that also reads the noise, and records the shapes it saw. */
function pointwiseFuser(multiple = 16, seen: [number, number][] = []): Fuser {
  return {
    multiple,
    noise: { steps: 2, channels: 4, window: cellNoise(7, 2, 4, uniformCells) },
    run: async (ir, vis, noise, h, w) => {
      expect(h % multiple).toBe(0);
      expect(w % multiple).toBe(0);
      seen.push([h, w]);
      const n = h * w;
      const out = new Float32Array(3 * n);
      for (let c = 0; c < 3; c++)
        for (let i = 0; i < n; i++)
          // noise [K=2,1,C=4,h,w]: use plane (k=1, c) so a wrong slice would show
          out[c * n + i] = 0.5 * vis[c * n + i] + 0.25 * ir[i] + 0.1 * noise![(4 + c) * n + i];
      return out;
    },
  };
}

/** A 3x3 box blur of the average of the inputs: not pointwise, so tiles see their borders. */
const blurFuser: Fuser = {
  multiple: 16,
  run: async (ir, vis, _noise, h, w) => {
    const n = h * w;
    const out = new Float32Array(3 * n);
    for (let c = 0; c < 3; c++)
      for (let y = 0; y < h; y++)
        for (let x = 0; x < w; x++) {
          let s = 0;
          for (let dy = -1; dy <= 1; dy++)
            for (let dx = -1; dx <= 1; dx++) {
              const yy = reflectIndex(y + dy, h);
              const xx = reflectIndex(x + dx, w);
              s += 0.5 * (vis[c * n + yy * w + xx] + ir[yy * w + xx]);
            }
          out[c * n + y * w + x] = s / 9;
        }
    return out;
  },
};

describe('reflect pad and crop', () => {
  it('reflects like numpy (edge not repeated), periodically for long pads', () => {
    expect([0, 1, 2, 3, 4, 5, 6].map((i) => reflectIndex(i, 4))).toEqual([0, 1, 2, 3, 2, 1, 0]);
    expect([7, 8, 9].map((i) => reflectIndex(i, 4))).toEqual([1, 2, 3]);
    expect(reflectIndex(-1, 4)).toBe(1);
    expect(reflectIndex(5, 1)).toBe(0);
  });

  it('pads a 2x3 plane to 4x5 by reflection and crops back exactly', () => {
    const src = Float32Array.from([1, 2, 3, 4, 5, 6]);
    const p = reflectPad(src, 1, 2, 3, 4, 5);
    // rows: r0, r1, r0, r1 (reflect of 2 rows), columns: c0 c1 c2 c1 c0
    expect(Array.from(p)).toEqual([1, 2, 3, 2, 1, 4, 5, 6, 5, 4, 1, 2, 3, 2, 1, 4, 5, 6, 5, 4]);
    expect(Array.from(cropPlanes(p, 1, 4, 5, 0, 0, 2, 3))).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it('pads every channel the same way', () => {
    const src = Float32Array.from([1, 2, 10, 20]); // 2 channels of 1x2
    expect(Array.from(reflectPad(src, 2, 1, 2, 2, 3))).toEqual([
      1, 2, 1, 1, 2, 1, 10, 20, 10, 10, 20, 10,
    ]);
  });

  it.each([
    [1, 1],
    [15, 17],
    [16, 16],
    [33, 5],
    [100, 75],
  ])(
    'a %ix%i image goes through the model at multiples of 16 and comes back at its own size',
    async (h, w) => {
      const { ir, vis } = randomPair(h, w);
      const seen: [number, number][] = [];
      const out = await fusePlanar(ir, vis, pointwiseFuser(16, seen), { tile: 'off' });
      expect(seen).toEqual([[ceilTo(h, 16), ceilTo(w, 16)]]);
      expect(out.height).toBe(h);
      expect(out.width).toBe(w);
      expect(out.data.length).toBe(3 * h * w);
    },
  );
});

describe('tiling', () => {
  it('plans tiles that cover the axis with the requested overlap, the last flush with the end', () => {
    expect(tileStarts(100, 128, 16)).toEqual([0]);
    expect(tileStarts(128, 128, 16)).toEqual([0]);
    expect(tileStarts(200, 64, 16)).toEqual([0, 48, 96, 136]);
    for (const [len, size, ov] of [
      [1000, 256, 32],
      [513, 512, 64],
      [4096, 512, 64],
    ]) {
      const s = tileStarts(len, size, ov);
      expect(s[0]).toBe(0);
      expect(s[s.length - 1] + size).toBe(len);
      for (let i = 1; i < s.length; i++) expect(s[i - 1] + size - s[i]).toBeGreaterThanOrEqual(ov);
    }
  });

  it('tiles automatically above the pixel threshold only', () => {
    expect(planTiles(480, 640, 16)).toHaveLength(1);
    const p = planTiles(2160, 3840, 16);
    expect(p.length).toBe(5 * 9);
    expect(p[0].width).toBe(512);
    expect(planTiles(2160, 3840, 16, { tile: 'off' })).toHaveLength(1);
  });

  it('--tile off with a model whose whole-image run exceeds the machine is refused before running', () => {
    // The shipped configuration's estimate (inner_channel 16 class, attention at 1/4 scale).
    // (read as the runtime reads it: the folder's UNet block predates the key rename)
    const memory = modelMemory(
      readModelConfig(join(REPO, 'models', 'default'), parseFusionBlocks),
    )!;
    const need = memory(2160, 3840);
    // (v5: one time step; v4's three needed 44.3 GB)
    expect(Math.round(need / 1e8) / 10).toBe(14.8);
    expect(() => planTiles(2160, 3840, 16, { tile: 'off', machineMemory: 8e9 }, memory)).toThrow(
      `--tile off: fusing 3840x2160 whole needs about ${(need / 1e9).toFixed(1)} GB of working memory (estimated from the model's config.json), more than this machine's 8.0 GB; use --tile auto or a tile size`,
    );
    // Within the machine: one whole-image tile, as asked.
    expect(planTiles(240, 320, 16, { tile: 'off', machineMemory: 16e9 }, memory)).toHaveLength(1);
    expect(memory(240, 320)).toBeLessThan(16e9);
    expect(() => planTiles(300, 300, 16, { tile: 100 })).toThrow(/multiple of 16/);
    expect(() => planTiles(300, 300, 16, { tile: 64, overlap: 32 })).toThrow(/half the tile/);
  });

  it.each([
    [200, 300, 64, 16],
    [130, 97, 64, 8],
    [64, 250, 48, 16],
    [37, 300, 64, 20],
  ])(
    'a pointwise model (reading noise) gives exactly the untiled result on %ix%i, tile %i overlap %i',
    async (h, w, tile, overlap) => {
      const { ir, vis } = randomPair(h, w, h * w);
      const whole = await fusePlanar(ir, vis, pointwiseFuser(), { tile: 'off' });
      let calls = 0;
      const tiled = await fusePlanar(ir, vis, pointwiseFuser(), {
        tile,
        overlap,
        onProgress: () => {
          calls++;
        },
      });
      expect(calls).toBeGreaterThan(1);
      expect(tiled.data).toEqual(whole.data);
    },
  );

  it('a 3x3 blur matches the untiled result exactly away from tile borders and closely at them', async () => {
    const h = 150;
    const w = 170;
    const { ir, vis } = randomPair(h, w, 3);
    const whole = await fusePlanar(ir, vis, blurFuser, { tile: 'off' });
    const tiled = await fusePlanar(ir, vis, blurFuser, { tile: 64, overlap: 16 });
    // Pixels at least 2 px inside every tile that covers them are exact (the blur reaches 1 px);
    // with a 16 px ramp, border pixels have a small weight, so the error stays small.
    let maxErr = 0;
    for (let i = 0; i < whole.data.length; i++)
      maxErr = Math.max(maxErr, Math.abs(whole.data[i] - tiled.data[i]));
    expect(maxErr).toBeLessThan(0.05);
    const ys = tileStarts(h, 64, 16);
    const xs = tileStarts(w, 64, 16);
    const interior = (v: number, starts: number[], len: number) =>
      starts.every(
        (s) =>
          v < s ||
          v >= s + 64 ||
          (v >= s + 1 && v < s + 63) ||
          (s === 0 && v === 0) ||
          (s + 64 === len && v === len - 1),
      );
    let checked = 0;
    for (let y = 0; y < h; y++)
      for (let x = 0; x < w; x++)
        if (interior(y, ys, h) && interior(x, xs, w)) {
          checked++;
          for (let c = 0; c < 3; c++) {
            const i = c * h * w + y * w + x;
            expect(Math.abs(whole.data[i] - tiled.data[i])).toBeLessThan(1e-6);
          }
        }
    expect(checked).toBeGreaterThan(h * w * 0.8);
  });

  it('is deterministic', async () => {
    const { ir, vis } = randomPair(90, 140, 9);
    const a = await fusePlanar(ir, vis, pointwiseFuser(), { tile: 64, overlap: 16 });
    const b = await fusePlanar(ir, vis, pointwiseFuser(), { tile: 64, overlap: 16 });
    expect(a.data).toEqual(b.data);
  });
});

describe('cell noise', () => {
  const full = (seed: number, h: number, w: number) =>
    cellNoise(seed, 3, 4, uniformCells)(0, 0, h, w);

  it('a window equals the same crop of the whole frame (so tiles see the untiled noise)', () => {
    const H = 150;
    const W = 200;
    const whole = full(5, H, W);
    const win = cellNoise(5, 3, 4, uniformCells);
    for (const [y0, x0, h, w] of [
      [0, 0, 64, 64],
      [10, 70, 100, 33],
      [63, 63, 2, 2],
      [128, 150, 22, 50],
    ]) {
      const got = win(y0, x0, h, w);
      expect(got.length).toBe(12 * h * w);
      expect(got).toEqual(cropPlanes(whole, 12, H, W, y0, x0, h, w));
    }
  });

  it('is the generator output laid out cell by cell, and depends on seed, step and cell', () => {
    const S = NOISE_CELL;
    const a = full(1, S, 2 * S);
    const draws: number[] = [];
    const b = cellNoise(1, 3, 4, (s, n) => {
      draws.push(s);
      return uniformCells(s, n);
    })(0, 0, S, 2 * S);
    expect(b).toEqual(a);
    // 3 steps x 2 cells, all with different generator seeds
    expect(new Set(draws).size).toBe(6);
    // cell (0,0) of step 0, channel 1, row 2, column 3 is element 1*S*S + 2*S + 3 of its draw
    expect(a[1 * S * 2 * S + 2 * 2 * S + 3]).toBe(
      uniformCells(draws[0], 4 * S * S)[S * S + 2 * S + 3],
    );
    expect(full(2, S, 2 * S)).not.toEqual(a);
    expect(full(1, S, 2 * S)).toEqual(a);
  });
});

describe("'auto' tiling from a memory estimate", () => {
  // quadratic in the pixel count, like self-attention
  const quad = (h: number, w: number) => (h * w) ** 2 / 256;

  it('fuses the whole image when it fits, else the largest square tile that fits', () => {
    expect(autoTile(64, 64, 16, quad, { memoryBudget: 65536 })).toBe('off'); // 4096^2/256
    expect(autoTile(64, 64, 16, quad, { memoryBudget: 65535 })).toBe(MIN_AUTO_TILE);
    // largest multiple of 16 with t^4/256 <= 1e9: 704 (704^4/256 = 9.6e8, 720^4/256 = 1.05e9)
    expect(autoTile(2000, 3000, 16, quad, { memoryBudget: 1e9 })).toBe(704);
    expect(planTiles(2000, 3000, 16, { memoryBudget: 1e9 }, quad)[0].width).toBe(704);
    // without an estimate (baselines): the pixel rule
    expect(autoTile(480, 640, 16, undefined)).toBe('off');
    expect(autoTile(2160, 3840, 16, undefined)).toBe(DEFAULT_TILE);
  });

  it('models whose size multiple is 2: whole tiles and a whole overlap', async () => {
    // the largest even t with t^4/256 <= 5.6e6 is 194: default overlap 194/4 = 48.5 -> 48
    expect(autoTile(300, 400, 2, quad, { memoryBudget: 5.6e6 })).toBe(194);
    const tiles = planTiles(300, 400, 2, { memoryBudget: 5.6e6 }, quad);
    expect(tiles.every((t) => t.width === 194 && t.height === 194)).toBe(true);
    expect(tiles[1].x - tiles[0].x).toBe(194 - 48);
    expect(tiles.at(-1)).toMatchObject({ x: 400 - 194, y: 300 - 194 });
    // and the fusion itself runs (a pointwise fuser gives back its input exactly)
    const ir = new Float32Array(300 * 400).map((_, i) => ((i * 37) % 200) / 100 - 1);
    const vis = new Float32Array(3 * 300 * 400).fill(0);
    const fuser: Fuser = {
      multiple: 2,
      memory: quad,
      run: async (irT, _v, _n, h, w) => {
        const out = new Float32Array(3 * h * w);
        for (let c = 0; c < 3; c++) out.set(irT, c * h * w);
        return out;
      },
    };
    const out = await fusePlanar(
      { width: 400, height: 300, channels: 1, data: ir },
      { width: 400, height: 300, channels: 3, data: vis },
      fuser,
      { memoryBudget: 5.6e6 },
    );
    for (let i = 0; i < ir.length; i += 997) expect(out.data[i]).toBeCloseTo(ir[i], 6);
  });

  it('estimates the model memory from its UNet config: attention at 1/4 scale, K = 3', () => {
    const mem = modelMemory({
      unet: {
        image_size: 64,
        attn_res: [16],
        channel_multiplier: [1, 2, 4, 8, 8],
        inner_channel: 16,
      },
      head: { time_steps: [5, 50, 100] },
    })!;
    // 640x480: 19200 tokens at 1/4; 2 x 3 x 19200^2 x 4 B + 16 x 3 x 16 x 640 x 480 x 4 B
    expect(mem(480, 640)).toBe(2 * 3 * 19200 ** 2 * 4 + 16 * 3 * 16 * 640 * 480 * 4);
    // without image_size only the middle block (1/16) attends
    const mid = modelMemory({
      unet: { channel_multiplier: [1, 2, 4, 8, 8], inner_channel: 16 },
      head: { time_steps: [5] },
    })!;
    expect(mid(480, 640)).toBe(2 * 1 * 1200 ** 2 * 4 + 16 * 16 * 640 * 480 * 4);
    expect(modelMemory({ unet: {}, head: { time_steps: [5] } })).toBeUndefined();
    // a 1.5 GB budget (--memory 1500, the default before it followed the memory available)
    // tiles a 640x480 pair of this model in 320 px tiles
    expect(autoTile(480, 640, 16, mem, { memoryBudget: 1.5e9 })).toBe(320);
  });
});
