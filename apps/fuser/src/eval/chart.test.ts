import { METRIC_NAMES, type MetricName } from '@dif-fusion/metrics';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { chartPng, chartSpec, chartSvg, panelDomain } from './chart';
import type { Stat, Summary } from './report';

function summary(): Summary {
  const of = (f: (k: number) => Stat) =>
    Object.fromEntries(METRIC_NAMES.map((n, k) => [n, f(k)])) as Record<MetricName, Stat>;
  return {
    model: of((k) => ({ mean: k + 1, std: 0.5 })),
    'ycbcr-max': of((k) => ({ mean: k + 2, std: 3 })), // whisker far above the bars
  };
}

describe('eval chart (Vega-Lite through @dif-fusion/charts)', () => {
  it('each panel y scale covers 0, the bars and the whiskers', () => {
    const s = summary();
    expect(panelDomain(s, 'EN')).toEqual([-1.3, 5.3]); // ycbcr-max: 2 ± 3 (model: 1 ± 0.5), + 5%
    s.model.MSE = { mean: -1, std: 2 };
    const k = METRIC_NAMES.indexOf('MSE');
    const span = k + 5 + 3; // model -1 ± 2 .. ycbcr-max (k + 2) ± 3
    expect(panelDomain(s, 'MSE')).toEqual([-3 - 0.05 * span, k + 5 + 0.05 * span]);
    s.model.EN = { mean: 4, std: 0 };
    s['ycbcr-max'].EN = { mean: 2, std: 1 };
    expect(panelDomain(s, 'EN')).toEqual([0, 4.2]); // 0 is always in
    const spec = chartSpec(s) as any;
    expect(spec.concat).toHaveLength(METRIC_NAMES.length);
    expect(spec.concat[0].layer[0].encoding.y.scale.domain).toEqual([0, 4.2]);
  });

  it('draws a title, one panel per metric with its direction, axis titles and a method legend', async () => {
    const svg = await chartSvg(summary());
    for (const text of [
      'dif-fuse eval: mean ± std per metric',
      ...METRIC_NAMES,
      'lower is better',
      'higher is better',
      'mean ± std',
      'method',
      'model',
      'ycbcr-max',
    ])
      expect(svg, text).toContain(`>${text}</text>`);
    const meta = await sharp(await chartPng(summary())).metadata();
    expect(meta.format).toBe('png');
    expect(meta.width).toBeGreaterThan(700);
  });
});
