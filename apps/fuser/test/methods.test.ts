import { describe, expect, it } from 'vitest';
import { fuseBaseline } from '../src/methods';

// 1x2 images in [-1,1]: pixel 0 and pixel 1, planar channels.
const ir = Float32Array.from([-0.5, 0.8]);
const visGray = Float32Array.from([0.5, -0.2, 0.5, -0.2, 0.5, -0.2]); // R, G, B planes, gray pixels

describe('baselines on hand-computed 1x2 images', () => {
  it('average: (vis_c + ir) / 2 per channel', () => {
    const vis = Float32Array.from([1, -1, 0, 0.5, -1, 0.2]);
    const out = fuseBaseline('average', ir, vis, 1, 2);
    const want = [0.25, -0.1, -0.25, 0.65, -0.75, 0.5];
    for (const [i, v] of out.entries()) expect(v).toBeCloseTo(want[i], 6);
  });

  it('max: max(vis_c, ir) per channel', () => {
    const vis = Float32Array.from([1, -1, 0, 0.5, -1, 0.9]);
    expect(Array.from(fuseBaseline('max', ir, vis, 1, 2))).toEqual(
      [1, 0.8, 0, 0.8, -0.5, 0.9].map((v) => Math.fround(v)),
    );
  });

  it('ycbcr-average on gray visible pixels: Y averaged with IR, stays gray', () => {
    const out = fuseBaseline('ycbcr-average', ir, visGray, 1, 2);
    // Y = 0.75 and 0.4 in [0,1]; IR = 0.25 and 0.9; average 0.5 and 0.65 -> 0 and 0.3 in [-1,1]
    for (let c = 0; c < 3; c++) {
      expect(out[c * 2]).toBeCloseTo(0, 6);
      expect(out[c * 2 + 1]).toBeCloseTo(0.3, 6);
    }
  });

  it('ycbcr-max on gray visible pixels: max of Y and IR', () => {
    const out = fuseBaseline('ycbcr-max', ir, visGray, 1, 2);
    for (let c = 0; c < 3; c++) {
      expect(out[c * 2]).toBeCloseTo(0.5, 6); // Y 0.75 > IR 0.25
      expect(out[c * 2 + 1]).toBeCloseTo(0.8, 6); // IR 0.9 > Y 0.4
    }
  });

  it('ycbcr methods keep the visible chroma: IR equal to Y leaves a colour pixel unchanged', () => {
    // pure-ish orange (R,G,B) = (0.9, 0.5, 0.1) in [0,1]; Y = 0.299*0.9 + 0.587*0.5 + 0.114*0.1
    const rgb = [0.9, 0.5, 0.1];
    const y = 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2];
    const vis = Float32Array.from(rgb.map((v) => v * 2 - 1));
    const irY = Float32Array.from([y * 2 - 1]);
    for (const m of ['ycbcr-average', 'ycbcr-max'] as const) {
      const out = fuseBaseline(m, irY, vis, 1, 1);
      // BT.601 forward/inverse constants round-trip to about 1e-3
      for (const [i, v] of out.entries()) expect(Math.abs(v - vis[i])).toBeLessThan(4e-3);
    }
  });

  it('ycbcr-max brightens a dark coloured pixel towards a hot IR pixel without losing its hue order', () => {
    const vis = Float32Array.from([0.2, 0.1, 0.05].map((v) => v * 2 - 1)); // dark red-brown
    const hot = Float32Array.from([0.8]);
    const out = Array.from(fuseBaseline('ycbcr-max', hot, vis, 1, 1)).map((v) => (v + 1) / 2);
    const yOut = 0.299 * out[0] + 0.587 * out[1] + 0.114 * out[2];
    expect(yOut).toBeCloseTo(0.9, 2);
    expect(out[0]).toBeGreaterThan(out[1]);
    expect(out[1]).toBeGreaterThan(out[2]);
  });

  it('rejects inputs of the wrong length', () => {
    expect(() => fuseBaseline('average', ir, visGray, 2, 2)).toThrow(/expected/);
  });
});
