import { defineConfig } from 'tsup';

export default defineConfig({
  // The library (loads the network packages, not tfjs) and the fusion-speed bench.
  entry: { index: 'src/index.ts', bench: 'src/bench.ts' },
  format: ['esm'],
  dts: { entry: { index: 'src/index.ts' } },
  sourcemap: true,
  clean: true,
  target: 'node20',
});
