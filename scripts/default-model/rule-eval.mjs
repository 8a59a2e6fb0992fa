/**
 * The shared part of the rule scripts (rule-variants.mjs, rule-ms.mjs, target-as-rule.mjs): the RoadScene
 * validation pairs as [-1, 1] planes (visible luma y, infrared i1), and the evaluation of a
 * rule's target luma yt applied to the visible colours (F = V + (yt - y) on R, G, B), as the
 * model card's "rule:" rows are measured.
 */
import { readdirSync } from 'node:fs';
import { join, parse } from 'node:path';
import { LUMA_WEIGHTS } from '../../packages/fusion-head/dist/index.js';
import { readImage } from '../../packages/io/dist/index.js';
import * as M from '../../packages/metrics/dist/index.js';

export const VAL_PAIRS = process.env.DIF_FUSION_SHARED
  ? join(process.env.DIF_FUSION_SHARED, 'data/roadscene/val')
  : '../shared/data/roadscene/val';

/** Each pair of a folder (default: the validation pairs): the decoded images and the planes y, i1 ([-1, 1]). */
export async function* valPairs(pairs = VAL_PAIRS) {
  const irDir = join(pairs, 'ir');
  const viDir = join(pairs, 'vi');
  const vis = new Map(readdirSync(viDir).map((f) => [parse(f).name, f]));
  const files = readdirSync(irDir).sort();
  for (const f of files) {
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
    yield { stem, ir, vi, w, h, n, y, i1, count: files.length };
  }
}

/** The rule's image: the visible colours with the luma moved to `yt` (the `luma` head's form). */
export function ruleImage(pair, yt) {
  const { vi, n, y } = pair;
  const data = new Uint8Array(3 * n);
  for (let p = 0; p < n; p++) {
    const d = ((yt[p] - y[p]) / 2) * 255;
    for (let c = 0; c < 3; c++)
      data[3 * p + c] = Math.max(0, Math.min(255, Math.round(vi.data[3 * p + c] + d)));
  }
  return data;
}

/** Adds the metrics of the rule `yt` on one pair to sums[name] (means over `pair.count`). */
export function addRule(sums, name, pair, yt) {
  const { ir, vi, w, h, count } = pair;
  const data = ruleImage(pair, yt);
  const m = M.evaluateFusion(
    { width: w, height: h, channels: 1, data: ir.data },
    { width: w, height: h, channels: 3, data: vi.data },
    { width: w, height: h, channels: 3, data },
  );
  sums[name] ??= {};
  for (const k of ['SF', 'AG', 'VIF', 'Qabf', 'SSIM', 'DeltaE', 'MI'])
    sums[name][k] = (sums[name][k] ?? 0) + (m[k] ?? m[k.toLowerCase()] ?? NaN) / count;
}

/** One line per rule. */
export function printSums(sums) {
  for (const [name, s] of Object.entries(sums))
    console.log(
      name.padEnd(14),
      Object.entries(s)
        .map(([k, v]) => `${k} ${v.toFixed(4)}`)
        .join('  '),
    );
}
