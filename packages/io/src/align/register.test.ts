/**
 * Registration on real images (../shared/data, skipped when absent): synthetic warps of the
 * registered RoadScene pairs, real rig pairs against their ground truth, refusal of pairs
 * without common content. A few pairs only: the full distribution is scripts/rig-accuracy.mjs.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DATA_DIR, hasData, noteSkip } from '../../../../test/shared';
import { imageToFloat } from '../convert';
import { readImage } from '../image';
import { cornerRms, inv3, mul3, type TransformKind } from './matrix';
import { toGray } from './raster';
import { registerPairs } from './register';
import { checkRigSizes, type RigFile } from './rig';
import { warpImage } from './warp';

const REG = join(DATA_DIR, 'roadscene', 'val');
const RIG = join(DATA_DIR, 'roadscene-rig', 'val');

async function registered(name: string) {
  return {
    ir: imageToFloat(await readImage(join(REG, 'ir', `${name}.jpg`), { channels: 1 })),
    vi: imageToFloat(await readImage(join(REG, 'vi', `${name}.jpg`), { channels: 3 })),
  };
}

/** vis' -> ir: the registered visible image cropped to 80%, scaled, rotated, shifted. */
function synthetic(w: number, h: number, kind: TransformKind, scale: number, degrees: number) {
  const r = (degrees * Math.PI) / 180;
  const c = Math.cos(r) / scale;
  const s = Math.sin(r) / scale;
  const W = Math.round(0.8 * w * scale);
  const H = Math.round(0.8 * h * scale);
  const centre = [1, 0, -W / 2, 0, 1, -H / 2, 0, 0, 1];
  let A = mul3(
    [1, 0, w / 2 + 0.05 * w, 0, 1, h / 2 - 0.04 * h, 0, 0, 1],
    mul3([c, -s, 0, s, c * (kind === 'affine' ? 1.08 : 1), 0, 0, 0, 1], centre),
  );
  if (kind === 'homography')
    A = mul3(
      A,
      mul3(inv3(centre), mul3([1, 0, 0, 0, 1, 0, 6e-5 / scale, -4e-5 / scale, 1], centre)),
    );
  return { A, W, H };
}

describe.skipIf(!hasData)('registration on real images', () => {
  noteSkip(hasData, 'data');

  it.each([
    // a half-resolution visible image carries less detail: 0.5 IR px = 0.25 of its pixels
    ['FLIR_00548', 'similarity', 0.5, 4, 0.5],
    ['FLIR_01274', 'affine', 1.3, -3, 0.1],
    ['FLIR_04319', 'homography', 3, 5, 0.1],
  ] as const)(
    '%s: a %s warp (scale %s, %s deg) of the same image is recovered within %s px',
    async (name, kind, scale, deg, tol) => {
      const { ir } = await registered(name);
      const { A, W, H } = synthetic(ir.width, ir.height, kind, scale, deg);
      const vis = warpImage(ir, inv3(A), W, H).image;
      const r = registerPairs([{ ir: toGray(ir), vis: toGray(vis) }], { transform: kind });
      expect(r.reliable).toBe(true);
      expect(cornerRms(r.visToIr, A, W, H)).toBeLessThan(tol);
      expect(r.scoreAfter).toBeGreaterThan(0.9);
      expect(r.scoreAfter).toBeGreaterThan(r.scoreBefore);
    },
  );

  it('across modalities: a scaled, rotated, shifted visible image is recovered within 2.5 px (the registered pairs themselves disagree by ~2 px)', async () => {
    const { ir, vi } = await registered('FLIR_00548');
    const { A, W, H } = synthetic(ir.width, ir.height, 'affine', 1.3, 4);
    const vis = warpImage(vi, inv3(A), W, H).image;
    const r = registerPairs([{ ir: toGray(ir), vis: toGray(vis) }]);
    expect(r.reliable).toBe(true);
    expect(cornerRms(r.visToIr, A, W, H)).toBeLessThan(2.5);
  });

  it('a real rig pair: auto recovers the ground truth within 3 px at the footprint corners', async () => {
    const tf = JSON.parse(readFileSync(join(RIG, 'transforms.json'), 'utf8'));
    const t = tf.FLIR_00548;
    const ir = toGray(imageToFloat(await readImage(join(RIG, 'ir', t.ir), { channels: 1 })));
    const vis = toGray(imageToFloat(await readImage(join(RIG, 'vi', t.vis), { channels: 3 })));
    const r = registerPairs([{ ir, vis }]);
    expect(r.reliable).toBe(true);
    expect(cornerRms(r.visToIr, t.vis_to_ir, vis.width, vis.height)).toBeLessThan(3);
    // the raw frames stretched onto each other barely correlate; registered they do
    expect(r.scoreBefore).toBeLessThan(0.3);
    expect(r.scoreAfter).toBeGreaterThan(0.5);
  });

  it('a pair without common content is refused as unreliable', async () => {
    const tf = JSON.parse(readFileSync(join(RIG, 'transforms.json'), 'utf8'));
    const ir = toGray(
      imageToFloat(await readImage(join(RIG, 'ir', tf.FLIR_00122.ir), { channels: 1 })),
    );
    const vis = toGray(
      imageToFloat(await readImage(join(RIG, 'vi', tf.FLIR_05108.vis), { channels: 3 })),
    );
    const r = registerPairs([{ ir, vis }]);
    expect(r.reliable).toBe(false);
    expect(r.reason).toMatch(/correlate poorly/);
  });
});

describe('rig sizes', () => {
  it("a pair whose sizes are not the rig file's is refused naming both sizes", () => {
    const rig = { ir_size: [640, 512], vis_size: [1520, 785] } as unknown as RigFile;
    expect(() =>
      checkRigSizes(
        rig,
        'rig.json',
        { name: 'a.png', width: 640, height: 512 },
        { name: 'b.jpg', width: 1424, height: 1079 },
      ),
    ).toThrow(
      'b.jpg: visible image is 1424x1079 but the rig rig.json was calibrated for 1520x785 visible images',
    );
  });
});
