#!/usr/bin/env node
/**
 * Side-by-side strips for looking at fusions: one row per pair, one labelled column per
 * folder of fused images, then the visible and infrared sources.
 *
 *   node scripts/default-model/strips.mjs OUT.png PAIRS_DIR STEM[,STEM...] LABEL=DIR [LABEL=DIR...]
 *   (each panel 320 px wide)
 */
import { readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join, parse } from 'node:path';

const require = createRequire(join(process.cwd(), 'packages/io/package.json'));
const sharp = require('sharp');
const [out, pairs, stems, ...cols] = process.argv.slice(2);
const W = 320;
const find = (dir, stem) => {
  const f = readdirSync(dir).find((x) => parse(x).name === stem);
  if (!f) throw new Error(`${dir}: no image for ${stem}`);
  return join(dir, f);
};
const columns = [
  ...cols.map((c) => c.split('=')),
  ['visible', join(pairs, 'vi')],
  ['infrared', join(pairs, 'ir')],
];
const LABEL = 18;
const tiles = [];
let y = 0;
for (const stem of stems.split(',')) {
  let rowH = 0;
  const row = [];
  for (const [i, [label, dir]] of columns.entries()) {
    const img = sharp(find(dir, stem)).resize({ width: W }).toColourspace('srgb');
    const buf = await img.png().toBuffer();
    const meta = await sharp(buf).metadata();
    rowH = Math.max(rowH, meta.height);
    row.push({ input: buf, left: i * W, top: y + LABEL });
    const svg = `<svg width="${W}" height="${LABEL}"><rect width="100%" height="100%" fill="black"/><text x="4" y="13" font-family="sans-serif" font-size="12" fill="white">${label} · ${stem}</text></svg>`;
    row.push({ input: Buffer.from(svg), left: i * W, top: y });
  }
  tiles.push(...row);
  y += rowH + LABEL;
}
await sharp({ create: { width: W * columns.length, height: y, channels: 3, background: 'black' } })
  .composite(tiles)
  .png()
  .toFile(out);
console.log(`wrote ${out}`);
