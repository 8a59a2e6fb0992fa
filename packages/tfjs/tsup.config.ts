import { defineConfig } from 'tsup';

export default defineConfig({
  entry: ['src/index.ts'],
  format: ['esm'],
  dts: true,
  sourcemap: true,
  clean: true,
  target: 'node20',
  // tfjs-core registers no gradients by itself (the @tensorflow/tfjs bundle does), and its
  // dist/register_all_gradients.js is ESM with extension-less imports that Node cannot
  // load: bundle that one module (and the tfjs-core internals it imports) into our dist.
  // The engine and the gradient registry live on globalThis, so the registrations reach
  // the @tensorflow/tfjs-core every other package imports.
  noExternal: [/register_all_gradients/],
});
