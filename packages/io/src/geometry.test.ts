import { describe, expect, it } from 'vitest';
import type { FloatImage } from './convert';
import {
  cropFloat,
  flipHorizontal,
  flipVertical,
  padReflect,
  padToMultiple,
  reflectIndex,
  resizeBilinear,
  unpad,
} from './geometry';

/** Planar image whose value at (c, y, x) is c * 100 + y * 10 + x. */
function coords(width: number, height: number, channels = 1): FloatImage {
  const data = new Float32Array(channels * width * height);
  for (let c = 0; c < channels; c++)
    for (let y = 0; y < height; y++)
      for (let x = 0; x < width; x++)
        data[c * width * height + y * width + x] = c * 100 + y * 10 + x;
  return { width, height, channels, data };
}

function rows(img: FloatImage, c = 0): number[][] {
  const out: number[][] = [];
  const hw = img.width * img.height;
  for (let y = 0; y < img.height; y++)
    out.push(Array.from(img.data.subarray(c * hw + y * img.width, c * hw + (y + 1) * img.width)));
  return out;
}

describe('reflectIndex', () => {
  it("matches numpy.pad(mode='reflect'), also for pads longer than the image", () => {
    // np.pad(np.arange(4), 3, 'reflect')
    expect(Array.from({ length: 10 }, (_, i) => reflectIndex(i - 3, 4))).toEqual([
      3, 2, 1, 0, 1, 2, 3, 2, 1, 0,
    ]);
    // np.pad(np.arange(3), 5, 'reflect')
    expect(Array.from({ length: 13 }, (_, i) => reflectIndex(i - 5, 3))).toEqual([
      1, 0, 1, 2, 1, 0, 1, 2, 1, 0, 1, 2, 1,
    ]);
    expect([reflectIndex(-2, 1), reflectIndex(2, 1)]).toEqual([0, 0]);
  });
});

describe('reflect padding to a multiple of N', () => {
  it('pads bottom/right with mirrored pixels and crops back exactly', () => {
    const img = coords(5, 3, 2);
    const p = padToMultiple(img, 4);
    expect(p.padding).toEqual({ top: 0, left: 0, bottom: 1, right: 3 });
    expect([p.image.width, p.image.height]).toEqual([8, 4]);
    expect(rows(p.image, 1)).toEqual([
      [100, 101, 102, 103, 104, 103, 102, 101],
      [110, 111, 112, 113, 114, 113, 112, 111],
      [120, 121, 122, 123, 124, 123, 122, 121],
      [110, 111, 112, 113, 114, 113, 112, 111], // row 1 mirrored below row 2
    ]);
    const back = unpad(p.image, p);
    expect([back.width, back.height, back.channels]).toEqual([5, 3, 2]);
    expect(Array.from(back.data)).toEqual(Array.from(img.data));
  });

  it('centred padding splits the extra pixels (the odd one bottom/right)', () => {
    const img = coords(5, 6);
    const p = padToMultiple(img, 8, { center: true });
    expect(p.padding).toEqual({ top: 1, left: 1, bottom: 1, right: 2 });
    expect(rows(p.image)[0]).toEqual([11, 10, 11, 12, 13, 14, 13, 12]);
    expect(Array.from(unpad(p.image, p).data)).toEqual(Array.from(img.data));
  });

  it('already a multiple: an unpadded copy; pads larger than the image still work', () => {
    const img = coords(4, 4);
    const p = padToMultiple(img, 2);
    expect(p.padding).toEqual({ top: 0, left: 0, bottom: 0, right: 0 });
    expect(p.image.data).not.toBe(img.data);
    expect(Array.from(p.image.data)).toEqual(Array.from(img.data));
    const tiny = coords(3, 1);
    const big = padToMultiple(tiny, 16);
    expect([big.image.width, big.image.height]).toEqual([16, 16]);
    expect(rows(big.image)[5]).toEqual([0, 1, 2, 1, 0, 1, 2, 1, 0, 1, 2, 1, 0, 1, 2, 1]);
    expect(Array.from(unpad(big.image, big).data)).toEqual([0, 1, 2]);
    expect(rows(padReflect(coords(2, 2), { top: 1, left: 0, bottom: 0, right: 0 }))).toEqual([
      [10, 11],
      [0, 1],
      [10, 11],
    ]);
  });

  it('rejects bad multiples', () => {
    expect(() => padToMultiple(coords(2, 2), 0)).toThrow(
      'pad multiple must be a positive integer, got 0',
    );
  });
});

describe('crop, flips and bilinear resize', () => {
  it('crop takes the window; outside the image is an error', () => {
    const img = coords(5, 4, 2);
    const c = cropFloat(img, 1, 2, 3, 2);
    expect(rows(c, 0)).toEqual([
      [21, 22, 23],
      [31, 32, 33],
    ]);
    expect(rows(c, 1)[1]).toEqual([131, 132, 133]);
    expect(() => cropFloat(img, 3, 0, 3, 1)).toThrow(
      'crop 3x1 at (3, 0) does not fit in a 5x4 image',
    );
  });

  it('flips mirror every channel', () => {
    const img = coords(3, 2, 2);
    expect(rows(flipHorizontal(img), 1)).toEqual([
      [102, 101, 100],
      [112, 111, 110],
    ]);
    expect(rows(flipVertical(img), 0)).toEqual([
      [10, 11, 12],
      [0, 1, 2],
    ]);
  });

  it('bilinear with half-pixel centres (torch align_corners=False), edges clamped', () => {
    const img: FloatImage = {
      width: 2,
      height: 2,
      channels: 1,
      data: Float32Array.from([0, 1, 2, 3]),
    };
    // sample points -0.25 (clamped to 0), 0.25, 0.75, 1.25 (clamped to 1) on each axis
    expect(rows(resizeBilinear(img, 4, 4))).toEqual([
      [0, 0.25, 0.75, 1],
      [0.5, 0.75, 1.25, 1.5],
      [1.5, 1.75, 2.25, 2.5],
      [2, 2.25, 2.75, 3],
    ]);
    const same = coords(5, 3, 3);
    expect(Array.from(resizeBilinear(same, 5, 3).data)).toEqual(Array.from(same.data));
    // 4 → 2: sample points 0.5 and 2.5 (averages of neighbours)
    expect(rows(resizeBilinear(coords(4, 1), 2, 1))).toEqual([[0.5, 2.5]]);
    expect(() => resizeBilinear(img, 0, 2)).toThrow('cannot resize to 0x2');
  });
});
