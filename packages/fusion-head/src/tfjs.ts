/**
 * @dif-fusion/fusion-head/tfjs: the fusion loss and head training on TensorFlow.js. Needs
 * `@dif-fusion/tfjs` and `@tensorflow/tfjs-core` installed (optional peer dependencies).
 */
export * from './loss';
export * from './train';
