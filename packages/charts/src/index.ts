/**
 * One charting path for every dif-fusion plot (training loss curves, the eval bar chart): a
 * Vega-Lite spec, compiled by vega-lite, rendered headless to SVG by vega (no canvas, no
 * browser), rasterized to PNG by sharp (librsvg; text in the fonts fontconfig finds). Charts
 * get real axes, titles, legends and scales from Vega-Lite instead of hand-placed pixels.
 */
import sharp from 'sharp';
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';

export type { TopLevelSpec };

/** The look every chart shares (font, background, sizes). */
export const CHART_CONFIG = {
  background: 'white',
  font: 'DejaVu Sans, Liberation Sans, Arial, sans-serif',
  title: { fontSize: 15, anchor: 'start' },
  axis: { labelFontSize: 11, titleFontSize: 12, gridColor: '#e6e6e6' },
  legend: { labelFontSize: 11, titleFontSize: 12 },
  view: { stroke: '#bbb' },
} as const;

/** A Vega-Lite spec as SVG text (the shared config applied under the spec's own). */
export async function renderSvg(spec: TopLevelSpec): Promise<string> {
  const withConfig = { ...spec, config: { ...CHART_CONFIG, ...(spec.config ?? {}) } };
  const view = new vega.View(vega.parse(compile(withConfig as TopLevelSpec).spec), {
    renderer: 'none',
  });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/** A Vega-Lite spec as PNG bytes; `scale` 2 doubles the pixel density. */
export async function renderPng(spec: TopLevelSpec, scale = 1): Promise<Buffer> {
  const svg = await renderSvg(spec);
  return sharp(Buffer.from(svg), { density: 72 * scale })
    .png()
    .toBuffer();
}
