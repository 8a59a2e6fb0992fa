import { defineConfig } from 'tsup';

// worker.js is loaded by path (worker_threads): the data-parallel tfjs DDPM engine's threads.
export default defineConfig({
  entry: { index: 'src/index.ts', worker: 'src/worker.ts' },
  format: ['esm'],
  dts: { entry: { index: 'src/index.ts' } },
  sourcemap: true,
  clean: true,
  target: 'node20',
});
