import { describe, expect, it } from 'vitest';
import { type GridColumn, labelledGrid } from './images';

/** n samples of `size` x `size`, `channels` planes, value = a known ramp. */
function column(n: number, channels: number, size: number, pick: number[]): GridColumn {
  const data = new Float32Array(n * channels * size * size);
  for (let i = 0; i < data.length; i++) data[i] = ((i * 37) % 255) / 127.5 - 1;
  return { data, channels, pick };
}

/** The rows (y) of the header holding dark label pixels. */
function inkRows(g: { width: number; data: Uint8Array }, header: number): number[] {
  const rows: number[] = [];
  for (let y = 0; y < header; y++) {
    let ink = false;
    for (let x = 0; x < g.width; x++) if (g.data[(y * g.width + x) * 3] < 128) ink = true;
    if (ink) rows.push(y);
  }
  return rows;
}

describe('labelled sample grids', () => {
  it('small tiles are zoomed so the labels are 2x the 5x7 font (14 px), pixels repeated', () => {
    const size = 16;
    const cols = [column(2, 4, size, [0, 1, 2]), column(2, 4, size, [3])];
    const g = labelledGrid(cols, ['RGB', 'IR'], 2, size);
    expect(g.zoom).toBe(4);
    expect(g.scale).toBe(2);
    const tile = 64;
    const header = 14 + 6;
    expect(g.width).toBe(2 * (tile + 2) + 2);
    expect(g.height).toBe(header + 2 * (tile + 2) + 2);
    // the labels: ink on exactly 14 rows (R, G, B and I have ink on their top and bottom rows)
    expect(inkRows(g, header)).toEqual(Array.from({ length: 14 }, (_, i) => 3 + i));
    // each source pixel is a 4x4 block: first RGB tile, source pixel (1, 0) -> x 6..9, y 0..3
    const at = (x: number, y: number) =>
      Array.from(
        g.data.subarray(
          ((header + 2 + y) * g.width + 2 + x) * 3,
          ((header + 2 + y) * g.width + 2 + x) * 3 + 3,
        ),
      );
    for (const [x, y] of [
      [4, 0],
      [7, 3],
      [5, 2],
    ])
      expect(at(x, y)).toEqual(at(4, 0));
    expect(at(4, 0)).not.toEqual(at(0, 0));
  });

  it('64-pixel tiles: no zoom, 2x labels; 256-pixel tiles: 4x labels', () => {
    const a = labelledGrid([column(1, 3, 64, [0, 1, 2])], ['REAL'], 1, 64);
    expect([a.zoom, a.scale]).toEqual([1, 2]);
    expect(a.width).toBe(64 + 4);
    const b = labelledGrid([column(1, 3, 256, [0, 1, 2])], ['REAL'], 1, 256);
    expect([b.zoom, b.scale]).toEqual([1, 4]);
    expect(inkRows(b, 28 + 12).length).toBe(28);
  });
});
