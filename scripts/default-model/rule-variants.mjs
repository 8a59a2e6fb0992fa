#!/usr/bin/env node
/**
 * Target variants applied as rules (F = V + (Y_T' - Y)) with optional detail transfer and
 * sharpening, evaluated on the RoadScene validation pairs (means of SF, AG, VIF, Qabf, SSIM,
 * ΔE, MI): the model card's "rule:" rows of the v5 variants.
 *
 *   node scripts/default-model/rule-variants.mjs '{"name": {"opts": {...}, "vdetail": 0.5, "vnd": 1, "sharpen": 0.15}}'
 */
import { fusionTarget, gaussianBlurPlane } from '../../packages/fusion-head/dist/index.js';
import { addRule, printSums, valPairs } from './rule-eval.mjs';

const variants = JSON.parse(process.argv[2]);
const sums = {};
const ss = (lo, hi, v) => {
  const t = Math.min(1, Math.max(0, (v - lo) / (hi - lo)));
  return t * t * (3 - 2 * t);
};
for await (const pair of valPairs()) {
  const { w, h, n, y, i1 } = pair;
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
    addRule(sums, name, pair, yt);
  }
}
printSums(sums);
