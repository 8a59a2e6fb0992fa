/**
 * @dif-fusion/diffusion/tfjs: `GaussianDiffusion` (losses, posterior, samplers, features), the
 * feature extractor on TensorFlow.js (the losses they run are ./losses.ts, on any `Ops`). Needs
 * `@dif-fusion/tfjs` and `@tensorflow/tfjs-core` installed (optional peer dependencies).
 */
export * from './feature-extractor';
export * from './gaussian-diffusion';
