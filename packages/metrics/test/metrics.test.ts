import { describe, expect, it } from 'vitest';
import {
  averageGradient,
  correlationCoefficient,
  deltaE,
  entropy,
  evaluateFusion,
  filterReplicate,
  filterValid,
  type Gray8,
  gaussian1d,
  type Image8,
  METRIC_NAMES,
  meanCiede2000,
  meanSquaredError,
  mutualInformation,
  nabf,
  nabfIntended,
  psnr,
  qabf,
  rgbToLab,
  scd,
  spatialFrequency,
  ssim,
  ssimPair,
  standardDeviation,
  toGray,
  vif,
  vifp,
} from '../src/index';

function gray(width: number, height: number, fn: (x: number, y: number) => number): Gray8 {
  const data = new Uint8Array(width * height);
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) data[y * width + x] = fn(x, y);
  return { data, width, height };
}

function asImage(g: Gray8): Image8 {
  return { ...g, channels: 1 };
}

/** Deterministic pseudo-random image (LCG), so tests need no RNG dependency. */
function noise(width: number, height: number, seed: number): Gray8 {
  let s = seed >>> 0;
  return gray(width, height, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s >>> 24;
  });
}

const constant = gray(8, 6, () => 100);
const ramp = gray(4, 3, (x) => 10 * x);
const checker = gray(4, 4, (x, y) => ((x + y) % 2 ? 255 : 0));

describe('hand-computed values on tiny images', () => {
  it('constant image: no information, no detail', () => {
    expect(entropy(constant)).toBe(0);
    expect(standardDeviation(constant)).toBe(0);
    expect(spatialFrequency(constant)).toBe(0);
    expect(averageGradient(constant)).toBe(0);
  });

  it('horizontal ramp 0,10,20,30', () => {
    expect(entropy(ramp)).toBeCloseTo(2, 12); // four equally likely levels
    expect(standardDeviation(ramp)).toBeCloseTo(Math.sqrt(125), 12);
    expect(spatialFrequency(ramp)).toBeCloseTo(10, 12); // RF 0, CF 10
    // gradient: gx = 10 everywhere, gy = 0; sum sqrt(100/2) over 12 pixels / ((3-1)(4-1))
    expect(averageGradient(ramp)).toBeCloseTo((12 * Math.sqrt(50)) / 6, 12);
  });

  it('0/255 checkerboard', () => {
    expect(entropy(checker)).toBeCloseTo(1, 12);
    expect(standardDeviation(checker)).toBeCloseTo(127.5, 12);
    expect(spatialFrequency(checker)).toBeCloseTo(255 * Math.SQRT2, 10);
  });

  it('MSE on 0..1 and PSNR = 20·log10(255/sqrt(MSE)) (toolkit conventions)', () => {
    const black = gray(4, 4, () => 0);
    const white = gray(4, 4, () => 255);
    expect(meanSquaredError(white, black, black)).toBeCloseTo(0.5, 12);
    expect(psnr(white, black, black)).toBeCloseTo(20 * Math.log10(255 / Math.sqrt(0.5)), 10);
  });

  it('MI of an image with itself is twice its entropy (bits)', () => {
    expect(mutualInformation(checker, checker, checker)).toBeCloseTo(2, 12);
    expect(mutualInformation(ramp, ramp, ramp)).toBeCloseTo(4, 12);
    // Independent of a constant: MI 0 for that source.
    const c = gray(4, 4, () => 7);
    expect(mutualInformation(c, checker, checker)).toBeCloseTo(1, 12);
  });

  it('checkerboard average gradient: one-sided differences at the borders only', () => {
    // Central differences cancel inside; the 4 corners get |gx| = |gy| = 255, the 8 other
    // border pixels one of them: (4·255 + 8·255/√2) / ((4-1)(4-1)).
    expect(averageGradient(checker)).toBeCloseTo((4 * 255 + (8 * 255) / Math.SQRT2) / 9, 10);
  });

  it('SSIM of two constant images: luminance term only', () => {
    const a = gray(16, 12, () => 100);
    const b = gray(16, 12, () => 50);
    const C1 = 0.01 ** 2;
    expect(ssimPair(a, b)).toBeCloseTo((2 * 100 * 50 + C1) / (100 ** 2 + 50 ** 2 + C1), 10);
  });

  it('SCD: F = IR + VIS gives two perfect correlations', () => {
    const ir = gray(6, 5, (x, y) => 10 * x + 3 * y);
    const vi = gray(6, 5, (x, y) => ((x + y) % 2) * 40 + y);
    const f = gray(6, 5, (x, y) => ir.data[y * 6 + x] + vi.data[y * 6 + x]);
    expect(scd(ir, vi, f)).toBeCloseTo(2, 12);
  });

  it('Qabf of a ramp fused as itself with a black image (the gA == gF quirk)', () => {
    // Every edge of F equals the ramp's: orientation term Ta/(1+e^(-22·0.2)); strength term
    // Tg/(1+e^(15·(G-0.5))) with G = gF (toolkit quirk, gradients ≥ 10 here) = Tg.
    const black = gray(4, 3, () => 0);
    expect(qabf(ramp, black, ramp)).toBeCloseTo((0.9994 * 0.9879) / (1 + Math.exp(-4.4)), 12);
  });

  it('Nabf of a doubled ramp (hand-computed, mirror borders), both argument orders', () => {
    // Mirror extension: the two border columns have no gradient (weight 0.001), the two
    // inner ones gA = 10 (weight 10^1.5) and gF = 20, same orientation, so na = 1 there and
    // Q = sqrt(Nrg/(1+e^0) · Nra/(1+e^-11)).
    const f = gray(4, 3, (x) => 20 * x);
    const q = Math.sqrt((0.9999 / 2) * (0.9995 / (1 + Math.exp(-11))));
    const w = 10 ** 1.5;
    const want = ((1 - q) * w) / (w + 0.001);
    expect(nabfIntended(ramp, ramp, f)).toBeCloseTo(want, 12);
    // Published order: the first argument (IR) takes the fused image's place.
    expect(nabf(f, ramp, ramp)).toBeCloseTo(want, 12);
    expect(nabf(ramp, ramp, f)).toBe(0); // F's edges are in the sources' place: none exceeds IR
  });

  it('Gaussian windows sum to 1; valid and replicate filtering keep constants', () => {
    const k = gaussian1d(11, 1.5);
    expect(k.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 14);
    const x = new Float64Array(20 * 15).fill(3);
    const v = filterValid(x, 20, 15, gaussian1d(9, 1.8));
    expect([v.width, v.height]).toEqual([12, 7]);
    for (const e of v.data) expect(e).toBeCloseTo(3, 12);
    for (const e of filterReplicate(x, 20, 15, k)) expect(e).toBeCloseTo(3, 12);
    const d = filterValid(x, 20, 15, gaussian1d(9, 1.8), 2);
    expect([d.width, d.height]).toEqual([6, 4]);
  });
});

describe('identity and symmetry properties', () => {
  const a = noise(40, 36, 1);
  const b = noise(40, 36, 2);
  const f = gray(40, 36, (x, y) => Math.round((a.data[y * 40 + x] + b.data[y * 40 + x]) / 2));

  it('fusing an image with itself', () => {
    expect(ssimPair(a, a)).toBeCloseTo(1, 12);
    expect(ssim(a, a, a)).toBeCloseTo(1, 12);
    expect(ssim(constant, constant, constant)).toBeCloseTo(1, 12);
    expect(correlationCoefficient(a, a, a)).toBeCloseTo(1, 12);
    expect(meanSquaredError(a, a, a)).toBe(0);
    expect(psnr(a, a, a)).toBe(Number.POSITIVE_INFINITY);
    expect(vifp(a, a)).toBeCloseTo(1, 9); // sv clamps at 1e-10, not 0
    expect(vif(a, a, a)).toBeCloseTo(2, 9);
    expect(nabf(a, a, a)).toBe(0); // no fused edge exceeds both sources
    const low = gray(40, 36, (x, y) => a.data[y * 40 + x] % 250);
    expect(mutualInformation(low, low, low)).toBeCloseTo(2 * entropy(low), 12);
    // Hab.m's uint8 `+1` saturates, merging levels 254 and 255 in the joint histogram only,
    // so an image holding both gets MI above 2·H. Kept on purpose (published numbers).
    const two = gray(2, 1, (x) => 254 + x);
    expect(mutualInformation(two, two, two)).toBeCloseTo(2 * (1 + 1 - 0), 12);
  });

  it('every source-pair metric is symmetric in IR and VIS', () => {
    const m1 = evaluateFusion(asImage(a), asImage(b), asImage(f));
    const m2 = evaluateFusion(asImage(b), asImage(a), asImage(f));
    for (const name of METRIC_NAMES) {
      if (name === 'DeltaE') continue; // ΔE compares with the visible image only
      if (name === 'Nabf') continue; // published Nabf puts the IR image in F's place
      expect(m2[name], name).toBeCloseTo(m1[name], 10);
    }
    expect(nabfIntended(b, a, f)).toBeCloseTo(nabfIntended(a, b, f), 12);
  });

  it('SCD and CC are invariant to an affine change of the fused image', () => {
    const g = gray(40, 36, (x, y) => 2 * Math.floor(f.data[y * 40 + x] / 2));
    const h = gray(40, 36, (x, y) => g.data[y * 40 + x] / 2 + 10);
    expect(correlationCoefficient(a, b, h)).toBeCloseTo(correlationCoefficient(a, b, g), 10);
    expect(qabf(a, b, f)).toBeGreaterThan(0);
    expect(qabf(a, b, f)).toBeLessThan(1);
    expect(Number.isFinite(scd(a, b, f))).toBe(true);
  });

  it('all metrics are finite on random images', () => {
    const m = evaluateFusion(asImage(a), asImage(b), asImage(f));
    for (const name of METRIC_NAMES) expect(Number.isFinite(m[name]), name).toBe(true);
  });
});

describe('colour: rgb2gray, rgb2lab and CIEDE2000', () => {
  it('rgb2gray rounds MATLAB-weighted luma to uint8', () => {
    const img: Image8 = {
      data: new Uint8Array([255, 0, 0, 0, 255, 0, 0, 0, 255, 10, 20, 30]),
      width: 4,
      height: 1,
      channels: 3,
    };
    // 0.298936·255 = 76.23 → 76, 0.587043·255 = 149.70 → 150, 0.114021·255 = 29.08 → 29
    expect(Array.from(toGray(img).data)).toEqual([
      76,
      150,
      29,
      Math.round(0.298936021293775 * 10 + 0.587043074451121 * 20 + 0.114020904255103 * 30),
    ]);
    const rgba: Image8 = { data: new Uint8Array([255, 0, 0, 7]), width: 1, height: 1, channels: 4 };
    expect(toGray(rgba).data[0]).toBe(76);
  });

  it('rgbToLab matches skimage.color.rgb2lab', () => {
    const lab = rgbToLab(new Uint8Array([255, 0, 0, 255, 255, 255, 0, 0, 0]));
    // skimage: rgb2lab([[[1, 0, 0]]]) = [53.24058794, 80.09230823, 67.20319617]
    expect(lab[0]).toBeCloseTo(53.24058794, 5);
    expect(lab[1]).toBeCloseTo(80.09230823, 5);
    // b* differs in the 4th decimal between skimage releases (white-point rounding); the
    // golden ΔE values pin the conversion down more tightly.
    expect(lab[2]).toBeCloseTo(67.20319617, 2);
    expect(lab[3]).toBeCloseTo(100, 4);
    expect(Math.abs(lab[4])).toBeLessThan(0.01);
    expect(Math.abs(lab[5])).toBeLessThan(0.01);
    expect(Array.from(lab.slice(6))).toEqual([0, 0, 0]);
  });

  it('CIEDE2000 reproduces Sharma, Wu & Dalal test pairs', () => {
    // [L1, a1, b1, L2, a2, b2, ΔE00] from Sharma et al. (2005), Table 1.
    const pairs = [
      [50, 2.6772, -79.7751, 50, 0, -82.7485, 2.0425],
      [50, 3.1571, -77.2803, 50, 0, -82.7485, 2.8615],
      [50, -1.3802, -84.2814, 50, 0, -82.7485, 1.0],
      [50, 2.49, -0.001, 50, -2.49, 0.0009, 7.1792],
      [50, 2.5, 0, 73, 25, -18, 27.1492],
      [60.2574, -34.0099, 36.2677, 60.4626, -34.1751, 39.4387, 1.2644],
      [22.7233, 20.0904, -46.694, 23.0331, 14.973, -42.5619, 2.0373],
    ];
    for (const p of pairs) {
      const d = meanCiede2000(new Float64Array(p.slice(0, 3)), new Float64Array(p.slice(3, 6)));
      expect(d).toBeCloseTo(p[6], 4);
    }
  });

  it('ΔE of an image with itself is 0, and symmetric', () => {
    const rgb = (seed: number): Image8 => {
      const g = noise(12, 9 * 3, seed);
      return { data: g.data, width: 12, height: 9, channels: 3 };
    };
    const x = rgb(3);
    const y = rgb(4);
    expect(deltaE(x, x)).toBe(0);
    expect(deltaE(x, y)).toBeGreaterThan(0);
    expect(deltaE(y, x)).toBeCloseTo(deltaE(x, y), 10);
    // A gray image compares as R = G = B.
    const g = noise(12, 9, 5);
    const g3: Image8 = {
      data: new Uint8Array(12 * 9 * 3).map((_, i) => g.data[Math.floor(i / 3)]),
      width: 12,
      height: 9,
      channels: 3,
    };
    expect(deltaE({ ...g, channels: 1 }, g3)).toBe(0);
  });

  it('ΔE between black and white is 100 (ΔL only)', () => {
    const black: Image8 = { data: new Uint8Array(12), width: 2, height: 2, channels: 3 };
    const white: Image8 = { data: new Uint8Array(12).fill(255), width: 2, height: 2, channels: 3 };
    expect(deltaE(white, black)).toBeCloseTo(100, 3);
  });

  it('rejects size mismatches', () => {
    expect(() => evaluateFusion(asImage(ramp), asImage(ramp), asImage(checker))).toThrow(
      /size mismatch/,
    );
  });
});
