/**
 * `dif-fuse align` and `dif-fuse --align/--resize/--onto/--crop` end to end on the built CLI,
 * with hand-computable images: a flat infrared frame and a visible image of twice its
 * resolution covering all but the first 4 columns and 3 rows of it.
 */
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';
import { dif, expectOneLineError, readRgb, tmp, writeScenePair } from './helpers';

let dir: string;
let ir: string;
let vis: string;
let rig: string;

async function flat(path: string, w: number, h: number, channels: 1 | 3, v: number) {
  await sharp({ create: { width: w, height: h, channels: 3, background: { r: v, g: v, b: v } } })
    .toColourspace(channels === 1 ? 'b-w' : 'srgb')
    .png()
    .toFile(path);
}

beforeAll(async () => {
  dir = tmp();
  ir = join(dir, 'ir.png');
  vis = join(dir, 'vi.png');
  await flat(ir, 40, 32, 1, 200);
  await flat(vis, 80, 64, 3, 100);
  // vis (x, y) -> ir (x / 2 + 4, y / 2 + 3)
  const pts = [
    [0, 0],
    [79, 0],
    [79, 63],
    [0, 63],
    [40, 30],
  ].map(([x, y]) => ({ vis: [x, y], ir: [x / 2 + 4, y / 2 + 3] }));
  writeFileSync(join(dir, 'pts.json'), JSON.stringify(pts));
  rig = join(dir, 'rig.json');
  const r = dif(['align', '--ir', ir, '--vis', vis, '--points', join(dir, 'pts.json'), '-o', rig]);
  expect(r.code, r.stderr).toBe(0);
});

describe('dif-fuse align', () => {
  it('--points: the least-squares transform, both sizes, the overlap and a check image', async () => {
    const j = JSON.parse(readFileSync(rig, 'utf8'));
    const want = [0.5, 0, 4, 0, 0.5, 3, 0, 0, 1];
    for (const [i, v] of (j.vis_to_ir as number[]).entries()) expect(v).toBeCloseTo(want[i], 8);
    expect(j.ir_size).toEqual([40, 32]);
    expect(j.vis_size).toEqual([80, 64]);
    // footprint x 3.75..43.75, y 2.75..34.75 on a 40x32 frame: whole pixels x 5..39, y 4..31
    expect(j.overlap).toEqual({ x: 5, y: 4, width: 35, height: 28 });
    expect(j.source).toEqual({ method: 'points', points: 5, rms_px: 0 });
    const check = await sharp(join(dir, 'rig.check.png')).metadata();
    expect([check.width, check.height]).toEqual([40, 32]);
  });

  it('refuses to guess on images without common structure (one line, no rig file)', () => {
    const out = join(dir, 'none.json');
    expectOneLineError(
      dif(['align', '--ir', ir, '--vis', vis, '-o', out]),
      /vi\.png: cannot align with .*ir\.png: .*no rig file written/,
      expect,
    );
  });
});

describe('dif-fuse --align', () => {
  it('warps the visible image onto the infrared grid; outside its footprint the output is the infrared', async () => {
    const out = join(dir, 'avg.png');
    const r = dif(['--ir', ir, '--vis', vis, '-o', out, '--method', 'average', '--align', rig]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(
      /visible warped onto the 40x32 infrared grid; [\d.]+% of the output from the infrared image alone/,
    );
    const img = await readRgb(out);
    expect([img.width, img.height]).toEqual([40, 32]);
    const px = (x: number, y: number) => img.data[(y * 40 + x) * 3];
    expect(px(0, 0)).toBe(200); // infrared alone
    expect(px(2, 20)).toBe(200);
    expect(px(20, 16)).toBe(150); // (200 + 100) / 2
  });

  it('--onto vis --crop overlap: the visible grid, cut to the infrared footprint', async () => {
    const out = join(dir, 'onto.png');
    const r = dif([
      '--ir',
      ir,
      '--vis',
      vis,
      '-o',
      out,
      '--method',
      'average',
      '--align',
      rig,
      '--onto',
      'vis',
      '--crop',
      'overlap',
    ]);
    expect(r.code, r.stderr).toBe(0);
    const img = await readRgb(out);
    // IR footprint on the visible grid: x -9..71, y -7..57 -> whole pixels 0..70 x 0..56
    expect([img.width, img.height]).toEqual([71, 57]);
    expect(img.data[(30 * 71 + 30) * 3]).toBe(150);
  });

  it('--resize: same field of view at another resolution', async () => {
    const out = join(dir, 'resize.png');
    const r = dif(['--ir', ir, '--vis', vis, '-o', out, '--method', 'average', '--resize']);
    expect(r.code, r.stderr).toBe(0);
    const img = await readRgb(out);
    expect([img.width, img.height]).toEqual([40, 32]);
    expect(new Set(img.data)).toEqual(new Set([150]));
  });

  it("a rig file whose sizes are not the images' is refused, naming the sizes", async () => {
    const ir2 = join(dir, 'ir41.png');
    await flat(ir2, 41, 32, 1, 200);
    expectOneLineError(
      dif([
        '--ir',
        ir2,
        '--vis',
        vis,
        '-o',
        join(dir, 'x.png'),
        '--method',
        'average',
        '--align',
        rig,
      ]),
      /ir41\.png: infrared image is 41x32 but the rig .*rig\.json was calibrated for 40x32 infrared images/,
      expect,
    );
  });

  it('the size-mismatch error names --align and --resize', () => {
    expectOneLineError(
      dif(['--ir', ir, '--vis', vis, '-o', join(dir, 'x.png'), '--method', 'average']),
      /size mismatch: .*ir\.png is 40x32 but .*vi\.png is 80x64 \(.*--align rig\.json.*--align auto.*--resize\)/,
      expect,
    );
  });

  it('a file that is not a rig file is one line', () => {
    writeFileSync(join(dir, 'bad.json'), '{"x": 1}');
    expectOneLineError(
      dif([
        '--ir',
        ir,
        '--vis',
        vis,
        '-o',
        join(dir, 'x.png'),
        '--method',
        'average',
        '--align',
        join(dir, 'bad.json'),
      ]),
      /bad\.json: not a rig file/,
      expect,
    );
  });
});

describe('dif-fuse --align on videos and frame folders', () => {
  let seqIr: string;
  let seqVis: string;
  beforeAll(async () => {
    seqIr = join(dir, 'seq-ir');
    seqVis = join(dir, 'seq-vi');
    mkdirSync(seqIr);
    mkdirSync(seqVis);
    for (const k of [1, 2, 3]) {
      await flat(join(seqIr, `${k}.png`), 40, 32, 1, 200);
      await flat(join(seqVis, `${k}.png`), 80, 64, 3, 100);
    }
  });

  it('--align rig.json: every frame warped with the rig; outside the visible footprint the infrared alone', async () => {
    const out = join(dir, 'seq-out');
    const r = dif([
      '--ir',
      seqIr,
      '--vis',
      seqVis,
      '-o',
      out,
      '--method',
      'average',
      '--align',
      rig,
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(
      /align: rig .*rig\.json \(affine: scale 0\.500, rotation 0\.00 deg, shift \(4\.0, 3\.0\) px\)/,
    );
    const names = readdirSync(out).filter((n) => n.endsWith('.png'));
    expect(names).toHaveLength(3);
    for (const n of names) {
      const img = await readRgb(join(out, n));
      expect([img.width, img.height]).toEqual([40, 32]);
      const px = (x: number, y: number) => img.data[(y * 40 + x) * 3];
      expect(px(0, 0)).toBe(200);
      expect(px(20, 16)).toBe(150);
    }
  });

  it('--resize and --onto vis: the frames on the visible grid', async () => {
    const out = join(dir, 'seq-resize');
    const r = dif([
      '--ir',
      seqIr,
      '--vis',
      seqVis,
      '-o',
      out,
      '--method',
      'average',
      '--resize',
      '--onto',
      'vis',
    ]);
    expect(r.code, r.stderr).toBe(0);
    const img = await readRgb(join(out, '000002.png'));
    expect([img.width, img.height]).toEqual([80, 64]);
    expect(new Set(img.data)).toEqual(new Set([150]));
  });

  it('--align auto: one transform estimated from a few frame pairs, the corners within 1 px of the ground truth', async () => {
    const ai = join(dir, 'auto-ir');
    const av = join(dir, 'auto-vi');
    mkdirSync(ai);
    mkdirSync(av);
    // visible (x, y) -> infrared (x / 2 + 20, y / 2 + 14): a 240x200 visible frame at twice
    // the infrared resolution, covering 120x100 of the 160x128 infrared frame.
    for (const k of [1, 2]) await writeScenePair(join(ai, `${k}.png`), join(av, `${k}.png`));
    const out = join(dir, 'auto-out');
    const r = dif(['--ir', ai, '--vis', av, '-o', out, '--method', 'average', '--align', 'auto']);
    expect(r.code, r.stderr).toBe(0);
    const m = r.stderr.match(
      /align: estimated from 2 frame pairs in [\d.]+ s: scale ([\d.]+), rotation (-?[\d.]+) deg, shift \((-?[\d.]+), (-?[\d.]+)\) px/,
    );
    expect(m, r.stderr).not.toBeNull();
    const [s, rot, dx, dy] = m!.slice(1).map(Number);
    // RMS distance of the visible footprint's corners from where the ground truth puts them
    // (the printed similarity: scale to 3 decimals, shift to 0.1 px).
    const a = (rot * Math.PI) / 180;
    let se = 0;
    for (const [x, y] of [
      [-0.5, -0.5],
      [239.5, -0.5],
      [239.5, 199.5],
      [-0.5, 199.5],
    ]) {
      const u = s * Math.cos(a) * x - s * Math.sin(a) * y + dx;
      const v = s * Math.sin(a) * x + s * Math.cos(a) * y + dy;
      se += (u - (x / 2 + 20)) ** 2 + (v - (y / 2 + 14)) ** 2;
    }
    expect(Math.sqrt(se / 4)).toBeLessThan(1);
    const img = await readRgb(join(out, '000001.png'));
    expect([img.width, img.height]).toEqual([160, 128]);
  });

  it('a rig calibrated for other sizes is refused before any frame is fused', async () => {
    const big = join(dir, 'seq-ir41');
    mkdirSync(big);
    await flat(join(big, '1.png'), 41, 32, 1, 200); // also fewer frames: the rig is checked first
    expectOneLineError(
      dif([
        '--ir',
        big,
        '--vis',
        seqVis,
        '-o',
        join(dir, 'seq-x'),
        '--method',
        'average',
        '--align',
        rig,
      ]),
      /seq-ir41: infrared image is 41x32 but the rig .*rig\.json was calibrated for 40x32 infrared images/,
      expect,
    );
  });
});
