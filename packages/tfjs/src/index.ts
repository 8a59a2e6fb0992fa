/**
 * @dif-fusion/tfjs: the TensorFlow.js realisation of the @dif-fusion/nn spec — `TfOps`,
 * parameters by official name (`TfParamStore`), Adam, fast convolution gradients for wasm,
 * and the backend selection (`useBackend`).
 */
export * from './adam';
export * from './backends';
export * from './batch-stats';
export * from './conv';
export * from './fast-conv';
export * from './param-store';
export * from './tf-ops';
export * from './train-ops';
