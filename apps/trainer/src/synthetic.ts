/**
 * Generated training pairs (tests, benchmark, trying the CLI without a data set): smooth
 * random blobs and stripes, the infrared image a blurred, brightness-shifted mix of the
 * visible one, so a DDPM and a fusion head have structure to learn.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { writeImage } from '@dif-fusion/io';
import { Rng } from '@dif-fusion/schedules';

/** Write `count` pairs `<dir>/vi/NNN.png` (RGB) and `<dir>/ir/NNN.png` (gray). */
export async function writeSyntheticPairs(
  dir: string,
  options: { count?: number; width?: number; height?: number; seed?: number } = {},
): Promise<string> {
  const { count = 6, width = 48, height = 40, seed = 0 } = options;
  const rng = new Rng(seed);
  mkdirSync(join(dir, 'vi'), { recursive: true });
  mkdirSync(join(dir, 'ir'), { recursive: true });
  for (let k = 0; k < count; k++) {
    const blobs = Array.from({ length: 4 }, () => ({
      x: rng.uniform() * width,
      y: rng.uniform() * height,
      r: 4 + rng.uniform() * Math.min(width, height) * 0.3,
      c: [rng.uniform(), rng.uniform(), rng.uniform()],
      hot: rng.uniform(),
    }));
    const fx = 0.1 + rng.uniform() * 0.3;
    const vi = new Uint8Array(width * height * 3);
    const ir = new Uint8Array(width * height);
    for (let y = 0; y < height; y++)
      for (let x = 0; x < width; x++) {
        const rgb = [0.3, 0.35, 0.4].map((b) => b + 0.15 * Math.sin(fx * x + 0.2 * y));
        let heat = 0.2 + 0.05 * Math.cos(0.1 * y);
        for (const b of blobs) {
          const w = Math.exp(-((x - b.x) ** 2 + (y - b.y) ** 2) / (2 * b.r * b.r));
          for (let c = 0; c < 3; c++) rgb[c] = rgb[c] * (1 - w) + b.c[c] * w;
          heat += 0.7 * b.hot * w;
        }
        const i = y * width + x;
        for (let c = 0; c < 3; c++)
          vi[i * 3 + c] = Math.round(255 * Math.min(1, Math.max(0, rgb[c])));
        ir[i] = Math.round(255 * Math.min(1, Math.max(0, heat)));
      }
    const name = `${String(k).padStart(3, '0')}.png`;
    await writeImage(join(dir, 'vi', name), { width, height, channels: 3, bitDepth: 8, data: vi });
    await writeImage(join(dir, 'ir', name), { width, height, channels: 1, bitDepth: 8, data: ir });
  }
  return dir;
}
