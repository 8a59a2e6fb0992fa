import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { centerCrops } from './center-crops';
import { PairDataset } from './dataset';
import { writeImage } from './image';

const root = mkdtempSync(join(tmpdir(), 'dif-io-crops-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('centerCrops', () => {
  it('cuts the centre of each pair as [n, 4, crop, crop], visible RGB then IR, in [-1, 1]', async () => {
    // 4x2 images whose pixel value encodes its column: the 2x2 centre is columns 1..2.
    const w = 4;
    const h = 2;
    const img = (channels: 1 | 3, base: number) => {
      const data = new Uint8Array(w * h * channels);
      for (let y = 0; y < h; y++)
        for (let x = 0; x < w; x++)
          for (let c = 0; c < channels; c++) data[(y * w + x) * channels + c] = base + 51 * x;
      return { width: w, height: h, channels, bitDepth: 8 as const, data };
    };
    await writeImage(join(root, 'ir', 'a.png'), img(1, 0));
    await writeImage(join(root, 'vi', 'a.png'), img(3, 0));
    const ds = await PairDataset.open(root);
    const crops = await centerCrops(ds, 2);
    expect(crops.length).toBe(4 * 2 * 2);
    // value v in [0, 255] -> v / 127.5 - 1; columns 1 and 2 hold 51 and 102.
    const v = (x: number) => (51 * x) / 127.5 - 1;
    for (let c = 0; c < 4; c++)
      expect(Array.from(crops.subarray(c * 4, c * 4 + 4)).map((a) => +a.toFixed(5))).toEqual(
        [v(1), v(2), v(1), v(2)].map((a) => +a.toFixed(5)),
      );
  });
});
