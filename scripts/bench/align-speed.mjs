#!/usr/bin/env node
/**
 * Rig alignment speed (BENCHMARKS.md, "Rig alignment"): `registerPairs` (what `dif-fuse align`
 * and `--align auto` run) on a real rig pair (640x512 infrared + its ~1500x800 visible crop) and
 * on the same visible image enlarged to 1800x1600, best of --runs; then what applying a saved
 * transform costs: warping the visible image onto the infrared grid (plus the blend), against
 * the time of the fusion itself (the ycbcr-max baseline; the model takes minutes).
 *
 *   node scripts/bench/align-speed.mjs [--runs 3]
 *
 * Needs packages/io built and ../shared/data/roadscene-rig (or $DIF_FUSION_SHARED).
 */
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const io = await import(join(REPO, 'packages/io/dist/index.js'));
const { values: opt } = parseArgs({ options: { runs: { type: 'string', default: '3' } } });
const runs = Number(opt.runs);
const root = join(
  process.env.DIF_FUSION_SHARED ?? join(REPO, '..', 'shared'),
  'data',
  'roadscene-rig',
  'val',
);
const t = JSON.parse(readFileSync(join(root, 'transforms.json'), 'utf8')).FLIR_00548;
const irF = io.imageToFloat(await io.readImage(join(root, 'ir', t.ir), { channels: 1 }));
const visF = io.imageToFloat(await io.readImage(join(root, 'vi', t.vis), { channels: 3 }));

function best(fn) {
  let b = Infinity;
  let out;
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    out = fn();
    b = Math.min(b, performance.now() - t0);
  }
  return { ms: b, out };
}

const pair = { ir: io.toGray(irF), vis: io.toGray(visF) };
const a = best(() => io.registerPairs([pair]));
console.log(
  `register 640x512 + ${visF.width}x${visF.height} (affine): ${(a.ms / 1000).toFixed(2)} s, corner rms vs ground truth ${io.cornerRms(a.out.visToIr, t.vis_to_ir, visF.width, visF.height).toFixed(2)} px`,
);
// the same scene as an 1800x1600 visible frame: enlarged to 1600 rows (bilinear), the middle
// 1800 columns; the ground truth composed with both
const k = 1600 / visF.height;
const wide = io.resizeBilinear(visF, Math.round(visF.width * k), 1600);
const x0 = Math.floor((wide.width - 1800) / 2);
const big = io.cropFloat(wide, x0, 0, 1800, 1600);
const bigPair = { ir: pair.ir, vis: io.toGray(big) };
const gtBig = io.mul3(
  t.vis_to_ir,
  io.mul3(io.inv3(io.pixelScale(wide.width / visF.width, 1600 / visF.height)), [
    1,
    0,
    x0,
    0,
    1,
    0,
    0,
    0,
    1,
  ]),
);
const b = best(() => io.registerPairs([bigPair]));
console.log(
  `register 640x512 + 1800x1600 (affine): ${(b.ms / 1000).toFixed(2)} s, corner rms ${io.cornerRms(b.out.visToIr, gtBig, 1800, 1600).toFixed(2)} px`,
);
const w = best(() => io.warpImage(visF, a.out.visToIr, irF.width, irF.height));
const w2 = best(() => io.warpImage(big, gtBig, irF.width, irF.height));
console.log(
  `apply a saved transform (warp onto 640x512): ${w.ms.toFixed(0)} ms from ${visF.width}x${visF.height}, ${w2.ms.toFixed(0)} ms from 1800x1600`,
);
// the fusion it is added to: ycbcr-max on the warped pair (the model: minutes, see the fuser README)
const vis2 = w.out.image;
const f = best(() => {
  const y = io.rgbToYCbCr(vis2, '-1..1');
  const n = irF.width * irF.height;
  for (let i = 0; i < n; i++) y.data[i] = Math.max(y.data[i], irF.data[i]);
  return io.yCbCrToRgb(y, '-1..1');
});
console.log(`ycbcr-max fusion of the 640x512 pair: ${f.ms.toFixed(0)} ms`);
