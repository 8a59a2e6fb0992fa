import { defineConfig } from 'tsup';

export default defineConfig([
  {
    // The library: `.` (graph building, OnnxOps, runtime; no tfjs) and `./export`
    // (fusion/UNet export, which loads the network packages and with them tfjs-core).
    // train-worker: ThreadedTrainSession's worker thread, loaded by path.
    entry: {
      index: 'src/index.ts',
      export: 'src/export.ts',
      train: 'src/train/index.ts',
      'train-worker': 'src/train/train-worker.ts',
    },
    format: ['esm'],
    dts: { entry: { index: 'src/index.ts', export: 'src/export.ts', train: 'src/train/index.ts' } },
    sourcemap: true,
    clean: true,
    target: 'node20',
  },
  {
    // The bench, self-contained: workspace packages from their sources and tfjs-core
    // bundled in (its ESM files use extensionless imports Node cannot load directly).
    entry: { bench: 'src/bench.ts' },
    format: ['esm'],
    clean: false,
    target: 'node20',
    platform: 'node',
    noExternal: [/^@dif-fusion\//, /^@tensorflow\//],
    external: ['onnxruntime-node', 'protobufjs'],
    esbuildOptions(o) {
      o.conditions = ['source'];
    },
  },
]);
