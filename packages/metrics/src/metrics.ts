/**
 * Fusion metrics as the "General Evaluation Metric" toolkit of Tang et al.
 * (Linfeng-Tang/Image-Fusion, MATLAB) defines them. Every function takes 8-bit gray planes
 * (MATLAB's rgb2gray of the inputs, see `toGray`) and works on doubles holding 0..255,
 * except where a toolkit quirk says otherwise (noted at each function).
 */
import { filterReplicate, filterValid, gaussian1d } from './filter';
import { assertSameSize, type Gray8 } from './image';

function toDouble(g: Gray8, scale = 1): Float64Array {
  const out = new Float64Array(g.data.length);
  for (let i = 0; i < out.length; i++) out[i] = g.data[i] * scale;
  return out;
}

function mean(x: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < x.length; i++) s += x[i];
  return s / x.length;
}

/** Shannon entropy (bits) of a 256-bin histogram: MATLAB `entropy` on uint8. */
export function entropy(f: Gray8): number {
  const hist = new Float64Array(256);
  const d = f.data;
  for (let i = 0; i < d.length; i++) hist[d[i]]++;
  return histEntropy(hist, d.length);
}

function histEntropy(hist: Float64Array, total: number): number {
  let e = 0;
  for (let i = 0; i < hist.length; i++) {
    if (hist[i] === 0) continue;
    const p = hist[i] / total;
    e -= p * Math.log2(p);
  }
  return e;
}

/** SD: population standard deviation of the fused image (0..255). */
export function standardDeviation(f: Gray8): number {
  const d = f.data;
  const u = mean(d);
  let s = 0;
  for (let i = 0; i < d.length; i++) {
    const v = d[i] - u;
    s += v * v;
  }
  return Math.sqrt(s / d.length);
}

/** SF: sqrt(RF² + CF²), RF/CF the RMS of the vertical/horizontal first differences. */
export function spatialFrequency(f: Gray8): number {
  const { data: d, width: w, height: h } = f;
  let rf = 0;
  for (let y = 0; y + 1 < h; y++) {
    for (let x = 0; x < w; x++) {
      const v = d[(y + 1) * w + x] - d[y * w + x];
      rf += v * v;
    }
  }
  let cf = 0;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x + 1 < w; x++) {
      const v = d[y * w + x + 1] - d[y * w + x];
      cf += v * v;
    }
  }
  const rfm = h > 1 ? rf / ((h - 1) * w) : Number.NaN;
  const cfm = w > 1 ? cf / (h * (w - 1)) : Number.NaN;
  return Math.sqrt(rfm + cfm);
}

/**
 * AG: MATLAB `gradient` (central differences inside, one-sided at the borders),
 * sum of sqrt((gx² + gy²)/2) over all pixels divided by (rows-1)(cols-1) — the toolkit's
 * normalization, kept as is.
 */
export function averageGradient(f: Gray8): number {
  const { data: d, width: w, height: h } = f;
  let s = 0;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const i = y * w + x;
      let gx = 0;
      if (w > 1)
        gx = x === 0 ? d[i + 1] - d[i] : x === w - 1 ? d[i] - d[i - 1] : (d[i + 1] - d[i - 1]) / 2;
      let gy = 0;
      if (h > 1)
        gy = y === 0 ? d[i + w] - d[i] : y === h - 1 ? d[i] - d[i - w] : (d[i + w] - d[i - w]) / 2;
      s += Math.sqrt((gx * gx + gy * gy) / 2);
    }
  }
  return s / ((h - 1) * (w - 1));
}

/** Joint entropy (bits) of two uint8 images, as the toolkit's Hab.m builds its histogram. */
function jointEntropy(a: Uint8Array, b: Uint8Array): number {
  const counter = new Float64Array(256 * 256);
  for (let i = 0; i < a.length; i++) {
    // Hab.m adds 1 to the uint8 images to get 1-based indices; uint8 saturates, so 254 and
    // 255 share one bin. Kept: it is what the published numbers were computed with.
    const ia = a[i] === 255 ? 254 : a[i];
    const ib = b[i] === 255 ? 254 : b[i];
    counter[ia * 256 + ib]++;
  }
  return histEntropy(counter, a.length);
}

/** MI: MI(F,IR) + MI(F,VIS) in bits, from 256-bin marginal and joint histograms. */
export function mutualInformation(ir: Gray8, vi: Gray8, f: Gray8): number {
  assertSameSize(ir, f, 'MI');
  assertSameSize(vi, f, 'MI');
  const hf = entropy(f);
  const mia = entropy(ir) + hf - jointEntropy(f.data, ir.data);
  const mib = entropy(vi) + hf - jointEntropy(f.data, vi.data);
  return mia + mib;
}

/** MSE of the toolkit: mean of MSE(F,IR) and MSE(F,VIS) on 0..1 images. */
export function meanSquaredError(ir: Gray8, vi: Gray8, f: Gray8): number {
  assertSameSize(ir, f, 'MSE');
  assertSameSize(vi, f, 'MSE');
  let sa = 0;
  let sb = 0;
  const n = f.data.length;
  for (let i = 0; i < n; i++) {
    const va = (f.data[i] - ir.data[i]) / 255;
    const vb = (f.data[i] - vi.data[i]) / 255;
    sa += va * va;
    sb += vb * vb;
  }
  return 0.5 * (sa / n) + 0.5 * (sb / n);
}

/** PSNR of the toolkit: 20·log10(255/sqrt(MSE)) with MSE on 0..1 (its quirk, kept). */
export function psnr(ir: Gray8, vi: Gray8, f: Gray8): number {
  return psnrFromMse(meanSquaredError(ir, vi, f));
}

export function psnrFromMse(mse: number): number {
  return 20 * Math.log10(255 / Math.sqrt(mse));
}

/** Pearson correlation of two planes (MATLAB corr2). */
function corr2(a: ArrayLike<number>, b: ArrayLike<number>): number {
  const ma = mean(a);
  const mb = mean(b);
  let sab = 0;
  let saa = 0;
  let sbb = 0;
  for (let i = 0; i < a.length; i++) {
    const da = a[i] - ma;
    const db = b[i] - mb;
    sab += da * db;
    saa += da * da;
    sbb += db * db;
  }
  return sab / Math.sqrt(saa * sbb);
}

/**
 * CC: mean of r(IR,F) and r(VIS,F). The toolkit's CC_evaluation.m centres VIS on the mean of
 * IR in the numerator of r(VIS,F) (a typo); since F is centred, that term cancels out, so
 * this is the plain correlation.
 */
export function correlationCoefficient(ir: Gray8, vi: Gray8, f: Gray8): number {
  assertSameSize(ir, f, 'CC');
  assertSameSize(vi, f, 'CC');
  return 0.5 * (corr2(ir.data, f.data) + corr2(vi.data, f.data));
}

/** SCD: corr2(F - VIS, IR) + corr2(F - IR, VIS). */
export function scd(ir: Gray8, vi: Gray8, f: Gray8): number {
  assertSameSize(ir, f, 'SCD');
  assertSameSize(vi, f, 'SCD');
  const n = f.data.length;
  const da = new Float64Array(n);
  const db = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    da[i] = f.data[i] - vi.data[i];
    db[i] = f.data[i] - ir.data[i];
  }
  return corr2(da, ir.data) + corr2(db, vi.data);
}

/**
 * Multi-scale pixel-domain VIF (vifp_mscale.m, Sheikh & Bovik): four scales, Gaussian
 * windows of 2^(5-s)+1 taps and sigma N/5, 'valid' filtering, sigma_nsq = 2.
 */
export function vifp(ref: Gray8, dist: Gray8): number {
  assertSameSize(ref, dist, 'VIF');
  return vifMulti([toDouble(ref)], toDouble(dist), ref.width, ref.height)[0];
}

/** VIF of the toolkit: vifp(IR, F) + vifp(VIS, F). */
export function vif(ir: Gray8, vi: Gray8, f: Gray8): number {
  assertSameSize(ir, f, 'VIF');
  assertSameSize(vi, f, 'VIF');
  const [a, b] = vifMulti([toDouble(ir), toDouble(vi)], toDouble(f), f.width, f.height);
  return a + b;
}

function mulPlanes(a: Float64Array, b: Float64Array): Float64Array {
  const out = new Float64Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i] * b[i];
  return out;
}

/** vifp(ref_i, dist) for several references at once, sharing the distorted image's work. */
function vifMulti(refs: Float64Array[], dist: Float64Array, w: number, h: number): number[] {
  const sigmaNsq = 2;
  const num = refs.map(() => 0);
  const den = refs.map(() => 0);
  let rs = refs;
  let d = dist;
  for (let scale = 1; scale <= 4; scale++) {
    const n = 2 ** (4 - scale + 1) + 1;
    const win = gaussian1d(n, n / 5);
    if (scale > 1) {
      const fd = filterValid(d, w, h, win, 2);
      rs = rs.map((r) => filterValid(r, w, h, win, 2).data);
      d = fd.data;
      w = fd.width;
      h = fd.height;
    }
    const mu2 = filterValid(d, w, h, win).data;
    const s22 = filterValid(mulPlanes(d, d), w, h, win).data;
    rs.forEach((r, k) => {
      const mu1 = filterValid(r, w, h, win).data;
      const s11 = filterValid(mulPlanes(r, r), w, h, win).data;
      const s12 = filterValid(mulPlanes(r, d), w, h, win).data;
      let nu = 0;
      let de = 0;
      for (let i = 0; i < mu1.length; i++) {
        let sigma1 = s11[i] - mu1[i] * mu1[i];
        let sigma2 = s22[i] - mu2[i] * mu2[i];
        const sigma12 = s12[i] - mu1[i] * mu2[i];
        if (sigma1 < 0) sigma1 = 0;
        if (sigma2 < 0) sigma2 = 0;
        let g = sigma12 / (sigma1 + 1e-10);
        let sv = sigma2 - g * sigma12;
        if (sigma1 < 1e-10) {
          g = 0;
          sv = sigma2;
          sigma1 = 0;
        }
        if (sigma2 < 1e-10) {
          g = 0;
          sv = 0;
        }
        if (g < 0) {
          sv = sigma2;
          g = 0;
        }
        if (sv <= 1e-10) sv = 1e-10;
        nu += Math.log10(1 + (g * g * sigma1) / (sv + sigmaNsq));
        de += Math.log10(1 + sigma1 / sigmaNsq);
      }
      num[k] += nu;
      den[k] += de;
    });
  }
  return num.map((v, k) => v / den[k]);
}

/**
 * Sobel responses of analysis_Qabf.m: MATLAB conv2(p, h, 'same') (true convolution, zero
 * padding) with h3 = [-1 0 1; -2 0 2; -1 0 1] (x) and h1 = [1 2 1; 0 0 0; -1 -2 -1] (y).
 * Returns strength g and angle a = atan(Sy/Sx) (pi/2 where Sx == 0).
 */
function qabfEdges(p: Float64Array, w: number, h: number): { g: Float64Array; a: Float64Array } {
  const g = new Float64Array(w * h);
  const a = new Float64Array(w * h);
  const at = (y: number, x: number) => (y < 0 || y >= h || x < 0 || x >= w ? 0 : p[y * w + x]);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      // conv2: out(y,x) = sum_k,l h(k,l) p(y-k, x-l), k,l in -1..1 (kernel centre at 0).
      const tl = at(y - 1, x - 1);
      const tc = at(y - 1, x);
      const tr = at(y - 1, x + 1);
      const ml = at(y, x - 1);
      const mr = at(y, x + 1);
      const bl = at(y + 1, x - 1);
      const bc = at(y + 1, x);
      const br = at(y + 1, x + 1);
      // h3 flipped = [1 0 -1; 2 0 -2; 1 0 -1] applied as correlation.
      const sx = tl - tr + 2 * ml - 2 * mr + bl - br;
      // h1 flipped = [-1 -2 -1; 0 0 0; 1 2 1] applied as correlation.
      const sy = -tl - 2 * tc - tr + bl + 2 * bc + br;
      const i = y * w + x;
      g[i] = Math.sqrt(sx * sx + sy * sy);
      a[i] = sx === 0 ? Math.PI / 2 : Math.atan(sy / sx);
    }
  }
  return { g, a };
}

/**
 * Qabf (Xydeas & Petrovic) as analysis_Qabf.m computes it, on 0..255 doubles. Its quirk where
 * gA == gF (relative strength set to gF itself instead of 1) is kept, which makes the value
 * depend on the input scale; the reference values are on 0..255.
 */
export function qabf(ir: Gray8, vi: Gray8, f: Gray8): number {
  assertSameSize(ir, f, 'Qabf');
  assertSameSize(vi, f, 'Qabf');
  const { width: w, height: h } = f;
  const A = qabfEdges(toDouble(ir), w, h);
  const B = qabfEdges(toDouble(vi), w, h);
  const F = qabfEdges(toDouble(f), w, h);
  const Tg = 0.9994;
  const kg = -15;
  const Dg = 0.5;
  const Ta = 0.9879;
  const ka = -22;
  const Da = 0.8;
  const q = (gs: number, as: number, gf: number, af: number) => {
    const G = gs > gf ? gf / gs : gs === gf ? gf : gs / gf;
    const Aa = 1 - Math.abs(as - af) / (Math.PI / 2);
    return (Tg / (1 + Math.exp(kg * (G - Dg)))) * (Ta / (1 + Math.exp(ka * (Aa - Da))));
  };
  let nume = 0;
  let deno = 0;
  for (let i = 0; i < w * h; i++) {
    const gA = A.g[i];
    const gB = B.g[i];
    nume += q(gA, A.a[i], F.g[i], F.a[i]) * gA + q(gB, B.a[i], F.g[i], F.a[i]) * gB;
    deno += gA + gB;
  }
  return nume / deno;
}

/**
 * Sobel of sobel_fn.m: correlation with [-1 0 1; -2 0 2; -1 0 1]/8 (gv) and its transpose
 * (gh) over a mirror extension without edge repeat (per_extn_im_fn.m).
 */
function nabfEdges(p: Float64Array, w: number, h: number): { g: Float64Array; a: Float64Array } {
  const g = new Float64Array(w * h);
  const a = new Float64Array(w * h);
  const rx = (x: number) => (x < 0 ? -x : x >= w ? 2 * w - 2 - x : x);
  const ry = (y: number) => (y < 0 ? -y : y >= h ? 2 * h - 2 - y : y);
  for (let y = 0; y < h; y++) {
    const r0 = ry(y - 1) * w;
    const r1 = y * w;
    const r2 = ry(y + 1) * w;
    for (let x = 0; x < w; x++) {
      const c0 = rx(x - 1);
      const c2 = rx(x + 1);
      const tl = p[r0 + c0];
      const tc = p[r0 + x];
      const tr = p[r0 + c2];
      const ml = p[r1 + c0];
      const mr = p[r1 + c2];
      const bl = p[r2 + c0];
      const bc = p[r2 + x];
      const br = p[r2 + c2];
      const gv = (-tl + tr - 2 * ml + 2 * mr - bl + br) / 8;
      const gh = (-tl - 2 * tc - tr + bl + 2 * bc + br) / 8;
      const i = r1 + x;
      g[i] = Math.sqrt(gh * gh + gv * gv);
      a[i] = gv === 0 && gh === 0 ? 0 : Math.atan(gv / gh);
    }
  }
  return { g, a };
}

/**
 * Nabf as published: the value in the fusion papers' tables and the toolkit's golden
 * values. The toolkit's `analysis_Reference` calls `analysis_nabf(ir, vis, fused)` into a
 * function declared `analysis_nabf(f, I1, I2)`, so the infrared image takes the fused image's
 * place: this is `analysisNabf(ir, vi, f)` on 0..255 doubles. Use it to compare with
 * published numbers; {@link nabfIntended} is the artefact measure the function defines.
 */
export function nabf(ir: Gray8, vi: Gray8, f: Gray8): number {
  assertSameSize(ir, f, 'Nabf');
  assertSameSize(vi, f, 'Nabf');
  return analysisNabf(toDouble(ir), toDouble(vi), toDouble(f), f.width, f.height);
}

/**
 * Nabf with the argument order `analysis_nabf(f, I1, I2)` intends (B. K. Shreyamsha Kumar's
 * modified fusion-artefact measure): the fraction of edge weight where the fused image has
 * an edge stronger than both sources that neither explains. Not comparable with published
 * tables (see {@link nabf}); an average of the sources scores ~0 here.
 */
export function nabfIntended(ir: Gray8, vi: Gray8, f: Gray8): number {
  assertSameSize(ir, f, 'Nabf');
  assertSameSize(vi, f, 'Nabf');
  return analysisNabf(toDouble(f), toDouble(ir), toDouble(vi), f.width, f.height);
}

/**
 * Straight port of the toolkit's analysis_nabf.m(f, I1, I2) on double planes of any scale:
 * `f` the fused image, `i1`/`i2` the sources (their roles are symmetric).
 */
export function analysisNabf(
  f: Float64Array,
  i1: Float64Array,
  i2: Float64Array,
  w: number,
  h: number,
): number {
  const A = nabfEdges(i1, w, h);
  const B = nabfEdges(i2, w, h);
  const F = nabfEdges(f, w, h);
  const Td = 2;
  const wtMin = 0.001;
  const Lg = 1.5;
  const Nrg = 0.9999;
  const kg = 19;
  const sigmag = 0.5;
  const Nra = 0.9995;
  const ka = 22;
  const sigmaa = 0.5;
  const q = (gs: number, as: number, gf: number, af: number) => {
    const G = gs === 0 || gf === 0 ? 0 : gs > gf ? gf / gs : gs / gf;
    const Aa = (Math.abs(Math.abs(as - af) - Math.PI / 2) * 2) / Math.PI;
    const Qg = Nrg / (1 + Math.exp(-kg * (G - sigmag)));
    const Qa = Nra / (1 + Math.exp(-ka * (Aa - sigmaa)));
    return Math.sqrt(Qg * Qa);
  };
  let wtSum = 0;
  let na = 0;
  for (let i = 0; i < w * h; i++) {
    const gA = A.g[i];
    const gB = B.g[i];
    const gF = F.g[i];
    const wtA = gA >= Td ? gA ** Lg : wtMin;
    const wtB = gB >= Td ? gB ** Lg : wtMin;
    wtSum += wtA + wtB;
    if (gF > gA && gF > gB) {
      na += (1 - q(gA, A.a[i], gF, F.a[i])) * wtA + (1 - q(gB, B.a[i], gF, F.a[i])) * wtB;
    }
  }
  return na / wtSum;
}

/**
 * MATLAB `ssim(A, ref)` for double images with the defaults: Gaussian window sigma 1.5
 * (11 taps), replicate padding, K = [0.01 0.03], DynamicRange 1 (the default for double
 * input, here applied to 0..255 values as the reference does), mean of the SSIM map.
 * Written here because npm SSIM packages (ssim.js, image-ssim, @blazediff/ssim) filter
 * 'valid' or by blocks and take the range from a bit depth, so they cannot reproduce
 * MATLAB's replicate-border map.
 */
export function ssimPair(a: Gray8, b: Gray8): number {
  assertSameSize(a, b, 'SSIM');
  return ssimFromPlanes(toDouble(a), toDouble(b), a.width, a.height);
}

const SSIM_WINDOW = gaussian1d(11, 1.5);

function ssimFromPlanes(
  x: Float64Array,
  y: Float64Array,
  w: number,
  h: number,
  muX?: Float64Array,
  sXX?: Float64Array,
): number {
  const n = w * h;
  const C1 = 0.01 ** 2;
  const C2 = 0.03 ** 2;
  const xy = new Float64Array(n);
  const yy = new Float64Array(n);
  let xx: Float64Array | undefined;
  if (!sXX) xx = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    xy[i] = x[i] * y[i];
    yy[i] = y[i] * y[i];
    if (xx) xx[i] = x[i] * x[i];
  }
  const mx = muX ?? filterReplicate(x, w, h, SSIM_WINDOW);
  const my = filterReplicate(y, w, h, SSIM_WINDOW);
  const sxx = sXX ?? filterReplicate(xx!, w, h, SSIM_WINDOW);
  const syy = filterReplicate(yy, w, h, SSIM_WINDOW);
  const sxy = filterReplicate(xy, w, h, SSIM_WINDOW);
  let s = 0;
  for (let i = 0; i < n; i++) {
    const mxy = mx[i] * my[i];
    const mx2 = mx[i] * mx[i];
    const my2 = my[i] * my[i];
    const num = (2 * mxy + C1) * (2 * (sxy[i] - mxy) + C2);
    const den = (mx2 + my2 + C1) * (sxx[i] - mx2 + syy[i] - my2 + C2);
    s += num / den;
  }
  return s / n;
}

/** SSIM of the reference: 0.5·ssim(F, IR) + 0.5·ssim(F, VIS). */
export function ssim(ir: Gray8, vi: Gray8, f: Gray8): number {
  assertSameSize(ir, f, 'SSIM');
  assertSameSize(vi, f, 'SSIM');
  const { width: w, height: h } = f;
  const fd = toDouble(f);
  const ff = new Float64Array(fd.length);
  for (let i = 0; i < fd.length; i++) ff[i] = fd[i] * fd[i];
  const muF = filterReplicate(fd, w, h, SSIM_WINDOW);
  const sFF = filterReplicate(ff, w, h, SSIM_WINDOW);
  return (
    0.5 * ssimFromPlanes(fd, toDouble(ir), w, h, muF, sFF) +
    0.5 * ssimFromPlanes(fd, toDouble(vi), w, h, muF, sFF)
  );
}
