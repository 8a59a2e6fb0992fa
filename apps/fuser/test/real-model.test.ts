/**
 * The BUILT `dif-fuse` binary on a real (tiny, random-init) model folder written by
 * `exportFusionModel`: SR3 UNet features + fusion head in one ONNX graph. Checks sizes,
 * seed determinism (byte-identical), tiling and batch mode end to end.
 */
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { exportFusionModel, randomWeights } from '@dif-fusion/export';
import { FusionHead } from '@dif-fusion/fusion-head';
import { UNet } from '@dif-fusion/unet';
import { beforeAll, describe, expect, it } from 'vitest';
import { dif, readRgb, tmp, writeTestImage } from './helpers';

let dir: string;
let model: string;
let ir: string;
let vis: string;
const W = 37;
const H = 29;

beforeAll(async () => {
  dir = tmp();
  model = join(dir, 'tiny-model');
  const unet = new UNet({
    in_channel: 4,
    out_channel: 4,
    inner_channel: 8,
    norm_groups: 4,
    channel_multiplier: [1, 2],
    attn_res: [8],
    res_blocks: 1,
    dropout: 0,
    image_size: 16,
  });
  // res_blocks 1: 2 decoder features per level; scales 0 (full res) and 2 (1/2).
  const head = new FusionHead(
    { feat_scales: [0, 2], time_steps: [5, 50], mode: 'full' },
    unet.config,
  );
  exportFusionModel(model, {
    unet,
    unetWeights: randomWeights(unet.params(), 11),
    head,
    headWeights: randomWeights(head.params(), 12),
    schedule: { schedule: 'linear', n_timestep: 1000, linear_start: 1e-6, linear_end: 1e-2 },
    seed: 3,
    provenance: { source: 'random-init (fuser test)' },
  });
  ir = join(dir, 'ir.png');
  vis = join(dir, 'vi.jpg');
  await writeTestImage(ir, W, H, 1, 31);
  await writeTestImage(vis, W, H, 3, 32);
});

const fuse = (out: string, extra: string[] = []) => {
  const r = dif([
    '--ir',
    ir,
    '--vis',
    vis,
    '-o',
    out,
    '--model',
    model,
    '--threads',
    '1',
    ...extra,
  ]);
  expect(r.code, r.stderr).toBe(0);
  return r;
};

describe('dif-fuse with an exported random-init model', () => {
  it('fuses an odd-sized pair at its own size; same seed byte-identical, other seed differs', async () => {
    const r = fuse(join(dir, 'a.png'), ['--seed', '1']);
    expect(r.stderr).toMatch(/provider cpu/);
    expect(r.stdout).toMatch(/fused 1 image in [\d.]+ s \([\d.]+ MP\/s\)/);
    const img = await readRgb(join(dir, 'a.png'));
    expect([img.width, img.height, img.channels]).toEqual([W, H, 3]);
    // a random network still gives a non-constant image
    expect(new Set(img.data).size).toBeGreaterThan(10);
    fuse(join(dir, 'b.png'), ['--seed', '1', '-q']);
    fuse(join(dir, 'c.png'), ['--seed', '2', '-q']);
    const a = readFileSync(join(dir, 'a.png'));
    expect(readFileSync(join(dir, 'b.png')).equals(a)).toBe(true);
    expect(readFileSync(join(dir, 'c.png')).equals(a)).toBe(false);
  });

  it('tiles (deterministically) and fuses a batch folder', async () => {
    fuse(join(dir, 't1.png'), ['--tile', '32', '--overlap', '8', '-q']);
    fuse(join(dir, 't2.png'), ['--tile', '32', '--overlap', '8', '-q']);
    expect(readFileSync(join(dir, 't1.png')).equals(readFileSync(join(dir, 't2.png')))).toBe(true);
    const t = await readRgb(join(dir, 't1.png'));
    expect([t.width, t.height]).toEqual([W, H]);

    const pairs = join(dir, 'pairs');
    mkdirSync(join(pairs, 'ir'), { recursive: true });
    mkdirSync(join(pairs, 'vi'), { recursive: true });
    for (const [k, name] of ['p1', 'p2'].entries()) {
      await writeTestImage(join(pairs, 'ir', `${name}.png`), 20 + k, 18, 1, 40 + k);
      await writeTestImage(join(pairs, 'vi', `${name}.png`), 20 + k, 18, 3, 50 + k);
    }
    const r = dif(['--pairs', pairs, '-o', join(dir, 'batch'), '--model', model, '--ext', 'webp']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/fused 2 images in/);
    for (const [k, name] of ['p1', 'p2'].entries()) {
      const img = await readRgb(join(dir, 'batch', `${name}.webp`));
      expect([img.width, img.height]).toEqual([20 + k, 18]);
    }
  });
});
