import { defineConfig } from 'tsup';

// worker.js is loaded by path (worker_threads).
const entry: Record<string, string> = {
  index: 'src/index.ts',
  cli: 'src/cli.ts',
  worker: 'src/worker.ts',
  bench: 'src/bench.ts',
};

export default defineConfig({
  entry,
  format: ['esm'],
  dts: { entry: { index: 'src/index.ts' } },
  sourcemap: true,
  clean: true,
  target: 'node20',
});
