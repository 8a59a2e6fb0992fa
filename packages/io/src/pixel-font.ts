/**
 * A 5x7 pixel font for the labels drawn on pictures (`dif-fuse --side-by-side` panels,
 * `dif-train sample` grid headers): written here, not rendered through SVG and system fonts,
 * so a picture's bytes depend only on its inputs, never on the fonts a machine has installed.
 * Upper case letters (lower case is drawn upper case), digits and a little punctuation.
 */

// Rows top to bottom, '#' = ink.
const G: Record<string, string> = {
  A: '.###. #...# #...# ##### #...# #...# #...#',
  B: '####. #...# #...# ####. #...# #...# ####.',
  C: '.###. #...# #.... #.... #.... #...# .###.',
  D: '####. #...# #...# #...# #...# #...# ####.',
  E: '##### #.... #.... ####. #.... #.... #####',
  F: '##### #.... #.... ####. #.... #.... #....',
  G: '.###. #...# #.... #.### #...# #...# .####',
  H: '#...# #...# #...# ##### #...# #...# #...#',
  I: '.###. ..#.. ..#.. ..#.. ..#.. ..#.. .###.',
  J: '..### ...#. ...#. ...#. ...#. #..#. .##..',
  K: '#...# #..#. #.#.. ##... #.#.. #..#. #...#',
  L: '#.... #.... #.... #.... #.... #.... #####',
  M: '#...# ##.## #.#.# #.#.# #...# #...# #...#',
  N: '#...# #...# ##..# #.#.# #..## #...# #...#',
  O: '.###. #...# #...# #...# #...# #...# .###.',
  P: '####. #...# #...# ####. #.... #.... #....',
  Q: '.###. #...# #...# #...# #.#.# #..#. .##.#',
  R: '####. #...# #...# ####. #.#.. #..#. #...#',
  S: '.#### #.... #.... .###. ....# ....# ####.',
  T: '##### ..#.. ..#.. ..#.. ..#.. ..#.. ..#..',
  U: '#...# #...# #...# #...# #...# #...# .###.',
  V: '#...# #...# #...# #...# #...# .#.#. ..#..',
  W: '#...# #...# #...# #.#.# #.#.# #.#.# .#.#.',
  X: '#...# #...# .#.#. ..#.. .#.#. #...# #...#',
  Y: '#...# #...# .#.#. ..#.. ..#.. ..#.. ..#..',
  Z: '##### ....# ...#. ..#.. .#... #.... #####',
  '0': '.###. #...# #..## #.#.# ##..# #...# .###.',
  '1': '..#.. .##.. ..#.. ..#.. ..#.. ..#.. .###.',
  '2': '.###. #...# ....# ...#. ..#.. .#... #####',
  '3': '####. ....# ....# .###. ....# ....# ####.',
  '4': '...#. ..##. .#.#. #..#. ##### ...#. ...#.',
  '5': '##### #.... ####. ....# ....# #...# .###.',
  '6': '..##. .#... #.... ####. #...# #...# .###.',
  '7': '##### ....# ...#. ..#.. .#... .#... .#...',
  '8': '.###. #...# #...# .###. #...# #...# .###.',
  '9': '.###. #...# #...# .#### ....# ...#. .##..',
  ' ': '..... ..... ..... ..... ..... ..... .....',
  '|': '..#.. ..#.. ..#.. ..#.. ..#.. ..#.. ..#..',
  '-': '..... ..... ..... ##### ..... ..... .....',
  '.': '..... ..... ..... ..... ..... .##.. .##..',
  ',': '..... ..... ..... ..... .##.. ..#.. .#...',
  ':': '..... .##.. .##.. ..... .##.. .##.. .....',
  '/': '....# ....# ...#. ..#.. .#... #.... #....',
  '(': '...#. ..#.. .#... .#... .#... ..#.. ...#.',
  ')': '.#... ..#.. ...#. ...#. ...#. ..#.. .#...',
  '%': '##..# ##..# ...#. ..#.. .#... #..## #..##',
  '+': '..... ..#.. ..#.. ##### ..#.. ..#.. .....',
  '=': '..... ..... ##### ..... ##### ..... .....',
  _: '..... ..... ..... ..... ..... ..... #####',
  '?': '.###. #...# ....# ...#. ..#.. ..... ..#..',
};

/** Glyph cell size of the pixel font, in font pixels (before `scale`). */
export const PIXEL_FONT = { width: 5, height: 7, advance: 6 } as const;

const GLYPHS = new Map<string, Uint8Array>(
  Object.entries(G).map(([ch, rows]) => [
    ch,
    Uint8Array.from(rows.replaceAll(' ', ''), (c) => (c === '#' ? 1 : 0)),
  ]),
);

const glyph = (ch: string) => GLYPHS.get(ch.toUpperCase()) ?? (GLYPHS.get('?') as Uint8Array);

/** Width in pixels of `s` drawn at `scale` (font pixels `scale` x `scale`, 1 font pixel apart). */
export function pixelTextWidth(s: string, scale = 1): number {
  const n = [...s].length;
  return n === 0 ? 0 : (n * PIXEL_FONT.advance - 1) * scale;
}

/** Height in pixels of a line drawn at `scale`. */
export const pixelTextHeight = (scale = 1): number => PIXEL_FONT.height * scale;

/**
 * Draws `s` with its top-left corner at (x, y), calling `put(px, py)` for every inked pixel
 * (clipping is the caller's: `put` gets coordinates outside its canvas too).
 */
export function drawPixelText(
  s: string,
  x: number,
  y: number,
  scale: number,
  put: (px: number, py: number) => void,
): void {
  const k = Math.max(1, Math.floor(scale));
  let cx = x;
  for (const ch of s) {
    const g = glyph(ch);
    for (let r = 0; r < PIXEL_FONT.height; r++)
      for (let b = 0; b < PIXEL_FONT.width; b++)
        if (g[r * PIXEL_FONT.width + b])
          for (let dy = 0; dy < k; dy++)
            for (let dx = 0; dx < k; dx++) put(cx + b * k + dx, y + r * k + dy);
    cx += PIXEL_FONT.advance * k;
  }
}

/** The largest integer scale at which `s` fits in `width` pixels (at least 1). */
export function pixelTextScaleToFit(s: string, width: number): number {
  const unit = pixelTextWidth(s, 1);
  return unit === 0 ? 1 : Math.max(1, Math.floor(width / unit));
}
