/**
 * A small loss-curve plotter drawing straight into an RGB buffer (no canvas, no SVG
 * renderer): light grid, axes with numeric labels (tiny built-in 3x5 digit font), the
 * raw loss in light blue and its moving average in dark blue. Log-scale y when the
 * values span more than a decade.
 */

export interface RgbImage {
  width: number;
  height: number;
  /** Interleaved RGB, row-major. */
  data: Uint8Array;
}

// 3x5 glyphs, rows top to bottom, 3 bits each (MSB = left).
const GLYPHS: Record<string, number[]> = {
  '0': [7, 5, 5, 5, 7],
  '1': [2, 6, 2, 2, 7],
  '2': [7, 1, 7, 4, 7],
  '3': [7, 1, 7, 1, 7],
  '4': [5, 5, 7, 1, 1],
  '5': [7, 4, 7, 1, 7],
  '6': [7, 4, 7, 5, 7],
  '7': [7, 1, 1, 1, 1],
  '8': [7, 5, 7, 5, 7],
  '9': [7, 5, 7, 1, 7],
  '.': [0, 0, 0, 0, 2],
  '-': [0, 0, 7, 0, 0],
  e: [0, 7, 7, 4, 7],
  k: [4, 5, 6, 5, 5],
  M: [5, 7, 7, 5, 5],
  // Capitals of the sample grids' labels.
  A: [2, 5, 7, 5, 5],
  B: [6, 5, 6, 5, 6],
  E: [7, 4, 6, 4, 7],
  G: [7, 4, 5, 5, 7],
  I: [7, 2, 2, 2, 7],
  L: [4, 4, 4, 4, 7],
  R: [6, 5, 6, 5, 5],
  ' ': [0, 0, 0, 0, 0],
};

export class Canvas implements RgbImage {
  readonly data: Uint8Array;
  constructor(
    readonly width: number,
    readonly height: number,
  ) {
    this.data = new Uint8Array(width * height * 3).fill(255);
  }
  set(x: number, y: number, c: readonly number[], alpha = 1): void {
    x = Math.round(x);
    y = Math.round(y);
    if (x < 0 || y < 0 || x >= this.width || y >= this.height) return;
    const i = (y * this.width + x) * 3;
    for (let k = 0; k < 3; k++)
      this.data[i + k] = Math.round(this.data[i + k] * (1 - alpha) + c[k] * alpha);
  }
  line(x0: number, y0: number, x1: number, y1: number, c: readonly number[], alpha = 1): void {
    const n = Math.max(1, Math.ceil(Math.max(Math.abs(x1 - x0), Math.abs(y1 - y0))));
    for (let i = 0; i <= n; i++)
      this.set(x0 + ((x1 - x0) * i) / n, y0 + ((y1 - y0) * i) / n, c, alpha);
  }
  text(x: number, y: number, s: string, c: readonly number[], scale = 2): void {
    let cx = x;
    for (const ch of s) {
      const g = GLYPHS[ch];
      if (g)
        for (let r = 0; r < 5; r++)
          for (let b = 0; b < 3; b++)
            if (g[r] & (4 >> b))
              for (let dy = 0; dy < scale; dy++)
                for (let dx = 0; dx < scale; dx++)
                  this.set(cx + b * scale + dx, y + r * scale + dy, c);
      cx += 4 * scale;
    }
  }
}

/** Text width in pixels of {@link Canvas.text}. */
export const textWidth = (s: string, scale = 2) => s.length * 4 * scale - scale;

function fmt(v: number): string {
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a >= 1e6) return `${+(v / 1e6).toPrecision(3)}M`;
  if (a >= 1e4) return `${+(v / 1e3).toPrecision(3)}k`;
  if (a >= 0.01) return String(+v.toPrecision(3));
  return v.toExponential(1).replace('e-', 'e-').replace('+', '');
}

function niceTicks(lo: number, hi: number, n: number): number[] {
  const span = hi - lo || 1;
  const raw = span / n;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + 1e-12 * span; v += step)
    out.push(+v.toPrecision(12));
  return out;
}

/**
 * Plot loss against step. `points` need not be sorted. Returns an RGB image
 * (default 800 x 400).
 */
export function plotLossCurve(
  points: ReadonlyArray<{ step: number; loss: number }>,
  options: { width?: number; height?: number; smooth?: number } = {},
): RgbImage {
  const W = options.width ?? 800;
  const H = options.height ?? 400;
  const cv = new Canvas(W, H);
  const pts = points.filter((p) => Number.isFinite(p.loss)).sort((a, b) => a.step - b.step);
  const left = 70;
  const right = W - 20;
  const top = 20;
  const bottom = H - 40;
  const axis = [60, 60, 60];
  const grid = [225, 225, 225];
  if (pts.length === 0) {
    cv.line(left, bottom, right, bottom, axis);
    cv.line(left, top, left, bottom, axis);
    return cv;
  }
  const x0 = pts[0].step;
  const x1 = Math.max(pts[pts.length - 1].step, x0 + 1);
  let ymin = Math.min(...pts.map((p) => p.loss));
  let ymax = Math.max(...pts.map((p) => p.loss));
  const logY = ymin > 0 && ymax / ymin > 10;
  const ty = (v: number) => (logY ? Math.log10(v) : v);
  let lo = ty(ymin);
  let hi = ty(ymax);
  if (hi - lo < 1e-12) {
    lo -= 0.5 * (Math.abs(lo) || 1);
    hi += 0.5 * (Math.abs(hi) || 1);
  }
  const pad = (hi - lo) * 0.05;
  lo -= pad;
  hi += pad;
  ymin = lo;
  ymax = hi;
  const sx = (s: number) => left + ((s - x0) / (x1 - x0)) * (right - left);
  const sy = (v: number) => bottom - ((ty(v) - ymin) / (ymax - ymin)) * (bottom - top);

  // Grid + labels.
  const yTicks = logY
    ? Array.from(
        { length: Math.floor(ymax) - Math.ceil(ymin) + 1 },
        (_, i) => 10 ** (Math.ceil(ymin) + i),
      )
    : niceTicks(ymin, ymax, 6);
  for (const v of yTicks) {
    const y = sy(v);
    if (y < top - 1 || y > bottom + 1) continue;
    cv.line(left, y, right, y, grid);
    const s = fmt(v);
    cv.text(left - 8 - textWidth(s), y - 5, s, axis);
  }
  for (const v of niceTicks(x0, x1, 8)) {
    const x = sx(v);
    cv.line(x, top, x, bottom, grid);
    const s = fmt(v);
    cv.text(x - textWidth(s) / 2, bottom + 10, s, axis);
  }
  cv.line(left, bottom, right, bottom, axis);
  cv.line(left, top, left, bottom, axis);

  // Raw curve.
  const raw = [120, 170, 230];
  for (let i = 1; i < pts.length; i++)
    cv.line(sx(pts[i - 1].step), sy(pts[i - 1].loss), sx(pts[i].step), sy(pts[i].loss), raw, 0.8);
  if (pts.length === 1) cv.set(sx(pts[0].step), sy(pts[0].loss), raw);
  // Moving average.
  const k = options.smooth ?? Math.max(1, Math.round(pts.length / 50));
  if (k > 1) drawMovingAverage(cv, pts, k, ty, logY ? (v) => 10 ** v : (v) => v, sx, sy);
  return cv;
}

/** The moving average of `k` losses (in the plot's y scale `ty`), drawn two pixels thick. */
function drawMovingAverage(
  cv: Canvas,
  pts: ReadonlyArray<{ step: number; loss: number }>,
  k: number,
  ty: (v: number) => number,
  inv: (v: number) => number,
  sx: (s: number) => number,
  sy: (v: number) => number,
): void {
  const avg: number[] = [];
  let sum = 0;
  for (let i = 0; i < pts.length; i++) {
    sum += ty(pts[i].loss);
    if (i >= k) sum -= ty(pts[i - k].loss);
    avg.push(sum / Math.min(i + 1, k));
  }
  const dark = [20, 60, 160];
  for (let i = 1; i < pts.length; i++)
    for (const d of [0, 1])
      cv.line(
        sx(pts[i - 1].step),
        sy(inv(avg[i - 1])) + d,
        sx(pts[i].step),
        sy(inv(avg[i])) + d,
        dark,
      );
}
