/** Radix-2 complex FFT (in place, split real/imaginary arrays) and its 2-D form. */

const tables = new Map<number, { cos: Float64Array; sin: Float64Array; rev: Uint32Array }>();

function table(n: number) {
  let t = tables.get(n);
  if (!t) {
    const cos = new Float64Array(n / 2);
    const sin = new Float64Array(n / 2);
    for (let i = 0; i < n / 2; i++) {
      cos[i] = Math.cos((2 * Math.PI * i) / n);
      sin[i] = Math.sin((2 * Math.PI * i) / n);
    }
    const rev = new Uint32Array(n);
    const bits = Math.log2(n);
    for (let i = 0; i < n; i++) {
      let r = 0;
      for (let b = 0; b < bits; b++) r |= ((i >> b) & 1) << (bits - 1 - b);
      rev[i] = r;
    }
    t = { cos, sin, rev };
    tables.set(n, t);
  }
  return t;
}

export function nextPow2(n: number): number {
  let p = 1;
  while (p < n) p *= 2;
  return p;
}

/**
 * In-place FFT of length n (a power of two) over re/im at `offset` with `stride`;
 * `inverse` uses +i and scales by 1/n.
 */
export function fft1(
  re: Float64Array,
  im: Float64Array,
  n: number,
  offset: number,
  stride: number,
  inverse: boolean,
  bufRe: Float64Array,
  bufIm: Float64Array,
): void {
  const { cos, sin, rev } = table(n);
  for (let i = 0; i < n; i++) {
    const j = offset + rev[i] * stride;
    bufRe[i] = re[j];
    bufIm[i] = im[j];
  }
  const sgn = inverse ? 1 : -1;
  for (let size = 2; size <= n; size *= 2) {
    const half = size / 2;
    const step = n / size;
    for (let start = 0; start < n; start += size) {
      for (let k = 0; k < half; k++) {
        const wr = cos[k * step];
        const wi = sgn * sin[k * step];
        const a = start + k;
        const b = a + half;
        const tr = bufRe[b] * wr - bufIm[b] * wi;
        const ti = bufRe[b] * wi + bufIm[b] * wr;
        bufRe[b] = bufRe[a] - tr;
        bufIm[b] = bufIm[a] - ti;
        bufRe[a] += tr;
        bufIm[a] += ti;
      }
    }
  }
  const s = inverse ? 1 / n : 1;
  for (let i = 0; i < n; i++) {
    const j = offset + i * stride;
    re[j] = bufRe[i] * s;
    im[j] = bufIm[i] * s;
  }
}

/** In-place 2-D FFT of a w x h (powers of two) complex array, row-major. */
export function fft2(re: Float64Array, im: Float64Array, w: number, h: number, inverse = false) {
  const n = Math.max(w, h);
  const bR = new Float64Array(n);
  const bI = new Float64Array(n);
  for (let y = 0; y < h; y++) fft1(re, im, w, y * w, 1, inverse, bR, bI);
  for (let x = 0; x < w; x++) fft1(re, im, h, x, w, inverse, bR, bI);
}
