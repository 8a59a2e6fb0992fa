// int8 of a model folder (default: models/default) calibrated on N training pairs, as
// `dif-train export --precision int8 --calibration DIR` does for a fresh export:
//   [PERCENTILE=99.99] [FLOAT_FIRST=1 FLOAT_LAST=2] [REDUCE_RANGE=1] node scripts/int8/quantize-default.mjs OUT [N] [SRC] [CALIBRATION_DIR]
import { resolve } from 'node:path';

const onnx = await import('../../packages/onnx/dist/index.js');
const { quantizeModelFolder } = await import('../../packages/export/dist/index.js');
const io = await import('../../packages/io/dist/index.js');
const { cellNoise } = await import('../../packages/schedules/dist/index.js');
const [, , OUT, N = '16', SRC = 'models/default', CAL = '../shared/data/roadscene/train'] =
  process.argv;
if (!OUT) throw new Error('usage: quantize-default.mjs OUT [N] [SRC] [CALIBRATION_DIR]');
const cfg = onnx.readModelConfig(SRC);
const m = cfg.size_multiple;
const scan = await io.scanPairs(resolve(CAL));
const n = Math.min(Number(N), scan.pairs.length);
async function* inputs() {
  const noise = cellNoise(0, cfg.head.time_steps.length, 4);
  for (let i = 0; i < n; i++) {
    const p = io.pairToFloat(
      await io.readPair(scan.pairs[Math.floor((i * scan.pairs.length) / n)], { resize: true }),
    );
    const h = Math.floor(p.ir.height / m) * m;
    const w = Math.floor(p.ir.width / m) * m;
    const crop = (img) => io.cropFloat(img, (img.width - w) >> 1, (img.height - h) >> 1, w, h).data;
    yield { ir: crop(p.ir), vis: crop(p.vi), noise: noise(0, 0, h, w), height: h, width: w };
  }
}
const { record } = await quantizeModelFolder(SRC, OUT, inputs(), {
  source: 'RoadScene training pairs',
  percentile: Number(process.env.PERCENTILE ?? 100),
  reduceRange: process.env.REDUCE_RANGE === '1',
  floatConvs: {
    first: Number(process.env.FLOAT_FIRST ?? 0),
    last: Number(process.env.FLOAT_LAST ?? 0),
  },
  log: (l) => process.stderr.write(`${l}\n`),
});
console.log(JSON.stringify(record));
