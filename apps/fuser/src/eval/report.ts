/** Aggregation and the three text outputs of `dif-fuse eval`: CSV rows, JSON summary, table. */
import {
  LOWER_IS_BETTER,
  METRIC_NAMES,
  type MetricName,
  type MetricValues,
} from '@dif-fusion/metrics';

export interface EvalRow {
  image: string;
  method: string;
  values: MetricValues;
}

export interface Stat {
  mean: number;
  std: number;
}

export type Summary = Record<string, Record<MetricName, Stat>>;

/** Mean and population standard deviation per method and metric, methods in first-seen order. */
export function summarize(rows: EvalRow[], methods: string[]): Summary {
  const out: Summary = {};
  for (const method of methods) {
    const mine = rows.filter((r) => r.method === method);
    if (mine.length === 0) continue;
    const stats = {} as Record<MetricName, Stat>;
    for (const name of METRIC_NAMES) {
      const xs = mine.map((r) => r.values[name]);
      const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
      const std = Math.sqrt(xs.reduce((a, b) => a + (b - mean) ** 2, 0) / xs.length);
      stats[name] = { mean, std };
    }
    out[method] = stats;
  }
  return out;
}

function csvCell(s: string): string {
  return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** One row per evaluated image and method: image, method, every metric (full precision). */
export function toCsv(rows: EvalRow[]): string {
  const lines = [['image', 'method', ...METRIC_NAMES].join(',')];
  for (const r of rows) {
    lines.push(
      [csvCell(r.image), csvCell(r.method), ...METRIC_NAMES.map((m) => String(r.values[m]))].join(
        ',',
      ),
    );
  }
  return `${lines.join('\n')}\n`;
}

/** `{ "<method>": { "<METRIC>": { "mean": m, "std": s } } }` */
export function toJson(summary: Summary): string {
  return `${JSON.stringify(summary, null, 2)}\n`;
}

/**
 * The methods whose means can be ranked against each other: those evaluated on exactly the
 * same images as the method with the most evaluated images (the first of them). A method
 * that misses images (or has others) is averaged over a different set, so its mean is not
 * comparable: it is left out of the best marks.
 */
export function comparableMethods(rows: EvalRow[], methods: string[]): Set<string> {
  const sets = new Map<string, string>();
  for (const m of methods) {
    const images = rows
      .filter((r) => r.method === m)
      .map((r) => r.image)
      .sort();
    if (images.length) sets.set(m, JSON.stringify(images));
  }
  let ref: string | undefined;
  let most = -1;
  for (const m of methods) {
    const key = sets.get(m);
    if (key === undefined) continue;
    const n = (JSON.parse(key) as string[]).length;
    if (n > most) {
      most = n;
      ref = key;
    }
  }
  return new Set(methods.filter((m) => ref !== undefined && sets.get(m) === ref));
}

/**
 * Best method per metric (lower is better for MSE, Nabf and DeltaE) among `among` (default:
 * every method of the summary); ties keep all.
 */
export function bestMethods(
  summary: Summary,
  among: ReadonlySet<string> = new Set(Object.keys(summary)),
): Record<MetricName, Set<string>> {
  const best = {} as Record<MetricName, Set<string>>;
  const ranked = Object.keys(summary).filter((m) => among.has(m));
  for (const name of METRIC_NAMES) {
    const lower = LOWER_IS_BETTER.has(name);
    let top: number | undefined;
    for (const m of ranked) {
      const v = summary[m][name].mean;
      if (Number.isNaN(v)) continue;
      if (top === undefined || (lower ? v < top : v > top)) top = v;
    }
    best[name] = new Set(ranked.filter((m) => summary[m][name].mean === top));
  }
  return best;
}

export function formatNumber(v: number): string {
  if (!Number.isFinite(v)) return Number.isNaN(v) ? 'NaN' : v > 0 ? 'inf' : '-inf';
  const a = Math.abs(v);
  if (a >= 100) return v.toFixed(1);
  if (a >= 10) return v.toFixed(2);
  if (a >= 1) return v.toFixed(3);
  if (a >= 0.001 || a === 0) return v.toFixed(4);
  return v.toExponential(1);
}

/** A standard deviation with two significant digits (the table's ± part). */
export function formatStd(v: number): string {
  if (v === 0) return '0';
  if (!Number.isFinite(v)) return formatNumber(v);
  const a = Math.abs(v);
  if (a >= 1e-3 && a < 1e5) return String(Number(v.toPrecision(2)));
  return v.toExponential(1);
}

/**
 * Summary table: one row per method, one column per metric, `mean ± std`; the best value of
 * each column is marked with `*` (and bold on a colour terminal), only among `comparable`
 * (methods evaluated on the same images, {@link comparableMethods}; default: all) and only
 * when at least two methods are comparable.
 */
export function formatTable(
  summary: Summary,
  color = false,
  comparable: ReadonlySet<string> = new Set(Object.keys(summary)),
): string {
  const methods = Object.keys(summary);
  const ranked = methods.filter((m) => comparable.has(m));
  const best = bestMethods(summary, new Set(ranked.length >= 2 ? ranked : []));
  const header = [
    'method',
    ...METRIC_NAMES.map((m) => (LOWER_IS_BETTER.has(m) ? `${m}↓` : `${m}↑`)),
  ];
  const cells = methods.map((method) => [
    method,
    ...METRIC_NAMES.map((m) => {
      const { mean, std } = summary[method][m];
      return `${formatNumber(mean)}±${formatStd(std)}${best[m].has(method) ? '*' : ' '}`;
    }),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((row) => row[i].length)));
  const pad = (s: string, i: number) => (i === 0 ? s.padEnd(widths[i]) : s.padStart(widths[i]));
  const line = (row: string[], marks = false) =>
    row
      .map((s, i) => {
        const p = pad(s, i);
        return marks && color && i > 0 && s.endsWith('*') ? `\u001b[1m${p}\u001b[22m` : p;
      })
      .join('  ');
  const out = [
    line(header),
    widths.map((w) => '-'.repeat(w)).join('  '),
    ...cells.map((r) => line(r, true)),
  ];
  const unranked = methods.filter((m) => !comparable.has(m));
  if (methods.length < 2) out.push('↑ higher is better, ↓ lower is better');
  else if (ranked.length < 2)
    out.push(
      'no best marked: the methods were evaluated on different images (↑ higher is better, ↓ lower is better)',
    );
  else
    out.push(
      `* best per column (↑ higher is better, ↓ lower is better)${unranked.length ? `; not ranked, evaluated on other images: ${unranked.join(', ')}` : ''}`,
    );
  return out.join('\n');
}
