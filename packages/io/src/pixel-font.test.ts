import { describe, expect, it } from 'vitest';
import {
  drawPixelText,
  PIXEL_FONT,
  pixelTextHeight,
  pixelTextScaleToFit,
  pixelTextWidth,
} from './pixel-font';

/** Renders `s` as rows of '#'/'.' (for reading glyphs in a test). */
function render(s: string, scale = 1): string[] {
  const w = pixelTextWidth(s, scale);
  const h = pixelTextHeight(scale);
  const rows = Array.from({ length: h }, () => Array(w).fill('.'));
  drawPixelText(s, 0, 0, scale, (x, y) => {
    rows[y][x] = '#';
  });
  return rows.map((r) => r.join(''));
}

describe('pixel font', () => {
  it('draws every glyph inside its 5x7 cell, with ink', () => {
    const all = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789|-.,:/()%+=_?';
    for (const ch of all) {
      let ink = 0;
      drawPixelText(ch, 0, 0, 1, (x, y) => {
        expect(x >= 0 && x < PIXEL_FONT.width && y >= 0 && y < PIXEL_FONT.height).toBe(true);
        ink++;
      });
      expect(ink, ch).toBeGreaterThan(2);
    }
  });

  it('known shapes, sizes and scaling; lower case drawn upper case', () => {
    expect(render('L')).toEqual(['#....', '#....', '#....', '#....', '#....', '#....', '#####']);
    expect(render('i')).toEqual(render('I'));
    expect(pixelTextWidth('IR', 1)).toBe(11);
    expect(pixelTextWidth('IR', 3)).toBe(33);
    expect(pixelTextWidth('', 3)).toBe(0);
    const big = render('T', 2);
    expect(big.length).toBe(14);
    expect(big[0]).toBe('##########');
    expect(big[13]).toBe('....##....');
    // a character the font lacks is drawn as '?', not skipped
    expect(render('~')).toEqual(render('?'));
  });

  it('scale to fit', () => {
    expect(pixelTextScaleToFit('INFRARED', 47 * 4)).toBe(4);
    expect(pixelTextScaleToFit('INFRARED', 47 * 4 - 1)).toBe(3);
    expect(pixelTextScaleToFit('INFRARED', 10)).toBe(1);
  });
});
