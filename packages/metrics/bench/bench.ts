/**
 * Times every metric on one synthetic 640x480 IR/visible/fused triple (single thread).
 * Run: pnpm --filter @dif-fusion/metrics bench   (prints a Markdown table)
 */
import * as M from '../src/index';

const W = Number(process.env.BENCH_WIDTH ?? 640);
const H = Number(process.env.BENCH_HEIGHT ?? 480);
const REPS = Number(process.env.BENCH_REPS ?? 7);

let seed = 12345;
const rand = () => {
  seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
  return seed / 2 ** 32;
};
const clamp = (v: number) => Math.max(0, Math.min(255, Math.round(v)));

// A scene with smooth shading, edges and noise: IR gray, visible RGB, fused RGB.
const ir = new Uint8Array(W * H);
const vi = new Uint8Array(W * H * 3);
const fu = new Uint8Array(W * H * 3);
for (let y = 0; y < H; y++) {
  for (let x = 0; x < W; x++) {
    const i = y * W + x;
    const hot = Math.hypot(x - W * 0.6, y - H * 0.4) < H * 0.15 ? 120 : 0;
    ir[i] = clamp(60 + 40 * Math.sin(x / 37) + hot + 12 * rand());
    const base = 90 + 70 * Math.cos(y / 23) * Math.sin(x / 51) + ((x >> 5) % 2 ? 25 : 0);
    for (let c = 0; c < 3; c++) {
      vi[3 * i + c] = clamp(base + 20 * c + 10 * rand());
      fu[3 * i + c] = clamp(0.5 * (base + 20 * c) + 0.5 * ir[i] + 6 * rand());
    }
  }
}
const irImg: M.Image8 = { data: ir, width: W, height: H, channels: 1 };
const viImg: M.Image8 = { data: vi, width: W, height: H, channels: 3 };
const fuImg: M.Image8 = { data: fu, width: W, height: H, channels: 3 };
const a = M.toGray(irImg);
const b = M.toGray(viImg);
const f = M.toGray(fuImg);

function median(xs: number[]): number {
  const s = [...xs].sort((p, q) => p - q);
  return s[s.length >> 1];
}

function time(fn: () => unknown): number {
  fn(); // warm-up (JIT)
  const ts: number[] = [];
  for (let r = 0; r < REPS; r++) {
    const t0 = performance.now();
    fn();
    ts.push(performance.now() - t0);
  }
  return median(ts);
}

const cases: [string, () => unknown][] = [
  ['rgb2gray (3 images)', () => [M.toGray(irImg), M.toGray(viImg), M.toGray(fuImg)]],
  ['EN', () => M.entropy(f)],
  ['SD', () => M.standardDeviation(f)],
  ['SF', () => M.spatialFrequency(f)],
  ['AG', () => M.averageGradient(f)],
  ['MI', () => M.mutualInformation(a, b, f)],
  ['SCD', () => M.scd(a, b, f)],
  ['VIF', () => M.vif(a, b, f)],
  ['Qabf', () => M.qabf(a, b, f)],
  ['Nabf', () => M.nabf(a, b, f)],
  ['SSIM', () => M.ssim(a, b, f)],
  ['CC', () => M.correlationCoefficient(a, b, f)],
  ['MSE + PSNR', () => M.psnrFromMse(M.meanSquaredError(a, b, f))],
  ['DeltaE', () => M.deltaE(fuImg, viImg)],
  ['evaluateFusion (all, from 8-bit images)', () => M.evaluateFusion(irImg, viImg, fuImg)],
];

console.log(
  `@dif-fusion/metrics, ${W}x${H} pair, one thread, median of ${REPS} runs (Node ${process.version})\n`,
);
console.log('| metric | ms |');
console.log('| --- | ---: |');
for (const [name, fn] of cases) console.log(`| ${name} | ${time(fn).toFixed(1)} |`);
