/**
 * The head variants (config `output`, `source_skip`): what each guarantees, checked on
 * random weights and features.
 */

import { Rng } from '@dif-fusion/schedules';
import { TfOps, TfParamStore } from '@dif-fusion/tfjs';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { beforeAll, describe, expect, it } from 'vitest';
import { normalizeHeadConfig } from './config';
import { FusionHead } from './head';

const BASE = {
  feat_scales: [1, 4],
  time_steps: [5, 50],
  mode: 'full' as const,
};
/** The decoder keys of the UNet the heads read. */
const UNET = { inner_channel: 4, channel_multiplier: [1, 2], res_blocks: 2 };

beforeAll(async () => {
  await tf.setBackend('cpu');
});

function run(head: FusionHead, seed: number) {
  const rng = new Rng(seed);
  const n = 2;
  const s = 8;
  const t = (shape: number[], scale = 1) =>
    tf.tensor(
      Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => rng.normal() * scale),
      shape,
    );
  const feats = head.config.time_steps.map(() =>
    Array.from({ length: 6 }, (_, i) => {
      const level = Math.floor(i / 3);
      return t([n, s >> level, s >> level, 4 * head.unet.channel_multiplier[level]]);
    }),
  );
  const vis = tf.clipByValue(t([n, s, s, 3], 0.5), -1, 1);
  const ir = tf.clipByValue(t([n, s, s, 1], 0.5), -1, 1);
  const store = TfParamStore.init(head.params(), seed);
  const fused = head.forward(new TfOps(store), feats, { vis, ir });
  const out = {
    f: fused.arraySync() as number[][][][],
    v: vis.arraySync() as number[][][][],
    i: ir.arraySync() as number[][][][],
  };
  store.dispose();
  return out;
}

describe('FusionHead variants', () => {
  it("output 'luma': F = V + d on every channel, so BT.601 chroma of F equals the visible image's", () => {
    const head = new FusionHead({ ...BASE, output: 'luma' }, UNET);
    expect(head.params().find((p) => p.name === 'rgb_decode1.conv.weight')!.shape).toEqual([
      1, 64, 3, 3,
    ]);
    const { f, v } = run(head, 1);
    let worst = 0;
    let moved = 0;
    for (let n = 0; n < f.length; n++)
      for (let y = 0; y < f[n].length; y++)
        for (let x = 0; x < f[n][y].length; x++) {
          const [r, g, b] = f[n][y][x];
          const [vr, vg, vb] = v[n][y][x];
          const cb = (p: number, q: number, s: number) => -0.168736 * p - 0.331264 * q + 0.5 * s;
          const cr = (p: number, q: number, s: number) => 0.5 * p - 0.418688 * q - 0.081312 * s;
          worst = Math.max(
            worst,
            Math.abs(cb(r, g, b) - cb(vr, vg, vb)),
            Math.abs(cr(r, g, b) - cr(vr, vg, vb)),
          );
          // the same lightness change d on each channel, |d| < 2
          expect(Math.abs(r - vr - (g - vg))).toBeLessThan(1e-6);
          expect(Math.abs(r - vr)).toBeLessThan(2);
          moved = Math.max(moved, Math.abs(r - vr));
        }
    expect(worst).toBeLessThan(1e-6);
    expect(moved).toBeGreaterThan(1e-3);
  });

  it("output 'weight': each pixel is w V + (1 - w) I with one w in (0, 1) for the three channels", () => {
    const { f, v, i } = run(new FusionHead({ ...BASE, output: 'weight' }, UNET), 2);
    for (let n = 0; n < f.length; n++)
      for (let y = 0; y < f[n].length; y++)
        for (let x = 0; x < f[n][y].length; x++) {
          const ir = i[n][y][x][0];
          const ws = [0, 1, 2]
            .filter((c) => Math.abs(v[n][y][x][c] - ir) > 1e-2)
            .map((c) => (f[n][y][x][c] - ir) / (v[n][y][x][c] - ir));
          for (const w of ws) {
            expect(w).toBeGreaterThan(0);
            expect(w).toBeLessThan(1);
            expect(Math.abs(w - ws[0])).toBeLessThan(1e-3);
          }
        }
  });

  it('source_skip widens the final layers by the 4 source channels; the sources change the output', () => {
    const head = new FusionHead({ ...BASE, mode: 'reference', source_skip: true }, UNET);
    expect(head.params().find((p) => p.name === 'rgb_decode2.conv.weight')!.shape).toEqual([
      64, 8, 3, 3,
    ]);
    const a = run(head, 3);
    expect(a.f[0][0][0]).toHaveLength(3);
    expect(() => head.forward(new TfOps(TfParamStore.init(head.params(), 1)), [[], []])).toThrow(
      /needs the source images/,
    );
  });

  it('config JSON: variants written only when not the default; bad values refused', () => {
    const plain = normalizeHeadConfig(BASE, UNET);
    expect('output' in new FusionHead(plain, UNET).toJSON()).toBe(false);
    const v = new FusionHead({ ...BASE, output: 'luma', source_skip: true }, UNET).toJSON();
    expect(v.output).toBe('luma');
    expect(v.source_skip).toBe(true);
    expect(FusionHead.fromJSON(JSON.stringify(v), UNET).toJSON()).toEqual(v);
    expect(() => normalizeHeadConfig({ ...BASE, output: 'ycbcr' as never }, UNET)).toThrow(
      /unknown output 'ycbcr'/,
    );
  });
});
