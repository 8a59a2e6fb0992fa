import { defineConfig } from 'tsup';

const entry: Record<string, string> = {
  index: 'src/index.ts',
  cli: 'src/cli.ts',
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
