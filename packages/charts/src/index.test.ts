import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { renderPng, renderSvg } from './index';

const spec = {
  title: 'Loss',
  width: 200,
  height: 100,
  data: {
    values: [
      { step: 1, loss: 1, series: 'train' },
      { step: 2, loss: 0.5, series: 'train' },
      { step: 2, loss: 0.7, series: 'validation' },
    ],
  },
  mark: 'line',
  encoding: {
    x: { field: 'step', type: 'quantitative', title: 'step' },
    y: { field: 'loss', type: 'quantitative', title: 'loss (MSE)' },
    color: { field: 'series', type: 'nominal', title: 'curve' },
  },
} as const;

describe('renderSvg / renderPng', () => {
  it('draw a Vega-Lite spec with its title, axis titles and legend', async () => {
    const svg = await renderSvg(spec as any);
    expect(svg.startsWith('<svg')).toBe(true);
    for (const text of ['Loss', 'loss (MSE)', 'step', 'curve', 'train', 'validation'])
      expect(svg).toContain(`>${text}</text>`);
    const png = await renderPng(spec as any);
    const meta = await sharp(png).metadata();
    expect(meta.format).toBe('png');
    const m = /width="(\d+)" height="(\d+)"/.exec(svg)!;
    expect([meta.width, meta.height]).toEqual([Number(m[1]), Number(m[2])]);
    const twice = await sharp(await renderPng(spec as any, 2)).metadata();
    expect(twice.width).toBe(2 * Number(m[1]));
  });
});
