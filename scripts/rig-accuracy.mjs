#!/usr/bin/env node
/**
 * `--align auto` against the ground truth of the real rig pairs (../shared/data/roadscene-rig,
 * or $DIF_FUSION_SHARED/data/roadscene-rig): for each pair, the RMS distance between where the
 * estimate and the ground truth put the corners of the visible footprint on the infrared grid,
 * the edge correlation before/after, the time, and whether the estimate was refused. Also
 * `--mismatched N`: N pairs of different scenes, which must all be refused. The fuser README
 * quotes the result ("Accuracy on real rig pairs").
 *
 *   node scripts/rig-accuracy.mjs [--split val,train] [--limit N] [--mismatched 20] [--json FILE]
 *
 * Needs packages/io built (pnpm build).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const io = await import(join(REPO, 'packages/io/dist/index.js'));
const { values: opt } = parseArgs({
  options: {
    split: { type: 'string', default: 'val,train' },
    limit: { type: 'string', default: '100000' },
    mismatched: { type: 'string', default: '0' },
    json: { type: 'string' },
  },
});
const shared = process.env.DIF_FUSION_SHARED ?? join(REPO, '..', 'shared');
const root = join(shared, 'data', 'roadscene-rig');

async function load(split, t) {
  const ir = io.imageToFloat(await io.readImage(join(root, split, 'ir', t.ir), { channels: 1 }));
  const vis = io.imageToFloat(await io.readImage(join(root, split, 'vi', t.vis), { channels: 3 }));
  return { ir: io.toGray(ir), vis: io.toGray(vis) };
}

const q = (xs, f) => xs[Math.min(xs.length - 1, Math.floor(f * xs.length))];
const rows = [];
for (const split of opt.split.split(',')) {
  const tf = JSON.parse(readFileSync(join(root, split, 'transforms.json'), 'utf8'));
  const entries = Object.entries(tf).slice(0, Number(opt.limit));
  const errs = [];
  const refused = [];
  let ms = 0;
  for (const [name, t] of entries) {
    const pair = await load(split, t);
    const t0 = performance.now();
    const r = io.registerPairs([pair]);
    const dt = performance.now() - t0;
    ms += dt;
    const rms = io.cornerRms(r.visToIr, t.vis_to_ir, t.vis_size[0], t.vis_size[1]);
    rows.push({
      split,
      name,
      rms,
      before: r.scoreBefore,
      after: r.scoreAfter,
      reliable: r.reliable,
      reason: r.reason,
      ms: dt,
    });
    if (r.reliable) errs.push(rms);
    else refused.push(`${name} (${r.reason})`);
    console.log(
      `${split} ${name} ${t.vis_size.join('x')} rms ${rms.toFixed(2)} px, edges ${r.scoreBefore.toFixed(2)} -> ${r.scoreAfter.toFixed(2)}, ${(dt / 1000).toFixed(1)} s${r.reliable ? '' : ` REFUSED: ${r.reason}`}`,
    );
  }
  errs.sort((a, b) => a - b);
  const n = entries.length;
  console.log(
    `== ${split}: ${n} pairs, ${refused.length} refused; of the ${errs.length} accepted: median ${q(errs, 0.5)?.toFixed(2)} px, p90 ${q(errs, 0.9)?.toFixed(2)} px, <= 1.5 px: ${errs.filter((e) => e <= 1.5).length}, <= 3 px: ${errs.filter((e) => e <= 3).length}, > 10 px (wrong): ${errs.filter((e) => e > 10).length}; mean ${(ms / n / 1000).toFixed(1)} s/pair`,
  );
  if (refused.length) console.log(`   refused: ${refused.join('; ')}`);
}
const nm = Number(opt.mismatched);
if (nm > 0) {
  const tf = Object.entries(JSON.parse(readFileSync(join(root, 'val', 'transforms.json'), 'utf8')));
  let accepted = 0;
  for (let i = 0; i < Math.min(nm, tf.length); i++) {
    const a = tf[i][1];
    const b = tf[(i + 7) % tf.length][1];
    const ir = (await load('val', a)).ir;
    const vis = (await load('val', b)).vis;
    const r = io.registerPairs([{ ir, vis }]);
    if (r.reliable) accepted++;
    console.log(
      `mismatched ${a.ir} + ${b.vis}: ${r.reliable ? 'ACCEPTED' : 'refused'} (edges after ${r.scoreAfter.toFixed(2)})`,
    );
  }
  console.log(`== mismatched: ${accepted} of ${Math.min(nm, tf.length)} wrongly accepted`);
}
if (opt.json) writeFileSync(opt.json, JSON.stringify(rows, null, 1));
