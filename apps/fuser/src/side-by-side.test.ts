import { describe, expect, it } from 'vitest';
import { sideBySide, sideBySideLabels } from './images';

const flat = (w: number, h: number, channels: number, v: number) => ({
  width: w,
  height: h,
  channels,
  data: new Float32Array(w * h * channels).fill(v),
});

describe('side-by-side labels', () => {
  it('scale with the picture: 1/20 of the height, full names where they fit', () => {
    // a 12 MP photo: 147-pixel text on a 210-pixel strip
    expect(sideBySideLabels(4000, 3000)).toEqual({
      labels: ['fused', 'visible', 'infrared'],
      scale: 21,
      height: 210,
    });
    expect(sideBySideLabels(640, 480)).toEqual({
      labels: ['fused', 'visible', 'infrared'],
      scale: 3,
      height: 30,
    });
    // narrow panels: the width bounds the scale, then the names shorten
    expect(sideBySideLabels(100, 3000).scale).toBe(2);
    expect(sideBySideLabels(45, 30).labels).toEqual(['fused', 'vis', 'ir']);
    expect(sideBySideLabels(20, 30).labels).toEqual(['f', 'v', 'ir']);
  });

  it('draws white text on a black strip above the panels; labels: false leaves it out', () => {
    const w = 640;
    const h = 480;
    const img = sideBySide(flat(w, h, 3, 0), flat(w, h, 3, 0), flat(w, h, 1, 0));
    expect([img.width, img.height]).toEqual([3 * w, h + 30]);
    const n = img.width * img.height;
    let white = 0;
    let bad = 0;
    for (let i = 0; i < 30 * img.width; i++) {
      if (img.data[i] === 1) white++;
      else if (img.data[i] !== -1) bad++;
      if (img.data[n + i] !== img.data[i]) bad++;
    }
    for (let i = 30 * img.width; i < n; i++) if (img.data[i] !== 0) bad++;
    expect(bad).toBe(0);
    expect(white).toBeGreaterThan(20 * 10 * 9); // 20 glyphs, >10 font pixels each, 3x3 each
    const plain = sideBySide(flat(w, h, 3, 0), flat(w, h, 3, 0), flat(w, h, 1, 0), {
      labels: false,
    });
    expect([plain.width, plain.height]).toEqual([3 * w, h]);
  });
});
