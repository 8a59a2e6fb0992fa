import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { renderSvg } from '@dif-fusion/charts';
import { readImageHeader } from '@dif-fusion/io';
import { describe, expect, it } from 'vitest';
import { lossChartSpec, lossSeries, movingAverage, SERIES, writeLossChart } from './plot';
import type { LogRecord } from './run';

/** 200 steps of a falling loss, a NaN, and a validation every 50 steps. */
function records(): LogRecord[] {
  const out: LogRecord[] = [];
  for (let s = 1; s <= 200; s++) {
    out.push({ step: s, loss: 1 / s + (s % 2) * 0.01, lr: 1e-4 });
    if (s % 50 === 0) out.push({ step: s, event: 'val', val_loss: 2 / s });
  }
  out.push({ step: 200, event: 'checkpoint', path: 'x' });
  out.push({ step: 201, loss: Number.NaN });
  return out;
}

describe('loss chart', () => {
  it('moving average, validation points, log scale over a wide range', () => {
    expect(movingAverage([1, 2, 3, 4], 2)).toEqual([1, 1.5, 2.5, 3.5]);
    const { points, window } = lossSeries(records());
    expect(window).toBe(4); // 200 finite training losses / 50
    expect(points.filter((p) => p.series === SERIES.train)).toHaveLength(200);
    expect(points.filter((p) => p.series === SERIES.average)).toHaveLength(200);
    expect(points.filter((p) => p.series === SERIES.val).map((p) => [p.step, p.loss])).toEqual([
      [50, 0.04],
      [100, 0.02],
      [150, 2 / 150],
      [200, 0.01],
    ]);
    const spec = lossChartSpec(records()) as any;
    // 1.01 .. 0.005: the axis spans the data, not whole decades
    expect(spec.layer[0].encoding.y.scale).toEqual({
      type: 'log',
      nice: false,
      domain: [0.005 / 1.1, 1.01 * 1.1],
    });
  });

  it('names only the curves it draws: no validation loss without validations', () => {
    const noVal = records().filter((r) => r.event !== 'val');
    const spec = lossChartSpec(noVal) as any;
    expect(spec.layer[0].encoding.color.scale.domain).toEqual([SERIES.train, SERIES.average]);
    expect(spec.layer[0].encoding.color.scale.range).toEqual(['#9ecae9', '#1f4e99']);
  });

  it('is drawn with a title, axis titles and a legend naming the three curves', async () => {
    const svg = await renderSvg(lossChartSpec(records(), 'dif-train head: loss'));
    for (const text of [
      'dif-train head: loss',
      'step',
      'loss (log scale)',
      SERIES.train,
      SERIES.average,
      SERIES.val,
    ])
      expect(svg, text).toContain(`>${text}</text>`);
    const path = join(mkdtempSync(join(tmpdir(), 'dif-plot-')), 'loss.png');
    await writeLossChart(path, records());
    const meta = await readImageHeader(path);
    expect(meta.format).toBe('png');
    // 2x pixel density (the spec is 640 wide)
    expect(meta.width).toBeGreaterThan(1280);
    expect(readFileSync(path).subarray(1, 4).toString()).toBe('PNG');
  });
});
