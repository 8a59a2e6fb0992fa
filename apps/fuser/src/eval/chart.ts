/**
 * Bar chart of the summary: one small panel per metric, one bar per method (mean, with a
 * ±std whisker), drawn as SVG and rasterized to PNG with sharp (librsvg; text uses the
 * fonts fontconfig finds, nothing is fetched).
 */
import { LOWER_IS_BETTER, METRIC_NAMES } from '@dif-fusion/metrics';
import sharp from 'sharp';
import { formatNumber, type Summary } from './report';

const PALETTE = [
  '#4e79a7',
  '#f28e2b',
  '#e15759',
  '#76b7b2',
  '#59a14f',
  '#edc948',
  '#b07aa1',
  '#ff9da7',
  '#9c755f',
  '#bab0ac',
];

function esc(s: string): string {
  return s
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;');
}

export function chartSvg(summary: Summary): string {
  const methods = Object.keys(summary);
  const cols = 7;
  const rows = Math.ceil(METRIC_NAMES.length / cols);
  const pw = 170;
  const ph = 190;
  const legendH = 24 + 18 * Math.ceil(methods.length / 4);
  const W = cols * pw + 20;
  const H = rows * ph + legendH + 20;
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<style>text{font-family:DejaVu Sans,Liberation Sans,Arial,sans-serif;fill:#222}</style>`,
  ];
  METRIC_NAMES.forEach((name, idx) => {
    const x0 = 10 + (idx % cols) * pw;
    const y0 = 10 + Math.floor(idx / cols) * ph;
    const plotTop = y0 + 28;
    const plotH = ph - 60;
    const base = plotTop + plotH;
    const stats = methods.map((m) => summary[m][name]);
    const top = Math.max(
      ...stats.map((s) =>
        Number.isFinite(s.mean) ? Math.abs(s.mean) + (Number.isFinite(s.std) ? s.std : 0) : 0,
      ),
      1e-12,
    );
    const arrow = LOWER_IS_BETTER.has(name) ? ' (lower better)' : '';
    parts.push(
      `<text x="${x0 + pw / 2}" y="${y0 + 16}" font-size="13" text-anchor="middle" font-weight="bold">${esc(name)}${arrow ? `<tspan font-size="9" font-weight="normal">${arrow}</tspan>` : ''}</text>`,
    );
    parts.push(
      `<line x1="${x0 + 8}" y1="${base}" x2="${x0 + pw - 8}" y2="${base}" stroke="#888" stroke-width="1"/>`,
    );
    const slot = (pw - 20) / Math.max(methods.length, 1);
    const bw = Math.max(4, Math.min(30, slot * 0.7));
    stats.forEach((s, i) => {
      const cx = x0 + 10 + slot * (i + 0.5);
      const v = Number.isFinite(s.mean) ? Math.abs(s.mean) : 0;
      const bh = (v / top) * plotH;
      const color = PALETTE[i % PALETTE.length];
      parts.push(
        `<rect x="${(cx - bw / 2).toFixed(1)}" y="${(base - bh).toFixed(1)}" width="${bw.toFixed(1)}" height="${bh.toFixed(1)}" fill="${color}"/>`,
      );
      if (Number.isFinite(s.std) && s.std > 0) {
        const y1 = base - ((v + s.std) / top) * plotH;
        const y2 = base - (Math.max(v - s.std, 0) / top) * plotH;
        parts.push(
          `<line x1="${cx}" y1="${y1.toFixed(1)}" x2="${cx}" y2="${y2.toFixed(1)}" stroke="#333" stroke-width="1"/>`,
        );
      }
      parts.push(
        `<text x="${cx}" y="${base + 12}" font-size="8" text-anchor="middle">${esc(formatNumber(s.mean))}</text>`,
      );
    });
  });
  const ly = 10 + rows * ph + 8;
  methods.forEach((m, i) => {
    const lx = 20 + (i % 4) * ((W - 40) / 4);
    const y = ly + Math.floor(i / 4) * 18;
    parts.push(
      `<rect x="${lx}" y="${y}" width="12" height="12" fill="${PALETTE[i % PALETTE.length]}"/>`,
    );
    parts.push(`<text x="${lx + 18}" y="${y + 10}" font-size="12">${esc(m)}</text>`);
  });
  parts.push('</svg>');
  return parts.join('\n');
}

/** The chart as PNG bytes (SVG rasterized by sharp). */
export async function chartPng(summary: Summary): Promise<Buffer> {
  return sharp(Buffer.from(chartSvg(summary)))
    .png()
    .toBuffer();
}
