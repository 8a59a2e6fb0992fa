/**
 * A tiny 3x5 pixel font drawing into an RGB buffer, for the labels of sample grids: written
 * here (not rendered through SVG and system fonts) so a grid's bytes depend only on the
 * seed, never on the fonts a machine has installed.
 */

// 3x5 glyphs, rows top to bottom, 3 bits each (MSB = left): the grids' labels.
const GLYPHS: Record<string, number[]> = {
  A: [2, 5, 7, 5, 5],
  B: [6, 5, 6, 5, 6],
  E: [7, 4, 6, 4, 7],
  G: [7, 4, 5, 5, 7],
  I: [7, 2, 2, 2, 7],
  L: [4, 4, 4, 4, 7],
  R: [6, 5, 6, 5, 5],
  ' ': [0, 0, 0, 0, 0],
};

/** A white RGB canvas (interleaved, row-major) with pixel text. */
export class Canvas {
  readonly data: Uint8Array;
  constructor(
    readonly width: number,
    readonly height: number,
  ) {
    this.data = new Uint8Array(width * height * 3).fill(255);
  }

  private set(x: number, y: number, c: readonly number[]): void {
    if (x < 0 || y < 0 || x >= this.width || y >= this.height) return;
    const i = (y * this.width + x) * 3;
    for (let k = 0; k < 3; k++) this.data[i + k] = c[k];
  }

  /** Draw `s` with its top-left at (x, y), each font pixel `scale` x `scale`. */
  text(x: number, y: number, s: string, c: readonly number[], scale = 2): void {
    let cx = x;
    for (const ch of s) {
      const g = GLYPHS[ch];
      if (g)
        for (let r = 0; r < 5; r++)
          for (let b = 0; b < 3; b++)
            if (g[r] & (4 >> b))
              for (let dy = 0; dy < scale; dy++)
                for (let dx = 0; dx < scale; dx++)
                  this.set(cx + b * scale + dx, y + r * scale + dy, c);
      cx += 4 * scale;
    }
  }
}

/** Text width in pixels of {@link Canvas.text}. */
export const textWidth = (s: string, scale = 2) => s.length * 4 * scale - scale;
