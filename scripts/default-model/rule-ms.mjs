#!/usr/bin/env node
/**
 * Rules that try to lift Qabf above ycbcr-max's without the infrared's sky texture (model card,
 * "Why Qabf stays below ycbcr-max", session 7), evaluated as rule-variants.mjs does (means
 * over the RoadScene validation pairs). Each variant starts from a fusion target (`kind`,
 * `opts`) and then, optionally:
 * - `ms`: a two-scale rebuild, base = blur(Y_T, sigma) plus a detail layer chosen per pixel
 *   (`mode` maxabs: visible or infrared detail, larger magnitude; maxabs3: also the target's
 *   own; soft: magnitude-weighted; add: the target's detail plus the gated infrared detail);
 *   the infrared detail is kept out of smooth, well-exposed regions unless `ugate` false;
 * - `vf`: the visible detail added where the infrared is on top and itself flat;
 * - `gd`: a gradient-domain rebuild: per pixel the largest of the candidate gradients (target,
 *   visible, gated infrared), integrated back by a screened Poisson solve (conjugate
 *   gradients) anchored to the target with weight `lam`.
 *
 *   node scripts/default-model/rule-ms.mjs '{"name": {"opts": {"ir_floor": 1}, "gd": {"lam": 0.05}}}'
 */
import {
  fusionTarget,
  gaussianBlurPlane,
  sobelMagnitudePlane,
} from '../../packages/fusion-head/dist/index.js';
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
    let yt = t.intensity.slice();
    if (v.ms) {
      const sig = v.ms.sigma ?? 2;
      const o = { dark_low: 0.12, dark_high: 0.4, ...(v.opts ?? {}) };
      const my = gaussianBlurPlane(y, h, w, 8);
      const den = gaussianBlurPlane(i1, h, w, 1);
      const id = new Float32Array(n),
        dark = new Float32Array(n);
      for (let p = 0; p < n; p++) {
        dark[p] = 1 - ss(o.dark_low, o.dark_high, (my[p] + 1) / 2);
        id[p] = i1[p] + dark[p] * (den[p] - i1[p]);
      }
      const base = gaussianBlurPlane(yt, h, w, sig);
      const by = gaussianBlurPlane(y, h, w, sig),
        bi = gaussianBlurPlane(id, h, w, sig);
      const sy = sobelMagnitudePlane(y, h, w);
      const tex = gaussianBlurPlane(sy, h, w, 4);
      const out = new Float32Array(n);
      for (let p = 0; p < n; p++) {
        const dv = y[p] - by[p];
        let di = id[p] - bi[p];
        // texture / smooth-bright gating of the infrared detail
        let u =
          1 -
          (1 - dark[p]) * (1 - ss(v.ms.smooth_low ?? 0.1, v.ms.smooth_high ?? 0.25, tex[p] / 2));
        if (v.ms.ugate === false) u = 1;
        di *= (v.ms.ik ?? 1) * u;
        const dt = yt[p] - base[p]; // the salient target's own detail
        let d;
        if (v.ms.mode === 'maxabs') d = Math.abs(dv) >= Math.abs(di) ? dv : di;
        else if (v.ms.mode === 'maxabs3') {
          d = dt;
          if (Math.abs(dv) > Math.abs(d)) d = dv;
          if (Math.abs(di) > Math.abs(d)) d = di;
        } else if (v.ms.mode === 'soft') {
          const a = Math.abs(dv),
            b = Math.abs(di);
          const wv = (a * a) / (a * a + b * b + 1e-8);
          d = wv * dv + (1 - wv) * di;
        } else if (v.ms.mode === 'add') {
          const a = Math.abs(dv),
            b = Math.abs(di);
          const dom = v.ms.dom ? ss(0, v.ms.dom, (b - a) / (b + a + 1e-6)) : 1;
          d = dt + dom * di;
        } else d = dt;
        out[p] = base[p] + d;
      }
      yt = out;
    }
    if (v.vf) {
      const g = v.vf;
      const sig = g.sigma ?? 2;
      const by = gaussianBlurPlane(y, h, w, sig);
      const si = gaussianBlurPlane(sobelMagnitudePlane(i1, h, w), h, w, g.fs ?? 1);
      const sy2 = gaussianBlurPlane(sobelMagnitudePlane(y, h, w), h, w, g.fs ?? 1);
      for (let p = 0; p < n; p++) {
        const over = ss(-(g.ov ?? 0.02), g.ov ?? 0.02, i1[p] - y[p]);
        const flat = 1 - ss(g.lo ?? 0.05, g.hi ?? 0.2, si[p] / 2);
        const rel = g.rel ? ss(0, 1, (sy2[p] - si[p]) / (sy2[p] + si[p] + 1e-6)) : 1;
        yt[p] += (g.k ?? 0.5) * over * flat * rel * (y[p] - by[p]);
      }
    }
    if (v.gd) yt = gradientDomain(y, i1, yt, h, w, v.gd, v.opts ?? {});
    if (v.sharpen) {
      const b = gaussianBlurPlane(yt, h, w, v.ssigma ?? 1);
      for (let p = 0; p < n; p++) yt[p] += v.sharpen * (yt[p] - b[p]);
    }
    addRule(sums, name, pair, yt);
  }
}
printSums(sums);

function gradientDomain(y, i1, yt, h, w, g, opts) {
  const n = h * w;
  const o = { dark_low: 0.12, dark_high: 0.4, ...opts };
  const my = gaussianBlurPlane(y, h, w, 8);
  const den = gaussianBlurPlane(i1, h, w, 1);
  const id = new Float32Array(n),
    dark = new Float32Array(n);
  for (let p = 0; p < n; p++) {
    dark[p] = 1 - ss(o.dark_low, o.dark_high, (my[p] + 1) / 2);
    id[p] = i1[p] + dark[p] * (den[p] - i1[p]);
  }
  const sy = sobelMagnitudePlane(y, h, w);
  const tex = gaussianBlurPlane(sy, h, w, 4);
  const u = new Float32Array(n);
  for (let p = 0; p < n; p++)
    u[p] =
      g.ugate === false
        ? 1
        : 1 - (1 - dark[p]) * (1 - ss(g.smooth_low ?? 0.1, g.smooth_high ?? 0.25, tex[p] / 2));
  // forward differences; candidates: target's own, visible, gated infrared
  const gx = new Float32Array(n),
    gy = new Float32Array(n);
  const cands = g.cands ?? ['t', 'y', 'i'];
  for (let r = 0; r < h; r++)
    for (let c = 0; c < w; c++) {
      const p = r * w + c;
      let bx = 0,
        by = 0,
        bm = -1;
      for (const k of cands) {
        const src = k === 't' ? yt : k === 'y' ? y : id;
        const s = k === 'i' ? (g.hard ? (u[p] > g.hard ? (g.ik ?? 1) : 0) : u[p] * (g.ik ?? 1)) : 1;
        const dx = c + 1 < w ? s * (src[p + 1] - src[p]) : 0;
        const dy = r + 1 < h ? s * (src[p + w] - src[p]) : 0;
        const m = dx * dx + dy * dy;
        if (m > bm) {
          bm = m;
          bx = dx;
          by = dy;
        }
      }
      gx[p] = bx;
      gy[p] = by;
    }
  // solve (lam - Lap) F = lam T - div G with CG (Neumann boundary)
  const lam = g.lam ?? 0.05;
  const b = new Float32Array(n);
  for (let r = 0; r < h; r++)
    for (let c = 0; c < w; c++) {
      const p = r * w + c;
      let div = gx[p] + gy[p];
      if (c > 0) div -= gx[p - 1];
      if (r > 0) div -= gy[p - w];
      b[p] = lam * yt[p] - div;
    }
  const A = (x, out) => {
    for (let r = 0; r < h; r++)
      for (let c = 0; c < w; c++) {
        const p = r * w + c;
        let s = lam * x[p];
        if (c > 0) s += x[p] - x[p - 1];
        if (c + 1 < w) s += x[p] - x[p + 1];
        if (r > 0) s += x[p] - x[p - w];
        if (r + 1 < h) s += x[p] - x[p + w];
        out[p] = s;
      }
  };
  const x = Float64Array.from(yt),
    rr = new Float64Array(n),
    pp = new Float64Array(n),
    Ap = new Float64Array(n);
  A(x, Ap);
  for (let p = 0; p < n; p++) {
    rr[p] = b[p] - Ap[p];
    pp[p] = rr[p];
  }
  let rs = 0;
  for (let p = 0; p < n; p++) rs += rr[p] * rr[p];
  for (let it = 0; it < (g.iters ?? 300); it++) {
    A(pp, Ap);
    let pAp = 0;
    for (let p = 0; p < n; p++) pAp += pp[p] * Ap[p];
    const a = rs / pAp;
    let rs2 = 0;
    for (let p = 0; p < n; p++) {
      x[p] += a * pp[p];
      rr[p] -= a * Ap[p];
      rs2 += rr[p] * rr[p];
    }
    if (rs2 < 1e-10 * n) break;
    const be = rs2 / rs;
    rs = rs2;
    for (let p = 0; p < n; p++) pp[p] = rr[p] + be * pp[p];
  }
  return Float32Array.from(x);
}
