/**
 * @dif-fusion/diffusion/tfjs: `GaussianDiffusion` (losses, posterior, samplers, features), the
 * feature extractor and the learned-variance bound on TensorFlow.js. Needs
 * `@dif-fusion/tfjs` and `@tensorflow/tfjs-core` installed (optional peer dependencies).
 */
export * from './feature-extractor';
export * from './gaussian-diffusion';
export * from './learned-variance';
