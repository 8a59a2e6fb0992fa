import { describe, expect, it } from 'vitest';
import {
  applyPoint,
  cornerRms,
  fitTransform,
  inv3,
  mul3,
  type PointPair,
  pixelScale,
  pointRms,
} from './matrix';
import { overlapRect, warpImage } from './warp';

const pts: [number, number][] = [
  [10, 20],
  [300, 15],
  [310, 240],
  [5, 230],
  [150, 120],
  [80, 200],
];

function pairsFor(m: number[]): PointPair[] {
  return pts.map((p) => ({ from: p, to: applyPoint(m, p[0], p[1]) }));
}

describe('transforms', () => {
  it('inverts and composes (hand-computed: scale 2, shift (3, -1))', () => {
    const m = [2, 0, 3, 0, 2, -1, 0, 0, 1];
    expect(inv3(m).map((v) => Number(v.toFixed(12)))).toEqual([0.5, 0, -1.5, 0, 0.5, 0.5, 0, 0, 1]);
    expect(applyPoint(m, 1, 1)).toEqual([5, 1]);
    expect(mul3(m, inv3(m)).map((v) => Math.round(v * 1e12) / 1e12)).toEqual([
      1, 0, 0, 0, 1, 0, 0, 0, 1,
    ]);
    // half-pixel centres: pixel 0 of an image halved covers source pixels 0 and 1 -> 0.5
    expect(applyPoint(inv3(pixelScale(0.5)), 0, 0)).toEqual([0.5, 0.5]);
  });

  it('pixel scales keep pixel centres, not pixel corners, at integers (hand-computed)', () => {
    // doubling: source pixel 0 covers [-0.5, 0.5] -> [-1, 1], centre 0 -> 0.5 of the big grid
    expect(applyPoint(pixelScale(2), 0, 0)).toEqual([0.5, 0.5]);
    // the footprint's edges map onto each other: -0.5 -> -0.5, w - 0.5 -> 2w - 0.5
    expect(applyPoint(pixelScale(2), -0.5, 9.5)).toEqual([-0.5, 19.5]);
    // 0.4 (a 1520 px visible image onto a 608 px grid): centre 0 -> -0.3, not 0
    const [x, y] = applyPoint(pixelScale(0.4, 0.25), 0, 0);
    expect([Number(x.toFixed(12)), Number(y.toFixed(12))]).toEqual([-0.3, -0.375]);
  });

  it('corner RMS of a pure 3 px shift is 3 px', () => {
    expect(
      cornerRms([1, 0, 3, 0, 1, 0, 0, 0, 1], [1, 0, 0, 0, 1, 0, 0, 0, 1], 100, 50),
    ).toBeCloseTo(3, 12);
  });

  it.each([
    [
      'similarity',
      [
        0.4 * Math.cos(0.05),
        -0.4 * Math.sin(0.05),
        33,
        0.4 * Math.sin(0.05),
        0.4 * Math.cos(0.05),
        21,
        0,
        0,
        1,
      ],
    ],
    ['affine', [0.41, -0.011, 33.8, 0.007, 0.38, 29.1, 0, 0, 1]],
    ['homography', [0.41, -0.011, 33.8, 0.007, 0.38, 29.1, 2e-5, -1e-5, 1]],
  ] as const)('recovers a %s from exact point pairs (round trip)', (kind, m) => {
    const fit = fitTransform(pairsFor([...m]), kind);
    expect(cornerRms(fit, m, 320, 240)).toBeLessThan(1e-6);
    expect(pointRms(fit, pairsFor([...m]))).toBeLessThan(1e-6);
  });

  it('least squares through noisy points; degenerate points are refused', () => {
    const m = [0.5, 0, 10, 0, 0.5, 20, 0, 0, 1];
    const noisy = pairsFor(m).map((p, i) => ({
      ...p,
      to: [p.to[0] + (i % 2 ? 0.3 : -0.3), p.to[1]] as [number, number],
    }));
    expect(cornerRms(fitTransform(noisy, 'affine'), m, 320, 240)).toBeLessThan(0.6);
    const line: PointPair[] = [0, 1, 2, 3].map((i) => ({ from: [i, i], to: [i, i] }));
    expect(() => fitTransform(line, 'homography')).toThrow(/degenerate/);
    expect(() => fitTransform(line.slice(0, 3), 'homography')).toThrow(/at least 4/);
  });
});

describe('warp', () => {
  it('an integer shift moves pixels exactly; uncovered pixels are masked out', () => {
    const w = 6;
    const h = 4;
    const data = Float32Array.from({ length: w * h }, (_, i) => i);
    // source pixel (x, y) -> target (x + 2, y + 1)
    const { image, mask } = warpImage(
      { width: w, height: h, channels: 1, data },
      [1, 0, 2, 0, 1, 1, 0, 0, 1],
      w,
      h,
    );
    expect(image.data[1 * w + 2]).toBe(0);
    expect(image.data[3 * w + 5]).toBe(2 * w + 3);
    expect(mask[0]).toBe(0);
    expect(mask[1 * w + 2]).toBe(1);
  });

  it('the mask is 1 over the whole footprint (pixel edges) and fades over the half pixel beyond', () => {
    const src = { width: 4, height: 3, channels: 1, data: new Float32Array(12).fill(1) };
    // 2x upsampling (pixel edges onto pixel edges): every target pixel is inside.
    const up = warpImage(src, pixelScale(2), 8, 6);
    expect([...new Set(up.mask)]).toEqual([1]);
    // a shift of 0.75 px: target column 0 samples source x = -0.75, a quarter pixel beyond
    // the footprint's edge at -0.5 (half of the half-pixel ramp); column 1 (x = 0.25) is in.
    const shifted = warpImage(src, [1, 0, 0.75, 0, 1, 0, 0, 0, 1], 4, 3);
    expect(shifted.mask[0]).toBeCloseTo(0.5, 12);
    expect(shifted.mask[1]).toBe(1);
    expect(shifted.mask[3]).toBe(1); // x = 2.25
  });

  it('overlap rectangle of a footprint (hand-computed)', () => {
    // a 100x50 source halved and shifted by (10, 5) on a 40x40 target: x 10..59.5 -> cut at 40
    const m = mul3([1, 0, 10, 0, 1, 5, 0, 0, 1], pixelScale(0.5));
    expect(overlapRect(m, [100, 50], [40, 40])).toEqual({ x: 10, y: 5, width: 30, height: 25 });
    expect(overlapRect([1, 0, 500, 0, 1, 0, 0, 0, 1], [10, 10], [40, 40])).toBeUndefined();
  });
});
