import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { FloatImage } from './convert';
import { makeGrid, saveGrid } from './grid';
import { readImage } from './image';

const dir = mkdtempSync(join(tmpdir(), 'dif-io-grid-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function constant(width: number, height: number, channels: number, v: number): FloatImage {
  return { width, height, channels, data: new Float32Array(width * height * channels).fill(v) };
}

describe('makeGrid', () => {
  it('lays cells out row-major with padding; gray is replicated; empty cells are padValue', () => {
    const imgs = [constant(2, 2, 1, 0.5), constant(2, 2, 3, 1), constant(1, 1, 1, 0)];
    const g = makeGrid(imgs, 2, 1);
    // 2 columns x 2 rows of 2x2 cells, 1 pixel of padding between and around
    expect([g.width, g.height, g.channels]).toEqual([7, 7, 3]);
    const at = (c: number, x: number, y: number) => g.data[c * 49 + y * 7 + x];
    for (let c = 0; c < 3; c++) {
      expect(at(c, 1, 1)).toBe(0.5); // cell 0 (gray → every channel)
      expect(at(c, 2, 2)).toBe(0.5);
      expect(at(c, 4, 1)).toBe(1); // cell 1
      expect(at(c, 1, 4)).toBe(0); // cell 2, 1x1 at the top-left of its cell
      expect(at(c, 2, 4)).toBe(-1); // the rest of cell 2 is padding
      expect(at(c, 0, 0)).toBe(-1);
      expect(at(c, 3, 1)).toBe(-1);
      expect(at(c, 4, 4)).toBe(-1); // empty cell 3
    }
    expect(makeGrid([constant(1, 1, 1, 0)], 8, 0, { padValue: 1 }).data).toEqual(
      Float32Array.of(0),
    );
    expect(() => makeGrid([])).toThrow('makeGrid needs at least one image');
    expect(() => makeGrid([constant(1, 1, 4, 0)])).toThrow(
      'makeGrid takes 1- or 3-channel images, got 4',
    );
  });

  it('saveGrid writes an 8-bit PNG ([-1, 1] → 0..255) atomically', async () => {
    const p = join(dir, 'grid.png');
    await saveGrid(p, [constant(2, 1, 1, 1), constant(2, 1, 1, -1)], 2, 0);
    const img = await readImage(p);
    expect([img.width, img.height, img.channels, img.bitDepth]).toEqual([4, 1, 1, 8]);
    expect(Array.from(img.data)).toEqual([255, 255, 0, 0]);
    expect(readdirSync(dir)).toEqual(['grid.png']);
  });
});
