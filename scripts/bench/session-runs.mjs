// Session creation, first run and warm runs of model folders at 640x480, alternated ROUNDS
// times in one process each (e.g. fp32 against its int8 export):
//   ROUNDS=3 node scripts/bench/session-runs.mjs models/default /tmp/int8
// Prints per folder the median of: create ms, first run ms, warm run ms (median of 3).
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

const dirs = process.argv.slice(2);
if (process.env.BENCH_CHILD) {
  const { ort } = await import('../../packages/onnx/dist/index.js');
  const t0 = performance.now();
  const s = await ort.InferenceSession.create(join(dirs[0], 'model.onnx'), {
    graphOptimizationLevel: 'all',
    enableMemPattern: false,
    logSeverityLevel: 3,
  });
  const create = performance.now() - t0;
  const W = 640;
  const H = 480;
  const wave = (n, f) => Float32Array.from({ length: n }, (_, i) => Math.sin(i * f) * 0.8);
  const feeds = {
    ir: new ort.Tensor('float32', wave(H * W, 0.37), [1, 1, H, W]),
    vis: new ort.Tensor('float32', wave(3 * H * W, 0.11), [1, 3, H, W]),
    noise: new ort.Tensor('float32', wave(4 * H * W, 0.53), [1, 1, 4, H, W]),
  };
  const runs = [];
  for (let k = 0; k < 4; k++) {
    const t = performance.now();
    await s.run(feeds);
    runs.push(performance.now() - t);
  }
  const warm = runs.slice(1).sort((a, b) => a - b)[1];
  console.log(JSON.stringify({ create, first: runs[0], warm }));
} else {
  if (dirs.length === 0) throw new Error('usage: session-runs.mjs MODEL_DIR [MODEL_DIR...]');
  const rounds = Number(process.env.ROUNDS ?? 3);
  const by = new Map(dirs.map((d) => [d, []]));
  for (let r = 0; r < rounds; r++)
    for (const d of dirs) {
      const p = spawnSync(process.execPath, [process.argv[1], d], {
        env: { ...process.env, BENCH_CHILD: '1' },
        encoding: 'utf8',
      });
      if (p.status !== 0) throw new Error(p.stderr);
      by.get(d).push(JSON.parse(p.stdout.trim().split('\n').at(-1)));
    }
  const med = (a) => [...a].sort((x, y) => x - y)[a.length >> 1];
  console.log('| model | create ms | first run ms | warm run ms |');
  console.log('| --- | --- | --- | --- |');
  for (const [d, rows] of by)
    console.log(
      `| ${d} | ${med(rows.map((r) => r.create)).toFixed(0)} | ${med(rows.map((r) => r.first)).toFixed(0)} | ${med(rows.map((r) => r.warm)).toFixed(0)} |`,
    );
}
