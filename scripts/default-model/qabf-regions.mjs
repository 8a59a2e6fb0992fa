#!/usr/bin/env node
/**
 * Where Qabf comes from (model card, "Why Qabf stays below ycbcr-max"): its numerator split by
 * region (smooth bright visible: local luma above 0.45 and a low local visible gradient; dark;
 * other) and by source (the infrared's edges, the visible's), for fused folders, averaged over
 * the RoadScene validation pairs. Qabf as packages/metrics computes it (analysis_Qabf.m).
 *
 *   node scripts/default-model/qabf-regions.mjs FUSED_DIR [FUSED_DIR...]
 */
// and by source (infrared term, visible term), for fused folders; mean over the val pairs.
import { readdirSync } from 'node:fs';
import { join, parse } from 'node:path';
import { gaussianBlurPlane } from '../../packages/fusion-head/dist/index.js';
import { readImage } from '../../packages/io/dist/index.js';

const pairs = '../shared/data/roadscene/val';
const dirs = process.argv.slice(2);
const gray = (img) => {
  if (img.channels === 1) return Float64Array.from(img.data);
  const n = img.width * img.height;
  const o = new Float64Array(n);
  for (let p = 0; p < n; p++)
    o[p] = Math.round(
      0.2989 * img.data[3 * p] + 0.587 * img.data[3 * p + 1] + 0.114 * img.data[3 * p + 2],
    );
  return o;
};
function edges(p, w, h) {
  const g = new Float64Array(w * h),
    a = new Float64Array(w * h);
  const at = (y, x) => (y < 0 || y >= h || x < 0 || x >= w ? 0 : p[y * w + x]);
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++) {
      const tl = at(y - 1, x - 1),
        tc = at(y - 1, x),
        tr = at(y - 1, x + 1),
        ml = at(y, x - 1),
        mr = at(y, x + 1),
        bl = at(y + 1, x - 1),
        bc = at(y + 1, x),
        br = at(y + 1, x + 1);
      const sx = tl - tr + 2 * ml - 2 * mr + bl - br,
        sy = -tl - 2 * tc - tr + bl + 2 * bc + br;
      const i = y * w + x;
      g[i] = Math.hypot(sx, sy);
      a[i] = sx === 0 ? Math.PI / 2 : Math.atan(sy / sx);
    }
  return { g, a };
}
const q = (gs, as, gf, af) => {
  const G = gs > gf ? gf / gs : gs === gf ? gf : gs / gf;
  const Aa = 1 - Math.abs(as - af) / (Math.PI / 2);
  return (0.9994 / (1 + Math.exp(-15 * (G - 0.5)))) * (0.9879 / (1 + Math.exp(-22 * (Aa - 0.8))));
};
const vis = new Map(readdirSync(join(pairs, 'vi')).map((f) => [parse(f).name, f]));
const acc = Object.fromEntries(dirs.map((d) => [d, {}]));
for (const f of readdirSync(join(pairs, 'ir')).sort()) {
  const stem = parse(f).name;
  const ir = await readImage(join(pairs, 'ir', f), { channels: 1 });
  const vi = await readImage(join(pairs, 'vi', vis.get(stem)), { channels: 3 });
  const { width: w, height: h } = ir;
  const n = w * h;
  const A = edges(gray(ir), w, h),
    B = edges(gray(vi), w, h);
  const yv = Float32Array.from(gray(vi), (v) => v / 255);
  const my = gaussianBlurPlane(yv, h, w, 8);
  const gb = Float32Array.from(B.g, (v) => v);
  const mg = gaussianBlurPlane(gb, h, w, 4);
  const cls = new Uint8Array(n);
  for (let p = 0; p < n; p++) cls[p] = my[p] < 0.25 ? 1 : my[p] > 0.45 && mg[p] < 40 ? 0 : 2;
  let deno = 0;
  for (let p = 0; p < n; p++) deno += A.g[p] + B.g[p];
  for (const d of dirs) {
    const fi = await readImage(join(d, `${stem}.png`), { channels: 3 });
    const F = edges(gray(fi), w, h);
    const r = acc[d];
    for (let p = 0; p < n; p++) {
      const k = ['smooth-bright', 'dark', 'other'][cls[p]];
      r[`${k} ir`] = (r[`${k} ir`] ?? 0) + (q(A.g[p], A.a[p], F.g[p], F.a[p]) * A.g[p]) / deno / 21;
      r[`${k} vi`] = (r[`${k} vi`] ?? 0) + (q(B.g[p], B.a[p], F.g[p], F.a[p]) * B.g[p]) / deno / 21;
    }
  }
  for (let p = 0; p < n; p++) {
    const k = ['smooth-bright', 'dark', 'other'][cls[p]];
    const r = (acc.weights ??= {});
    r[`${k} ir`] = (r[`${k} ir`] ?? 0) + A.g[p] / deno / 21;
    r[`${k} vi`] = (r[`${k} vi`] ?? 0) + B.g[p] / deno / 21;
  }
}
const keys = Object.keys(acc.weights);
console.log('folder'.padEnd(28), keys.map((k) => k.padStart(17)).join(''), '      sum');
for (const [d, r] of Object.entries(acc))
  console.log(
    d.slice(-28).padEnd(28),
    keys.map((k) => r[k].toFixed(4).padStart(17)).join(''),
    Object.values(r)
      .reduce((a, b) => a + b, 0)
      .toFixed(4)
      .padStart(9),
  );
