#!/usr/bin/env node
/**
 * A 2x zoom of one crop across fused folders (and the sources), labelled, three per row.
 *
 *   node scripts/default-model/zoom.mjs OUT.png STEM left,top,width,height LABEL=DIR [LABEL=DIR...]
 */
import { createRequire } from 'node:module';

const require = createRequire(process.cwd() + '/packages/io/package.json');
const sharp = require('sharp');
const [out, stem, box, ...cols] = process.argv.slice(2);
const [left, top, width, height] = box.split(',').map(Number);
const tiles = [];
const W = width * 2,
  H = height * 2;
for (const [i, c] of cols.entries()) {
  const [label, dir] = c.split('=');
  const file = dir.includes('roadscene') ? `${dir}/${stem}.jpg` : `${dir}/${stem}.png`;
  const img = await sharp(file)
    .extract({ left, top, width, height })
    .resize(W, H, { kernel: 'nearest' })
    .png()
    .toBuffer();
  const text = Buffer.from(
    `<svg width="${W}" height="18"><rect width="${W}" height="18" fill="black"/><text x="4" y="14" font-size="14" fill="white" font-family="sans-serif">${label}</text></svg>`,
  );
  tiles.push(
    { input: img, left: (i % 3) * W, top: Math.floor(i / 3) * (H + 18) + 18 },
    { input: text, left: (i % 3) * W, top: Math.floor(i / 3) * (H + 18) },
  );
}
const rows = Math.ceil(cols.length / 3);
await sharp({ create: { width: 3 * W, height: rows * (H + 18), channels: 3, background: '#000' } })
  .composite(tiles)
  .png()
  .toFile(out);
console.log('wrote', out);
