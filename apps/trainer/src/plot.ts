/**
 * The run's loss chart (RUN/loss.png), drawn through @dif-fusion/charts (Vega-Lite -> SVG ->
 * PNG), the same path as `dif-fuse eval --chart`: the training loss per step (light), its
 * moving average, and the validation loss of each validation (head training), with a title,
 * axis titles, a legend, and a log-scale y axis when the losses span more than a decade.
 */
import { renderPng, type TopLevelSpec } from '@dif-fusion/charts';
import { writeFileAtomic } from '@dif-fusion/io';
import type { LogRecord } from './run';

export const SERIES = {
  train: 'training loss',
  average: 'moving average',
  val: 'validation loss',
} as const;

interface Point {
  step: number;
  loss: number;
  series: string;
}

/** Mean of the last `k` values at each index (a trailing moving average). */
export function movingAverage(values: number[], k: number): number[] {
  const out: number[] = [];
  let sum = 0;
  for (let i = 0; i < values.length; i++) {
    sum += values[i];
    if (i >= k) sum -= values[i - k];
    out.push(sum / Math.min(i + 1, k));
  }
  return out;
}

/** The chart's points from the run's log records (finite losses only). */
export function lossSeries(records: LogRecord[]): { points: Point[]; window: number } {
  const train = records.filter(
    (r) => r.event === undefined && typeof r.loss === 'number' && Number.isFinite(r.loss),
  );
  const window = Math.max(1, Math.round(train.length / 50));
  const points: Point[] = train.map((r) => ({
    step: r.step,
    loss: r.loss as number,
    series: SERIES.train,
  }));
  if (window > 1) {
    const avg = movingAverage(
      train.map((r) => r.loss as number),
      window,
    );
    for (const [i, r] of train.entries())
      points.push({ step: r.step, loss: avg[i], series: SERIES.average });
  }
  for (const r of records)
    if (r.event === 'val' && typeof r.val_loss === 'number' && Number.isFinite(r.val_loss))
      points.push({ step: r.step, loss: r.val_loss, series: SERIES.val });
  return { points, window };
}

/** The Vega-Lite spec of the loss chart. */
export function lossChartSpec(records: LogRecord[], title = 'Training loss'): TopLevelSpec {
  const { points, window } = lossSeries(records);
  const losses = points.map((p) => p.loss);
  const lo = Math.min(...losses);
  const hi = Math.max(...losses);
  const log = points.length > 0 && lo > 0 && hi / lo > 10;
  const hasVal = points.some((p) => p.series === SERIES.val);
  // The legend names only the curves drawn (no "validation loss" for a run without one).
  const curves: [string, string][] = [
    [SERIES.train, '#9ecae9'],
    ...(window > 1 ? ([[SERIES.average, '#1f4e99']] as [string, string][]) : []),
    ...(hasVal ? ([[SERIES.val, '#e45756']] as [string, string][]) : []),
  ];
  const color = {
    field: 'series',
    type: 'nominal',
    title: null,
    scale: { domain: curves.map((c) => c[0]), range: curves.map((c) => c[1]) },
    legend: { orient: 'top-right' },
  } as const;
  const x = { field: 'step', type: 'quantitative', title: 'step' } as const;
  const y = {
    field: 'loss',
    type: 'quantitative',
    title: log ? 'loss (log scale)' : 'loss',
    // A log axis spans the data (Vega's "nice" decades would run to 10 for losses under 1.3).
    scale: log ? { type: 'log', nice: false, domain: [lo / 1.1, hi * 1.1] } : { zero: false },
  } as const;
  return {
    title: {
      text: title,
      subtitle:
        window > 1 ? `moving average over ${window} steps` : `${points.length} logged values`,
    },
    width: 640,
    height: 320,
    data: { values: points },
    layer: [
      {
        transform: [{ filter: `datum.series !== '${SERIES.val}'` }],
        mark: { type: 'line', strokeWidth: 1.5 },
        encoding: { x, y, color },
      },
      {
        transform: [{ filter: `datum.series === '${SERIES.val}'` }],
        mark: { type: 'line', point: true, strokeWidth: 2 },
        encoding: { x, y, color },
      },
    ],
  } as TopLevelSpec;
}

/** Writes the loss chart of a run's log records as PNG (2x pixel density), atomically. */
export async function writeLossChart(
  path: string,
  records: LogRecord[],
  title?: string,
): Promise<void> {
  // 2x pixel density: sharp on HiDPI screens
  await writeFileAtomic(path, await renderPng(lossChartSpec(records, title), 2));
}
