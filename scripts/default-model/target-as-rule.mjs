#!/usr/bin/env node
/**
 * A fusion target applied directly as a rule (F = V + (Y_T - Y(V)) on R, G and B, the `luma`
 * head's output form) to every pair of a folder: what a head trained on that target would
 * approach. For choosing target options before training (`dif-fuse eval` on the output).
 *
 *   node scripts/default-model/target-as-rule.mjs PAIRS_DIR OUT_DIR [salient|max] [JSON options] [--weight]
 */
import { join } from 'node:path';
import { fusionTarget } from '../../packages/fusion-head/dist/index.js';
import { writeImage } from '../../packages/io/dist/index.js';
import { ruleImage, valPairs } from './rule-eval.mjs';

const [pairs, out, kind = 'salient', json = '{}', flag] = process.argv.slice(2);
const withWeight = flag === '--weight'; // also write the infrared weight w as OUT_DIR/weight/*.png
const opts = JSON.parse(json);
for await (const pair of valPairs(pairs)) {
  const { stem, w, h, n, y, i1 } = pair;
  const t = fusionTarget(kind, y, i1, h, w, opts);
  const data = ruleImage(pair, t.intensity);
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
