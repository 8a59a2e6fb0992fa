/**
 * The slow pure-TypeScript steps of `dif-fuse serve` off the event loop: the metrics
 * (`evaluateFusion` of @dif-fusion/metrics, seconds for a few megapixels) and the automatic
 * registration of a rig's pair (`registerPairs` of @dif-fusion/io, a few seconds) each run in
 * a worker thread of their own, so the server keeps answering meanwhile. The thread loads the
 * package's built module (resolved from here, as Node resolves the dependency) and ends with
 * the call.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { RasterPair, RegisterResult } from '@dif-fusion/io';
import type { Image8, MetricValues } from '@dif-fusion/metrics';

// CommonJS (an eval'd worker): imports the ESM module by URL and calls one of its functions.
const SCRIPT = `
const { parentPort, workerData } = require('node:worker_threads');
import(workerData.module)
  .then((m) => parentPort.postMessage({ value: m[workerData.fn](...workerData.args) }))
  .catch((e) => parentPort.postMessage({ error: String((e && e.message) || e).split('\\n')[0] }));
`;

const urls = new Map<string, string>();
/** The built module of a dependency (its `import` export, whatever the resolve conditions). */
function builtModule(pkgName: string): string {
  let url = urls.get(pkgName);
  if (!url) {
    const pkg = createRequire(import.meta.url).resolve(`${pkgName}/package.json`);
    const exp = JSON.parse(readFileSync(pkg, 'utf8')).exports['.'];
    url = pathToFileURL(join(dirname(pkg), exp.import ?? exp.default)).href;
    urls.set(pkgName, url);
  }
  return url;
}

/**
 * The parent's Node options without its resolve conditions: the thread loads the built
 * modules (under vitest, `--conditions source` would send the built io's imports of its
 * workspace dependencies to their TypeScript sources).
 */
function threadExecArgv(): string[] {
  const out: string[] = [];
  const argv = process.execArgv;
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--conditions' || argv[i] === '-C') i++;
    else if (!argv[i].startsWith('--conditions=')) out.push(argv[i]);
  }
  return out;
}

/** `pkg.fn(...args)` in a worker thread of its own; errors are one line prefixed by `what`. */
function callInThread<T>(pkg: string, fn: string, args: unknown[], what: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(SCRIPT, {
      eval: true,
      execArgv: threadExecArgv(),
      workerData: { module: builtModule(pkg), fn, args },
    });
    let settled = false;
    worker.once('message', (m: { value?: T; error?: string }) => {
      settled = true;
      if (m.error === undefined) resolve(m.value as T);
      else reject(new Error(`${what}: ${m.error}`));
      void worker.terminate();
    });
    worker.once('error', (e) => {
      if (!settled) reject(e);
      settled = true;
    });
    worker.once('exit', (code) => {
      if (!settled) reject(new Error(`${what}: the worker thread stopped (exit code ${code})`));
      settled = true;
    });
  });
}

/** `evaluateFusion(ir, vis, fused)` in a worker thread of its own. */
export function evaluateInThread(ir: Image8, vis: Image8, fused: Image8): Promise<MetricValues> {
  return callInThread('@dif-fusion/metrics', 'evaluateFusion', [ir, vis, fused], 'metrics');
}

/** `registerPairs([pair])` in a worker thread of its own. */
export function registerInThread(pair: RasterPair): Promise<RegisterResult> {
  return callInThread('@dif-fusion/io', 'registerPairs', [[pair]], 'align');
}
