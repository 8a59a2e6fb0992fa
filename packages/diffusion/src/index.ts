/**
 * @dif-fusion/diffusion: the diffusion settings and backend-free maths (no tfjs). The
 * TensorFlow.js realisation is the `@dif-fusion/diffusion/tfjs` subpath.
 */
export * from './losses';
export * from './options';
export * from './parameterisation';
export * from './sampling';
export * from './step-features';
