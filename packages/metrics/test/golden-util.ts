import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import type { Image8 } from '../src/image';

export async function readImage(path: string): Promise<Image8> {
  const { data, info } = await sharp(path).raw().toBuffer({ resolveWithObject: true });
  return {
    data: new Uint8Array(data.buffer, data.byteOffset, data.length),
    width: info.width,
    height: info.height,
    channels: info.channels,
  };
}

export interface GoldenRow {
  label: string;
  image: string;
  fusion: string;
  values: Record<string, number>;
}

export function readExpected(dir: string): GoldenRow[] {
  const lines = readFileSync(join(dir, 'expected.csv'), 'utf8').trim().split(/\r?\n/);
  const header = lines[0].split(',');
  return lines.slice(1).map((line) => {
    const cells = line.split(',');
    const [image, fusion] = cells[0].split('/');
    const values: Record<string, number> = {};
    header.slice(1).forEach((h, i) => {
      values[h] = Number(cells[i + 1]);
    });
    return { label: cells[0], image, fusion, values };
  });
}
