/** Real infrared/visible pairs from ../shared/data/roadscene/val (skipped when absent). */
import { join } from 'node:path';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { DATA_DIR, hasData, noteSkip } from '../../../test/shared';
import { imageToFloat } from './convert';
import { describeUnmatched, PairDataset } from './dataset';
import { padToMultiple, unpad } from './geometry';
import { channelsEqual } from './image';
import { TrainingSampler } from './sampler';
import { extractTile, planTiles, TileBlender } from './tiles';

const VAL = join(DATA_DIR, 'roadscene', 'val');

describe.skipIf(!hasData)('RoadScene validation pairs', () => {
  noteSkip(hasData, 'data');

  it('scans 21 matched pairs and decodes them: gray IR, colour visible, equal sizes', async () => {
    const ds = await PairDataset.open(VAL);
    expect(ds.length).toBe(21);
    expect(describeUnmatched(ds.scan)).toEqual([]);
    expect(ds.pairs[0].name).toBe('FLIR_00122');
    for (let i = 0; i < ds.length; i++) {
      const p = await ds.get(i);
      expect(p.ir.channels).toBe(1);
      expect(p.vi.channels).toBe(3);
      expect(p.ir.bitDepth).toBe(8);
      expect([p.ir.width, p.ir.height]).toEqual([p.vi.width, p.vi.height]);
      // the size sharp reads from the file header, and a few hundred pixels each way
      const meta = await sharp(p.viPath).metadata();
      expect([p.vi.width, p.vi.height]).toEqual([meta.width, meta.height]);
      expect(Math.min(p.vi.width, p.vi.height)).toBeGreaterThan(128);
      expect(channelsEqual(p.vi)).toBe(false);
    }
  });

  it('samples training batches, pads and tiles a real image back exactly', async () => {
    const ds = await PairDataset.open(VAL);
    const sampler = new TrainingSampler(ds, { cropSize: 64, batchSize: 4, seed: 1 });
    const b = await sampler.next();
    expect(b.img.length).toBe(4 * 4 * 64 * 64);
    expect(new Set(b.names).size).toBe(4);
    let lo = Infinity;
    let hi = -Infinity;
    for (const v of b.img) {
      lo = Math.min(lo, v);
      hi = Math.max(hi, v);
    }
    expect(lo).toBeGreaterThanOrEqual(-1);
    expect(hi).toBeLessThanOrEqual(1);
    expect(hi - lo).toBeGreaterThan(0.2); // real content, not a constant

    const vi = imageToFloat((await ds.get(0)).vi);
    expect(vi.width % 16 !== 0 || vi.height % 16 !== 0).toBe(true);
    const p = padToMultiple(vi, 16);
    expect(p.image.width % 16).toBe(0);
    expect(p.image.height % 16).toBe(0);
    expect(Array.from(unpad(p.image, p).data)).toEqual(Array.from(vi.data));

    const blender = new TileBlender(vi.width, vi.height, 3);
    for (const t of planTiles(vi.width, vi.height, 128, 16)) blender.add(t, extractTile(vi, t));
    const back = blender.result().data;
    let worst = 0;
    for (let i = 0; i < back.length; i++) worst = Math.max(worst, Math.abs(back[i] - vi.data[i]));
    expect(worst).toBeLessThan(1e-6);
  });
});
