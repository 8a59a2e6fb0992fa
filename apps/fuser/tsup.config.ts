import { defineConfig } from 'tsup';

export default defineConfig({
  // index: the programmatic API; cli: the `dif-fuse` bin (tsup keeps its shebang and makes it executable).
  // queue-processor: the sandboxed processor `dif-fuse worker` forks (BullMQ loads it by path).
  entry: {
    index: 'src/index.ts',
    cli: 'src/cli.ts',
    'queue-processor': 'src/queue/processor.ts',
  },
  format: ['esm'],
  dts: { entry: 'src/index.ts' },
  sourcemap: true,
  clean: true,
  target: 'node20',
});
