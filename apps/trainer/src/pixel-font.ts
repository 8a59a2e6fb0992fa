/**
 * A white RGB canvas with pixel text, for the labels of sample grids: the glyphs are
 * `@dif-fusion/io`'s 5x7 pixel font (not SVG and system fonts), so a grid's bytes depend only
 * on the seed, never on the fonts a machine has installed.
 */
import { drawPixelText, pixelTextHeight, pixelTextWidth } from '@dif-fusion/io';

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
    drawPixelText(s, x, y, scale, (px, py) => this.set(px, py, c));
  }
}

/** Text width in pixels of {@link Canvas.text}. */
export const textWidth = (s: string, scale = 2) => pixelTextWidth(s, scale);

/** Text height in pixels of {@link Canvas.text}. */
export const textHeight = (scale = 2) => pixelTextHeight(scale);
