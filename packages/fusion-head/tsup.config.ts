import { defineConfig } from 'tsup';

export default defineConfig({
  // `.`: no tfjs; `./tfjs`: the TensorFlow.js realisation (optional peer dependencies).
  entry: { index: 'src/index.ts', tfjs: 'src/tfjs.ts' },
  format: ['esm'],
  dts: true,
  sourcemap: true,
  clean: true,
  target: 'node20',
});
