import { describe, expect, it } from 'vitest';
import {
  chwToHwc,
  type FloatImage,
  floatToImage,
  hwcToChw,
  imageToFloat,
  rgb2gray,
  rgbToLab,
  rgbToYCbCr,
  yCbCrToRgb,
} from './convert';
import { DifFusionError } from './errors';
import type { Image } from './image';

function rgbImage(pixels: number[][], bitDepth: 8 | 16 = 8): Image {
  const flat = pixels.flat();
  return {
    width: pixels.length,
    height: 1,
    channels: 3,
    bitDepth,
    data: bitDepth === 8 ? Uint8Array.from(flat) : Uint16Array.from(flat),
  };
}

/** A 1-row planar float RGB image from [r, g, b] pixels. */
function planar(pixels: number[][]): FloatImage {
  const n = pixels.length;
  const data = new Float32Array(3 * n);
  pixels.forEach(([r, g, b], i) => {
    data[i] = r;
    data[n + i] = g;
    data[2 * n + i] = b;
  });
  return { width: n, height: 1, channels: 3, data };
}

function pixel(f: FloatImage | Float64Array, i: number, n: number): number[] {
  const d = 'data' in f ? f.data : f;
  return [d[i], d[n + i], d[2 * n + i]];
}

describe('[-1, 1] conversion', () => {
  it('maps 0 → -1, max → 1, linear between; layout is planar CHW', () => {
    const img = rgbImage([
      [0, 255, 51],
      [255, 0, 204],
    ]);
    const f = imageToFloat(img);
    expect(f).toMatchObject({ width: 2, height: 1, channels: 3 });
    // planes: R = [0, 255], G = [255, 0], B = [51, 204]
    const want = [-1, 1, 1, -1, (51 / 255) * 2 - 1, (204 / 255) * 2 - 1];
    for (let i = 0; i < 6; i++) expect(f.data[i]).toBeCloseTo(want[i], 6);
    const sixteen = imageToFloat({
      width: 3,
      height: 1,
      channels: 1,
      bitDepth: 16,
      data: Uint16Array.from([0, 65535, 32768]),
    });
    expect(Array.from(sixteen.data)).toEqual([-1, 1, Math.fround((32768 / 65535) * 2 - 1)]);
  });

  it('every 8-bit value and a 16-bit sweep survive the round trip exactly', () => {
    const all = new Uint8Array(256 * 3);
    for (let i = 0; i < all.length; i++) all[i] = i % 256;
    const img: Image = { width: 256, height: 1, channels: 3, bitDepth: 8, data: all };
    expect(Array.from(floatToImage(imageToFloat(img)).data)).toEqual(Array.from(all));
    const s = new Uint16Array(4096);
    for (let i = 0; i < s.length; i++) s[i] = (i * 16 + (i % 16)) % 65536;
    const g16: Image = { width: 4096, height: 1, channels: 1, bitDepth: 16, data: s };
    const back = floatToImage(imageToFloat(g16), 16);
    expect(back.data).toBeInstanceOf(Uint16Array);
    expect(Array.from(back.data)).toEqual(Array.from(s));
  });

  it('rounds to nearest and clamps (NaN → 0)', () => {
    const f: FloatImage = {
      width: 7,
      height: 1,
      channels: 1,
      data: Float32Array.from([
        0,
        -3,
        1.5,
        (2 * 10.4) / 255 - 1,
        (2 * 10.6) / 255 - 1,
        Number.NaN,
        -1,
      ]),
    };
    // 0 → 127.5 → 128 (half up); 10.4 → 10; 10.6 → 11
    expect(Array.from(floatToImage(f).data)).toEqual([128, 0, 255, 10, 11, 0, 0]);
    expect(Array.from(floatToImage(f, 16).data.subarray(0, 3))).toEqual([32768, 0, 65535]);
  });

  it('refuses channel counts other than 1 and 3, and wrong lengths', () => {
    expect(() =>
      floatToImage({ width: 1, height: 1, channels: 4, data: new Float32Array(4) }),
    ).toThrow(DifFusionError);
    expect(() =>
      floatToImage({ width: 2, height: 1, channels: 1, data: new Float32Array(3) }),
    ).toThrow(/float image data has 3 values, 1x1x2 needs 2/);
  });

  it('HWC ↔ CHW', () => {
    const hwc = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]; // 2x2, 3 channels
    const chw = hwcToChw(hwc, 2, 2, 3);
    expect(Array.from(chw)).toEqual([1, 4, 7, 10, 2, 5, 8, 11, 3, 6, 9, 12]);
    expect(Array.from(chwToHwc(chw, 2, 2, 3))).toEqual(hwc);
  });
});

describe('RGB ↔ YCbCr (BT.601, the fusion toolkits constants)', () => {
  it('hand-computed values in 0..1', () => {
    const y = rgbToYCbCr(
      planar([
        [1, 0, 0],
        [1, 1, 1],
        [0, 0, 0],
      ]),
    );
    // red: Y = 0.299, Cb = (0 - 0.299) * 0.564 + 0.5, Cr = (1 - 0.299) * 0.713 + 0.5
    const red = pixel(y, 0, 3);
    expect(red[0]).toBeCloseTo(0.299, 6);
    expect(red[1]).toBeCloseTo(0.331364, 6);
    expect(red[2]).toBeCloseTo(0.999813, 6);
    // white and black have neutral chroma
    expect(pixel(y, 1, 3).map((v) => +v.toFixed(6))).toEqual([1, 0.5, 0.5]);
    expect(pixel(y, 2, 3).map((v) => +v.toFixed(6))).toEqual([0, 0.5, 0.5]);
  });

  it('hand-computed values in 0..255 (chroma centred at 128) and -1..1 (centred at 0)', () => {
    const y255 = pixel(rgbToYCbCr(planar([[100, 150, 200]]), '0..255'), 0, 1);
    // Y = 29.9 + 88.05 + 22.8; Cb = (200 - Y) * 0.564 + 128; Cr = (100 - Y) * 0.713 + 128
    expect(y255[0]).toBeCloseTo(140.75, 4);
    expect(y255[1]).toBeCloseTo(161.417, 3);
    expect(y255[2]).toBeCloseTo(98.94525, 3);
    const s = (v: number) => (v / 255) * 2 - 1;
    const ypm = pixel(rgbToYCbCr(planar([[s(100), s(150), s(200)]]), '-1..1'), 0, 1);
    expect(ypm[0]).toBeCloseTo(s(140.75), 5);
    expect(ypm[1]).toBeCloseTo(((200 - 140.75) * 0.564 * 2) / 255, 5);
    expect(ypm[2]).toBeCloseTo(((100 - 140.75) * 0.713 * 2) / 255, 5);
  });

  it('inverse constants: known values and round trips within 0.002 (the constants are rounded)', () => {
    // Y = 0.5, Cb = 0.6, Cr = 0.4: R = 0.5 - 0.1403, G = 0.5 + 0.0714 - 0.0344, B = 0.5 + 0.1773
    const rgb = pixel(yCbCrToRgb(planar([[0.5, 0.6, 0.4]])), 0, 1);
    expect(rgb[0]).toBeCloseTo(0.3597, 6);
    expect(rgb[1]).toBeCloseTo(0.537, 6);
    expect(rgb[2]).toBeCloseTo(0.6773, 6);
    const px: number[][] = [];
    for (let r = 0; r <= 4; r++)
      for (let g = 0; g <= 4; g++) for (let b = 0; b <= 4; b++) px.push([r / 4, g / 4, b / 4]);
    for (const range of ['0..1', '0..255', '-1..1'] as const) {
      const [scale, offset] = range === '0..255' ? [255, 0] : range === '-1..1' ? [2, -1] : [1, 0];
      const img = planar(px.map((p) => p.map((v) => v * scale + offset)));
      const back = yCbCrToRgb(rgbToYCbCr(img, range), range);
      let worst = 0;
      for (let i = 0; i < img.data.length; i++)
        worst = Math.max(worst, Math.abs(back.data[i] - img.data[i]) / scale);
      expect(worst).toBeLessThan(0.002);
    }
  });

  it('needs 3 channels', () => {
    expect(() =>
      rgbToYCbCr({ width: 1, height: 1, channels: 1, data: new Float32Array(1) }),
    ).toThrow(/needs 3 channels, got 1/);
  });
});

describe("rgb2gray as MATLAB's", () => {
  it('hand-computed values, rounded on uint8 / uint16', () => {
    const img = rgbImage([
      [255, 0, 0], // 76.2287 → 76
      [0, 255, 0], // 149.696 → 150
      [0, 0, 255], // 29.0753 → 29
      [255, 255, 255], // 254.99999999999974 → 255
      [100, 150, 200], // 140.7542 → 141
      [10, 20, 30], // 18.1508 → 18
    ]);
    const g = rgb2gray(img);
    expect(g.channels).toBe(1);
    expect(g.data).toBeInstanceOf(Uint8Array);
    expect(Array.from(g.data)).toEqual([76, 150, 29, 255, 141, 18]);
    const g16 = rgb2gray(rgbImage([[65535, 0, 0]], 16));
    expect(Array.from(g16.data)).toEqual([19591]); // 19590.772
    const gray: Image = { width: 1, height: 1, channels: 1, bitDepth: 8, data: Uint8Array.of(9) };
    expect(rgb2gray(gray)).toBe(gray);
  });
});

describe('sRGB → CIELAB (D65, as skimage.color.rgb2lab)', () => {
  it('known values for white, black and the primaries', () => {
    const img = rgbImage([
      [255, 255, 255],
      [0, 0, 0],
      [255, 0, 0],
      [0, 255, 0],
      [0, 0, 255],
    ]);
    const lab = rgbToLab(img);
    const at = (i: number) => pixel(lab, i, 5);
    const close = (got: number[], want: number[], tol: number) => {
      for (let k = 0; k < 3; k++) expect(Math.abs(got[k] - want[k])).toBeLessThan(tol);
    };
    close(at(0), [100, 0, 0], 0.01);
    close(at(1), [0, 0, 0], 1e-9);
    // skimage.color.rgb2lab([[[1, 0, 0]]]) etc.
    close(at(2), [53.2408, 80.0925, 67.2032], 0.005);
    close(at(3), [87.7347, -86.1827, 83.1793], 0.005);
    close(at(4), [32.297, 79.1875, -107.8602], 0.005);
  });

  it('dark values use the linear branches (sRGB 0.04045, Lab 0.008856)', () => {
    // 10/255 = 0.0392 < 0.04045: linear = 0.0392 / 12.92 = 0.003035; Y = that (gray), so
    // f(Y) = 7.787 * 0.003035 + 16/116 and L = 116 f(Y) - 16 = 903.3 * 0.003035 = 2.7417
    const lab = rgbToLab(rgbImage([[10, 10, 10]]));
    expect(lab[0]).toBeCloseTo(116 * 7.787 * (10 / 255 / 12.92), 6);
    expect(lab[0]).toBeCloseTo(2.7417, 3);
  });

  it('8-bit, 16-bit and planar 0..1 float input agree', () => {
    const a = rgbToLab(rgbImage([[255, 128, 0]]));
    const b = rgbToLab(rgbImage([[65535, 128 * 257, 0]], 16));
    const c = rgbToLab(planar([[1, 128 / 255, 0]]));
    for (let k = 0; k < 3; k++) {
      expect(b[k]).toBeCloseTo(a[k], 10);
      expect(c[k]).toBeCloseTo(a[k], 5);
    }
  });
});

describe('imageToFloat: every integer value maps to v / max * 2 - 1 (the float32 of it)', () => {
  it('all 256 8-bit values and a sweep of 16-bit values, bit for bit', () => {
    const v8 = Uint8Array.from({ length: 256 }, (_, i) => i);
    const f8 = imageToFloat({ width: 256, height: 1, channels: 1, bitDepth: 8, data: v8 });
    for (let v = 0; v < 256; v++) expect(f8.data[v]).toBe(Math.fround((v / 255) * 2 - 1));
    const v16 = Uint16Array.from({ length: 3 * 700 }, (_, i) => (i * 31) % 65536);
    const f16 = imageToFloat({ width: 700, height: 1, channels: 3, bitDepth: 16, data: v16 });
    for (let c = 0; c < 3; c++)
      for (let i = 0; i < 700; i++)
        expect(f16.data[c * 700 + i]).toBe(Math.fround((v16[i * 3 + c] / 65535) * 2 - 1));
  });
});
