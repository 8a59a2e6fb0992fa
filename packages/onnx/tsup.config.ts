import { defineConfig } from 'tsup';

export default defineConfig({
  // The library: `.` (graph building, OnnxOps, runtime, model folders; no tfjs) and `./train`
  // (GradOps, training sessions, Adam). train-worker: ThreadedTrainSession's worker thread,
  // loaded by path.
  entry: {
    index: 'src/index.ts',
    train: 'src/train/index.ts',
    'train-worker': 'src/train/train-worker.ts',
  },
  format: ['esm'],
  dts: { entry: { index: 'src/index.ts', train: 'src/train/index.ts' } },
  sourcemap: true,
  clean: true,
  target: 'node20',
});
