/**
 * The eval chart: one small bar chart per metric, one bar per method (the mean) with a
 * whisker of ±1 population std, drawn through @dif-fusion/charts (Vega-Lite -> SVG -> PNG),
 * the same path as dif-train's loss charts. Every panel's y scale spans its bars and their
 * whiskers (and 0); the methods share one colour legend.
 */
import { renderPng, renderSvg, type TopLevelSpec } from '@dif-fusion/charts';
import { LOWER_IS_BETTER, METRIC_NAMES, type MetricName } from '@dif-fusion/metrics';
import type { Summary } from './report';

/** Panels per row. */
const COLUMNS = 7;

/** The y range of a metric's panel: 0, every mean, and every whisker end (mean ± std), plus 5%. */
export function panelDomain(summary: Summary, metric: MetricName): [number, number] {
  let lo = 0;
  let hi = 0;
  for (const m of Object.keys(summary)) {
    const { mean, std } = summary[m][metric];
    if (!Number.isFinite(mean)) continue;
    const s = Number.isFinite(std) ? std : 0;
    lo = Math.min(lo, mean - s);
    hi = Math.max(hi, mean + s);
  }
  if (lo === hi) hi = lo + 1;
  // 5% headroom, so a whisker end does not sit on the frame.
  const pad = 0.05 * (hi - lo);
  return [lo < 0 ? lo - pad : 0, hi + pad];
}

/** The Vega-Lite spec of the chart. */
export function chartSpec(summary: Summary): TopLevelSpec {
  const methods = Object.keys(summary);
  const panels = METRIC_NAMES.map((metric) => {
    const values = methods
      .filter((m) => Number.isFinite(summary[m][metric].mean))
      .map((m) => {
        const { mean, std } = summary[m][metric];
        const s = Number.isFinite(std) ? std : 0;
        return { method: m, mean, lo: mean - s, hi: mean + s };
      });
    const x = { field: 'method', type: 'nominal', axis: null, sort: methods } as const;
    return {
      title: {
        text: metric,
        subtitle: LOWER_IS_BETTER.has(metric) ? 'lower is better' : 'higher is better',
      },
      width: 120,
      height: 110,
      data: { values },
      encoding: { x },
      layer: [
        {
          mark: 'bar',
          encoding: {
            y: {
              field: 'mean',
              type: 'quantitative',
              title: 'mean ± std',
              scale: { domain: panelDomain(summary, metric), nice: false },
            },
            color: {
              field: 'method',
              type: 'nominal',
              title: 'method',
              scale: { domain: methods },
            },
          },
        },
        {
          mark: { type: 'rule', color: '#333' },
          encoding: { y: { field: 'lo', type: 'quantitative' }, y2: { field: 'hi' } },
        },
      ],
    };
  });
  return {
    title: {
      text: 'dif-fuse eval: mean ± std per metric',
      subtitle: `${methods.length} method(s); whiskers: ±1 population standard deviation over the images`,
    },
    columns: COLUMNS,
    concat: panels,
    resolve: { scale: { y: 'independent' } },
    config: { legend: { orient: 'bottom', direction: 'horizontal' } },
  } as TopLevelSpec;
}

export function chartSvg(summary: Summary): Promise<string> {
  return renderSvg(chartSpec(summary));
}

/** The chart as PNG bytes, at 2x pixel density. */
export function chartPng(summary: Summary): Promise<Buffer> {
  return renderPng(chartSpec(summary), 2); // 2x pixel density: sharp on HiDPI screens
}
