#!/usr/bin/env node
/**
 * How far apart two fusions of the same pairs are: PSNR (dB, 8-bit RGB) per image between
 * folder A and folder B (matched by file name), with min / median / max. Used to check that
 * a model's output differs from a baseline's (the v3 model was 38-44 dB from ycbcr-max).
 *
 *   node scripts/default-model/psnr-between.mjs DIR_A DIR_B
 */
import { readdirSync } from 'node:fs';
import { join, parse } from 'node:path';
import { readImage } from '../../packages/io/dist/index.js';

const [a, b] = process.argv.slice(2);
const names = new Map(readdirSync(b).map((f) => [parse(f).name, f]));
const out = [];
for (const f of readdirSync(a).sort()) {
  const other = names.get(parse(f).name);
  if (!other || !/\.(png|jpe?g)$/i.test(f)) continue;
  const x = await readImage(join(a, f), { channels: 3 });
  const y = await readImage(join(b, other), { channels: 3 });
  let se = 0;
  for (let i = 0; i < x.data.length; i++) se += (x.data[i] - y.data[i]) ** 2;
  const mse = se / x.data.length;
  out.push([parse(f).name, mse === 0 ? Infinity : 10 * Math.log10((255 * 255) / mse)]);
}
const v = out.map((o) => o[1]).sort((p, q) => p - q);
for (const [n, p] of out) console.log(`${n}\t${p.toFixed(2)}`);
console.log(
  `PSNR dB: min ${v[0].toFixed(2)}, median ${v[Math.floor(v.length / 2)].toFixed(2)}, max ${v[v.length - 1].toFixed(2)} (${v.length} images)`,
);
