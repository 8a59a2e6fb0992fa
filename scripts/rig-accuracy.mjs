#!/usr/bin/env node
/**
 * `--align auto` against the ground truth of the real rig pairs (../shared/data/roadscene-rig,
 * or $DIF_FUSION_SHARED/data/roadscene-rig): for each pair, the RMS distance between where the
 * estimate and the ground truth put the corners of the visible footprint on the infrared grid,
 * the edge correlation before/after, the time, and whether the estimate was refused. Also
 * `--mismatched N`: N pairs of different scenes, which must all be refused. The fuser README
 * quotes the result ("Accuracy on real rig pairs").
 *
 * `--chain`: the ground truth re-measured link by link. It was built as
 *   rig visible -> RoadScene's registered visible (the crop's scale, S)
 *               -> RoadScene's registered infrared (taken as identical grids)
 *               -> raw infrared frame (ECC, A),
 * so each link is measured here from the same starting point with the project's ECC:
 * T1 (rig visible onto registered visible, same camera), T2 (registered infrared onto the raw
 * frame, same camera) and T3 (registered visible onto registered infrared: RoadScene's own
 * registration, across modalities). It prints each link's disagreement with the ground truth's
 * assumption at the corners (infrared pixels) and the estimate's error against the ground truth,
 * against the ground truth with the same-camera links re-measured (T2 . T1: RoadScene's
 * registration still taken as exact) and against the whole re-measured chain (T2 . T3 . T1).
 * Needs ../shared/data/roadscene beside roadscene-rig.
 *
 * `--features FILE` (scripts/rig-groundtruth-features.json): features matched by hand between
 * the two images of a pair (no gradients or ECC); how far the ground truth and the estimate put
 * each visible feature from its infrared position along the measured axis, and the 1-D line
 * (ir = a * gt + b) through them: 1/a - 1 is the ground truth's scale error there (the same
 * for the estimate).
 *
 * `--local`: a check of the ground truth itself against the image content. In four patches of
 * the visible footprint (140x110 px, 30% of the way from each corner to the centre) the shift
 * on the infrared grid that best aligns the two edge maps, starting from the ground truth
 * (+-5 px, 0.25 px steps). Where that local alignment is confident (edge correlation >= 0.6)
 * it says how far the ground truth (shift 0) and the estimate are from what the images show.
 *
 *   node scripts/rig-accuracy.mjs [--split val,train] [--limit N] [--stride K] [--local]
 *                                 [--chain] [--features FILE] [--mismatched 20] [--json FILE]
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
    stride: { type: 'string', default: '1' },
    local: { type: 'boolean', default: false },
    chain: { type: 'boolean', default: false },
    features: { type: 'string' },
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
const apply = (m, x, y) => {
  const d = m[6] * x + m[7] * y + m[8];
  return [(m[0] * x + m[1] * y + m[2]) / d, (m[3] * x + m[4] * y + m[5]) / d];
};

/**
 * The local check (--local): per corner patch, the best shift of the visible edges (warped by
 * the ground truth) on the infrared grid, its correlation, and where the estimate puts the
 * patch centre relative to the ground truth.
 */
function localCheck(pair, gt, est) {
  const s = Math.sqrt(Math.abs(gt[0] * gt[4] - gt[1] * gt[3]));
  const vw = Math.round(pair.vis.width * s);
  const vh = Math.round(pair.vis.height * s);
  const visE = io.edgeFeature(io.resizeArea(pair.vis, vw, vh), 1).data;
  const irE = io.edgeFeature(pair.ir, 1).data;
  const W = pair.ir.width;
  const H = pair.ir.height;
  const back = io.inv3(
    io.mul3(gt, io.inv3(io.pixelScale(vw / pair.vis.width, vh / pair.vis.height))),
  );
  const [w, h] = [pair.vis.width, pair.vis.height];
  const ctr = apply(gt, (w - 1) / 2, (h - 1) / 2);
  const out = [];
  for (const [cx, cy] of io.imageCorners(w, h)) {
    const c = apply(gt, cx, cy);
    const px = c[0] + 0.3 * (ctr[0] - c[0]);
    const py = c[1] + 0.3 * (ctr[1] - c[1]);
    const x0 = Math.max(2, Math.round(px - 70));
    const x1 = Math.min(W - 3, Math.round(px + 70));
    const y0 = Math.max(2, Math.round(py - 55));
    const y1 = Math.min(H - 3, Math.round(py + 55));
    let best = { r: -2, dx: 0, dy: 0 };
    for (let dy = -5; dy <= 5; dy += 0.25)
      for (let dx = -5; dx <= 5; dx += 0.25) {
        let n = 0,
          sI = 0,
          sT = 0,
          sII = 0,
          sTT = 0,
          sIT = 0;
        for (let y = y0; y < y1; y++)
          for (let x = x0; x < x1; x++) {
            const [u, v] = apply(back, x - dx, y - dy);
            if (!(u >= 0 && v >= 0 && u < vw - 1 && v < vh - 1)) continue;
            const xi = u | 0,
              yi = v | 0,
              fx = u - xi,
              fy = v - yi,
              i = yi * vw + xi;
            const I =
              (1 - fx) * (1 - fy) * visE[i] +
              fx * (1 - fy) * visE[i + 1] +
              (1 - fx) * fy * visE[i + vw] +
              fx * fy * visE[i + vw + 1];
            const T = irE[y * W + x];
            n++;
            sI += I;
            sT += T;
            sII += I * I;
            sTT += T * T;
            sIT += I * T;
          }
        if (n < 2000) continue;
        const r = (sIT - (sI * sT) / n) / Math.sqrt((sII - (sI * sI) / n) * (sTT - (sT * sT) / n));
        if (r > best.r) best = { r, dx, dy };
      }
    const [vx, vy] = apply(io.inv3(gt), px, py);
    const e = apply(est, vx, vy);
    out.push({
      ...best,
      gt: Math.hypot(best.dx, best.dy),
      est: Math.hypot(best.dx - (e[0] - px), best.dy - (e[1] - py)),
    });
  }
  return out;
}
/** Signed corner offsets a - b (infrared px, optionally through `to`) of a w x h footprint. */
const cornerOffsets = (a, b, w, h, to = [1, 0, 0, 0, 1, 0, 0, 0, 1]) =>
  io.imageCorners(w, h).map(([x, y]) => {
    const p = apply(io.mul3(to, a), x, y);
    const q = apply(io.mul3(to, b), x, y);
    return [p[0] - q[0], p[1] - q[1]];
  });
const rmsOf = (e) => Math.sqrt(e.reduce((s, [x, y]) => s + x * x + y * y, 0) / e.length);

/** The --chain check: each link of the ground truth re-measured (see the header). */
async function chainCheck(split, name, pair, t, est) {
  const reg = join(shared, 'data', 'roadscene', split);
  const regIr = io.toGray(
    io.imageToFloat(await io.readImage(join(reg, 'ir', `${name}.jpg`), { channels: 1 })),
  );
  const regVis = io.toGray(
    io.imageToFloat(await io.readImage(join(reg, 'vi', `${name}.jpg`), { channels: 3 })),
  );
  const [w, h] = t.vis_size;
  const S = io.pixelScale(regVis.width / w, regVis.height / h);
  const A = io.mul3(t.vis_to_ir, io.inv3(S));
  const t1 = io.refineTransform([{ ir: regVis, vis: pair.vis }], S, 'affine', 128).m;
  const t2 = io.refineTransform([{ ir: pair.ir, vis: regIr }], A, 'affine', 128).m;
  const t3 = io.refineTransform([{ ir: regIr, vis: regVis }], io.pixelScale(1), 'affine', 128).m;
  const sameCamera = io.mul3(t2, t1);
  const chain = io.mul3(t2, io.mul3(t3, t1));
  const r = (m) => Number(io.cornerRms(est, m, w, h).toFixed(2));
  const off = (e) => e.map(([x, y]) => [Number(x.toFixed(2)), Number(y.toFixed(2))]);
  return {
    // each link's disagreement with what the ground truth assumed, at the corners, IR px
    t1: off(cornerOffsets(t1, S, w, h, A)),
    t2: off(cornerOffsets(t2, A, regIr.width, regIr.height)),
    t3: off(cornerOffsets(t3, io.pixelScale(1), regIr.width, regIr.height, A)),
    gtVsChain: Number(io.cornerRms(t.vis_to_ir, chain, w, h).toFixed(2)),
    estVsGt: r(t.vis_to_ir),
    estVsSameCamera: r(sameCamera),
    estVsChain: r(chain),
  };
}

if (opt.features) {
  const spec = JSON.parse(readFileSync(opt.features, 'utf8'));
  for (const p of spec.pairs) {
    const t = JSON.parse(readFileSync(join(root, p.split, 'transforms.json'), 'utf8'))[p.name];
    const r = io.registerPairs([await load(p.split, t)]);
    const k = p.axis === 'y' ? 1 : 0;
    const err = (m) => p.features.map((f) => apply(m, f.vis[0], f.vis[1])[k] - f.ir[k]);
    const rms = (e) => Math.sqrt(e.reduce((s, v) => s + v * v, 0) / e.length);
    const say = (label, e) =>
      `${label}: mean ${(e.reduce((s, v) => s + v, 0) / e.length).toFixed(2)}, RMS ${rms(e).toFixed(2)} px, within 1 px: ${e.filter((v) => Math.abs(v) <= 1).length}`;
    // least squares ir = a * (where a transform puts the feature) + b: 1/a - 1 is its scale error
    const y = p.features.map((f) => f.ir[k]);
    const my = y.reduce((s, v) => s + v, 0) / y.length;
    const slope = (m) => {
      const g = p.features.map((f) => apply(m, f.vis[0], f.vis[1])[k]);
      const mg = g.reduce((s, v) => s + v, 0) / g.length;
      return (
        g.reduce((s, v, i) => s + (v - mg) * (y[i] - my), 0) /
        g.reduce((s, v) => s + (v - mg) ** 2, 0)
      );
    };
    const wide = (a) =>
      `${(Math.abs(1 / a - 1) * 100).toFixed(2)}% too ${a < 1 ? 'wide' : 'narrow'}`;
    console.log(
      `features ${p.split} ${p.name}, ${y.length} matched by hand along ${p.axis} (infrared rows ${p.rows.join('-')}): ground truth ${say('', err(t.vis_to_ir)).slice(2)}, ${wide(slope(t.vis_to_ir))}; estimate ${say('', err(r.visToIr)).slice(2)}, ${wide(slope(r.visToIr))}`,
    );
    console.log(
      `   per feature (infrared x: ground truth / estimate error): ${p.features.map((f, i) => `${f.ir[k].toFixed(0)}: ${err(t.vis_to_ir)[i].toFixed(1)}/${err(r.visToIr)[i].toFixed(1)}`).join(', ')}`,
    );
  }
}

const rows = [];
const chains = [];
for (const split of opt.features ? [] : opt.split.split(',')) {
  const tf = JSON.parse(readFileSync(join(root, split, 'transforms.json'), 'utf8'));
  const entries = Object.entries(tf)
    .filter((_, i) => i % Number(opt.stride) === 0)
    .slice(0, Number(opt.limit));
  const errs = [];
  const patches = [];
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
      visToIr: r.visToIr,
      gt: t.vis_to_ir,
      size: t.vis_size,
      before: r.scoreBefore,
      after: r.scoreAfter,
      reliable: r.reliable,
      reason: r.reason,
      ms: dt,
    });
    if (r.reliable) errs.push(rms);
    else refused.push(`${name} (${r.reason})`);
    let local = '';
    if (opt.local && r.reliable) {
      const ps = localCheck(pair, t.vis_to_ir, r.visToIr).filter((p) => p.r >= 0.6);
      patches.push(...ps);
      rows[rows.length - 1].local = ps;
      if (ps.length)
        local = `; ${ps.length} confident patches: content vs ground truth ${ps.map((p) => p.gt.toFixed(1)).join('/')} px, vs estimate ${ps.map((p) => p.est.toFixed(1)).join('/')} px`;
    }
    if (opt.chain && r.reliable) {
      const c = await chainCheck(split, name, pair, t, r.visToIr);
      rows[rows.length - 1].chain = c;
      chains.push({ split, name, ...c });
      local += `; chain: links T1 ${rmsOf(c.t1).toFixed(2)} / T2 ${rmsOf(c.t2).toFixed(2)} / T3 ${rmsOf(c.t3).toFixed(2)} px; estimate vs ground truth ${c.estVsGt}, vs same-camera links re-measured ${c.estVsSameCamera}, vs whole chain re-measured ${c.estVsChain} px`;
    }
    console.log(
      `${split} ${name} ${t.vis_size.join('x')} rms ${rms.toFixed(2)} px, edges ${r.scoreBefore.toFixed(2)} -> ${r.scoreAfter.toFixed(2)}, ${(dt / 1000).toFixed(1)} s${r.reliable ? '' : ` REFUSED: ${r.reason}`}${local}`,
    );
  }
  errs.sort((a, b) => a - b);
  const n = entries.length;
  console.log(
    `== ${split}: ${n} pairs, ${refused.length} refused; of the ${errs.length} accepted: median ${q(errs, 0.5)?.toFixed(2)} px, p90 ${q(errs, 0.9)?.toFixed(2)} px, <= 1.5 px: ${errs.filter((e) => e <= 1.5).length}, <= 3 px: ${errs.filter((e) => e <= 3).length}, > 10 px (wrong): ${errs.filter((e) => e > 10).length}; mean ${(ms / n / 1000).toFixed(1)} s/pair`,
  );
  if (refused.length) console.log(`   refused: ${refused.join('; ')}`);
  const cs = chains.filter((c) => c.split === split);
  if (cs.length) {
    const med = (f) =>
      q(
        cs.map(f).sort((a, b) => a - b),
        0.5,
      ).toFixed(2);
    const p90 = (f) =>
      q(
        cs.map(f).sort((a, b) => a - b),
        0.9,
      ).toFixed(2);
    const within = (f) => cs.filter((c) => f(c) <= 1.5).length;
    const mean = (k, i, j) => (cs.reduce((s, c) => s + c[k][i][j], 0) / cs.length).toFixed(2);
    const corners = (k) =>
      ['TL', 'TR', 'BR', 'BL'].map((n, i) => `${n} (${mean(k, i, 0)}, ${mean(k, i, 1)})`).join(' ');
    console.log(
      `   chain, ${cs.length} accepted pairs: mean signed corner offsets (IR px) T1 ${corners('t1')}; T2 ${corners('t2')}; T3 ${corners('t3')}; link RMS medians T1 ${med((c) => rmsOf(c.t1))}, T2 ${med((c) => rmsOf(c.t2))}, T3 ${med((c) => rmsOf(c.t3))} px`,
    );
    for (const [label, f] of [
      ['ground truth', (c) => c.estVsGt],
      ['ground truth, same-camera links re-measured', (c) => c.estVsSameCamera],
      ['whole chain re-measured', (c) => c.estVsChain],
    ])
      console.log(
        `   estimate vs ${label}: median ${med(f)} px, p90 ${p90(f)} px, <= 1.5 px: ${within(f)}`,
      );
  }
  if (opt.local && patches.length) {
    const g = patches.map((p) => p.gt).sort((a, b) => a - b);
    const e = patches.map((p) => p.est).sort((a, b) => a - b);
    console.log(
      `   local check, ${patches.length} confident patches: the image content is a median ${q(g, 0.5).toFixed(2)} px (p90 ${q(g, 0.9).toFixed(2)}) from the ground truth, ${q(e, 0.5).toFixed(2)} px (p90 ${q(e, 0.9).toFixed(2)}) from the estimate; within 1.5 px: ground truth ${g.filter((v) => v <= 1.5).length}, estimate ${e.filter((v) => v <= 1.5).length}`,
    );
  }
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
