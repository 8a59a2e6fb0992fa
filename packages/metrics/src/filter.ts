/**
 * Separable filtering on Float64Array planes (row-major), the two border modes the toolkit
 * uses: MATLAB `filter2(win, x, 'valid')` and `imgaussfilt(..., 'Padding', 'replicate')`.
 * Kernels are symmetric (Gaussians), which halves the multiplications.
 */

/** Normalized 1-D Gaussian of `size` taps; its outer product is MATLAB's fspecial('gaussian'). */
export function gaussian1d(size: number, sigma: number): Float64Array {
  const k = new Float64Array(size);
  const c = (size - 1) / 2;
  let s = 0;
  for (let i = 0; i < size; i++) {
    const x = i - c;
    k[i] = Math.exp(-(x * x) / (2 * sigma * sigma));
    s += k[i];
  }
  for (let i = 0; i < size; i++) k[i] /= s;
  return k;
}

/** One symmetric tap sum at `base` with stride `stride` (kernel length odd). */
function symmetricDot(k: Float64Array, x: Float64Array, base: number, stride: number): number {
  const n = k.length;
  const c = (n - 1) >> 1;
  let s = k[c] * x[base + c * stride];
  for (let t = 0; t < c; t++) s += k[t] * (x[base + t * stride] + x[base + (n - 1 - t) * stride]);
  return s;
}

/**
 * 'valid' correlation with the separable symmetric kernel k⊗k: output (h-n+1) x (w-n+1), or,
 * with `step` 2, only its even rows and columns (MATLAB's `y(1:2:end, 1:2:end)`).
 */
export function filterValid(
  x: Float64Array,
  w: number,
  h: number,
  k: Float64Array,
  step = 1,
): { data: Float64Array; width: number; height: number } {
  const n = k.length;
  const fw = w - n + 1;
  const fh = h - n + 1;
  if (fw <= 0 || fh <= 0) return { data: new Float64Array(0), width: 0, height: 0 };
  const ow = Math.ceil(fw / step);
  const oh = Math.ceil(fh / step);
  const c = (n - 1) >> 1;
  // Horizontal pass over all rows (only the kept columns), then vertical (only kept rows).
  const tmp = new Float64Array(ow * h);
  for (let y = 0; y < h; y++) {
    const row = y * w;
    const orow = y * ow;
    for (let xo = 0; xo < ow; xo++) tmp[orow + xo] = symmetricDot(k, x, row + xo * step, 1);
  }
  const out = new Float64Array(ow * oh);
  for (let yo = 0; yo < oh; yo++) {
    const orow = yo * ow;
    const top = yo * step * ow;
    const kc = k[c];
    const mid = top + c * ow;
    for (let xo = 0; xo < ow; xo++) out[orow + xo] = kc * tmp[mid + xo];
    for (let t = 0; t < c; t++) {
      const kt = k[t];
      const a = top + t * ow;
      const b = top + (n - 1 - t) * ow;
      for (let xo = 0; xo < ow; xo++) out[orow + xo] += kt * (tmp[a + xo] + tmp[b + xo]);
    }
  }
  return { data: out, width: ow, height: oh };
}

/** 'same'-size correlation with the separable symmetric kernel k⊗k, borders replicated. */
export function filterReplicate(
  x: Float64Array,
  w: number,
  h: number,
  k: Float64Array,
): Float64Array {
  const n = k.length;
  const r = (n - 1) >> 1;
  const tmp = new Float64Array(w * h);
  const pad = new Float64Array(w + 2 * r);
  for (let y = 0; y < h; y++) {
    const row = y * w;
    for (let i = 0; i < r; i++) {
      pad[i] = x[row];
      pad[r + w + i] = x[row + w - 1];
    }
    for (let i = 0; i < w; i++) pad[r + i] = x[row + i];
    for (let xo = 0; xo < w; xo++) tmp[row + xo] = symmetricDot(k, pad, xo, 1);
  }
  const out = new Float64Array(w * h);
  const clampRow = (y: number) => (y < 0 ? 0 : y >= h ? h - 1 : y) * w;
  for (let yo = 0; yo < h; yo++) {
    const orow = yo * w;
    const mid = yo * w;
    const kc = k[r];
    for (let xo = 0; xo < w; xo++) out[orow + xo] = kc * tmp[mid + xo];
    for (let t = 0; t < r; t++) {
      const kt = k[t];
      const a = clampRow(yo + t - r);
      const b = clampRow(yo + r - t);
      for (let xo = 0; xo < w; xo++) out[orow + xo] += kt * (tmp[a + xo] + tmp[b + xo]);
    }
  }
  return out;
}
