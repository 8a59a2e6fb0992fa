/**
 * The metrics of `dif-fuse serve` off the event loop: each evaluation runs `evaluateFusion`
 * (@dif-fusion/metrics, pure TypeScript, seconds for a few megapixels) in a worker thread, so
 * the server keeps answering while it runs. The thread loads the metrics package's built
 * module (resolved from here, as Node resolves the dependency) and ends with the evaluation.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { Image8, MetricValues } from '@dif-fusion/metrics';

// CommonJS (an eval'd worker): imports the ESM metrics module by URL.
const SCRIPT = `
const { parentPort, workerData } = require('node:worker_threads');
import(workerData.module)
  .then((m) => parentPort.postMessage({ values: m.evaluateFusion(workerData.ir, workerData.vis, workerData.fused) }))
  .catch((e) => parentPort.postMessage({ error: String((e && e.message) || e).split('\\n')[0] }));
`;

let metricsUrl: string | undefined;
/** The built module of @dif-fusion/metrics (its `import` export, whatever the resolve conditions). */
function metricsModule(): string {
  if (!metricsUrl) {
    const pkg = createRequire(import.meta.url).resolve('@dif-fusion/metrics/package.json');
    const exp = JSON.parse(readFileSync(pkg, 'utf8')).exports['.'];
    metricsUrl = pathToFileURL(join(dirname(pkg), exp.import ?? exp.default)).href;
  }
  return metricsUrl;
}

/** `evaluateFusion(ir, vis, fused)` in a worker thread of its own. */
export function evaluateInThread(ir: Image8, vis: Image8, fused: Image8): Promise<MetricValues> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(SCRIPT, {
      eval: true,
      workerData: { module: metricsModule(), ir, vis, fused },
    });
    let settled = false;
    worker.once('message', (m: { values?: MetricValues; error?: string }) => {
      settled = true;
      if (m.values) resolve(m.values);
      else reject(new Error(`metrics: ${m.error}`));
      void worker.terminate();
    });
    worker.once('error', (e) => {
      if (!settled) reject(e);
      settled = true;
    });
    worker.once('exit', (code) => {
      if (!settled) reject(new Error(`metrics: the worker thread stopped (exit code ${code})`));
      settled = true;
    });
  });
}
