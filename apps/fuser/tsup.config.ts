import { defineConfig } from 'tsup';

export default defineConfig({
  // index: the programmatic API; cli: the `dif-fuse` bin (tsup keeps its shebang and makes it executable).
  entry: ['src/index.ts', 'src/cli.ts'],
  format: ['esm'],
  dts: { entry: 'src/index.ts' },
  sourcemap: true,
  clean: true,
  target: 'node20',
});
