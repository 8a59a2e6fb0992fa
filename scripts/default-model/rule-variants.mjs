#!/usr/bin/env node
/**
 * Target variants applied as rules (F = V + (Y_T' - Y)) with optional detail transfer and
 * sharpening, evaluated on the RoadScene validation pairs (means of SF, AG, VIF, Qabf, SSIM,
 * ΔE, MI): the model card's "rule:" rows of the v5 variants.
 *
 *   node scripts/default-model/rule-variants.mjs '{"name": {"opts": {...}, "vdetail": 0.5, "vnd": 1, "sharpen": 0.15}}'
 */
import { readdirSync } from 'node:fs';
import { join, parse } from 'node:path';
import {
  fusionTarget,
  gaussianBlurPlane,
  LUMA_WEIGHTS,
} from '../../packages/fusion-head/dist/index.js';
import { readImage } from '../../packages/io/dist/index.js';
import * as M from '../../packages/metrics/dist/index.js';

const pairs = '../shared/data/roadscene/val';
const variants = JSON.parse(process.argv[2]);
const irDir = join(pairs, 'ir'),
  viDir = join(pairs, 'vi');
const vis = new Map(readdirSync(viDir).map((f) => [parse(f).name, f]));
const sums = {};
const ss = (lo, hi, v) => {
  const t = Math.min(1, Math.max(0, (v - lo) / (hi - lo)));
  return t * t * (3 - 2 * t);
};
for (const f of readdirSync(irDir).sort()) {
  const stem = parse(f).name;
  const ir = await readImage(join(irDir, f), { channels: 1 });
  const vi = await readImage(join(viDir, vis.get(stem)), { channels: 3 });
  const { width: w, height: h } = ir;
  const n = w * h;
  const y = new Float32Array(n),
    i1 = new Float32Array(n);
  for (let p = 0; p < n; p++) {
    i1[p] = (ir.data[p] / 255) * 2 - 1;
    let s = 0;
    for (let c = 0; c < 3; c++) s += LUMA_WEIGHTS[c] * ((vi.data[3 * p + c] / 255) * 2 - 1);
    y[p] = s;
  }
  for (const [name, v] of Object.entries(variants)) {
    const t = fusionTarget(v.kind ?? 'salient', y, i1, h, w, v.opts ?? {});
    const yt = t.intensity.slice();
    const sig = v.sigma ?? 2;
    if (v.vdetail || v.idetail) {
      const by = gaussianBlurPlane(y, h, w, sig);
      const bi = gaussianBlurPlane(i1, h, w, sig);
      const my = gaussianBlurPlane(y, h, w, 8);
      for (let p = 0; p < n; p++) {
        const dy = y[p] - by[p],
          di = i1[p] - bi[p];
        const over = i1[p] > y[p] ? 1 : 0;
        const lit = v.vnd ? ss(0.12, 0.4, (my[p] + 1) / 2) : 1;
        if (v.vdetail) yt[p] += v.vdetail * lit * t.weight[p] * over * dy;
        if (v.idetail) {
          const c = ss(v.elo ?? 0.02, v.ehi ?? 0.06, Math.abs(di) / 2);
          yt[p] += v.idetail * c * (1 - over) * di;
        }
      }
    }
    if (v.sharpen) {
      const b = gaussianBlurPlane(yt, h, w, v.ssigma ?? 1);
      for (let p = 0; p < n; p++) yt[p] += v.sharpen * (yt[p] - b[p]);
    }
    const data = new Uint8Array(3 * n);
    for (let p = 0; p < n; p++) {
      const d = ((yt[p] - y[p]) / 2) * 255;
      for (let c = 0; c < 3; c++)
        data[3 * p + c] = Math.max(0, Math.min(255, Math.round(vi.data[3 * p + c] + d)));
    }
    const fused = { width: w, height: h, channels: 3, data };
    const m = M.evaluateFusion(
      { width: w, height: h, channels: 1, data: ir.data },
      { width: w, height: h, channels: 3, data: vi.data },
      fused,
    );
    sums[name] ??= {};
    for (const k of ['SF', 'AG', 'VIF', 'Qabf', 'SSIM', 'DeltaE', 'MI'])
      sums[name][k] = (sums[name][k] ?? 0) + (m[k] ?? m[k.toLowerCase()] ?? NaN) / 21;
  }
}
for (const [name, s] of Object.entries(sums))
  console.log(
    name.padEnd(14),
    Object.entries(s)
      .map(([k, v]) => `${k} ${v.toFixed(4)}`)
      .join('  '),
  );
