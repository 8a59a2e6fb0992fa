#!/usr/bin/env node
/**
 * A fusion target applied directly as a rule (F = V + (Y_T - Y(V)) on R, G and B, the `luma`
 * head's output form) to every pair of a folder: what a head trained on that target would
 * approach. For choosing target options before training (`dif-fuse eval` on the output).
 *
 *   node scripts/default-model/target-as-rule.mjs PAIRS_DIR OUT_DIR [salient|max] [JSON options] [--weight]
 */
import { readdirSync } from 'node:fs';
import { join, parse } from 'node:path';
import { fusionTarget, LUMA_WEIGHTS } from '../../packages/fusion-head/dist/index.js';
import { readImage, writeImage } from '../../packages/io/dist/index.js';

const [pairs, out, kind = 'salient', json = '{}', flag] = process.argv.slice(2);
const withWeight = flag === '--weight'; // also write the infrared weight w as OUT_DIR/weight/*.png
const opts = JSON.parse(json);
const irDir = join(pairs, 'ir');
const viDir = join(pairs, 'vi');
const vis = new Map(readdirSync(viDir).map((f) => [parse(f).name, f]));
for (const f of readdirSync(irDir).sort()) {
  const stem = parse(f).name;
  const ir = await readImage(join(irDir, f), { channels: 1 });
  const vi = await readImage(join(viDir, vis.get(stem)), { channels: 3 });
  const { width: w, height: h } = ir;
  const n = w * h;
  const y = new Float32Array(n);
  const i1 = new Float32Array(n);
  for (let p = 0; p < n; p++) {
    i1[p] = (ir.data[p] / 255) * 2 - 1;
    let s = 0;
    for (let c = 0; c < 3; c++) s += LUMA_WEIGHTS[c] * ((vi.data[3 * p + c] / 255) * 2 - 1);
    y[p] = s;
  }
  const t = fusionTarget(kind, y, i1, h, w, opts);
  const data = new Uint8Array(3 * n);
  for (let p = 0; p < n; p++) {
    const d = ((t.intensity[p] - y[p]) / 2) * 255;
    for (let c = 0; c < 3; c++)
      data[3 * p + c] = Math.max(0, Math.min(255, Math.round(vi.data[3 * p + c] + d)));
  }
  await writeImage(join(out, `${stem}.png`), {
    width: w,
    height: h,
    channels: 3,
    bitDepth: 8,
    data,
  });
  if (withWeight) {
    const wd = new Uint8Array(n);
    for (let p = 0; p < n; p++) wd[p] = Math.round(t.weight[p] * 255);
    await writeImage(join(out, 'weight', `${stem}.png`), {
      width: w,
      height: h,
      channels: 1,
      bitDepth: 8,
      data: wd,
    });
  }
}
