/**
 * `@dif-fusion/onnx/train`: training on ONNX Runtime. Training graphs come from the
 * networks' one definition run on `GradOps` (forward nodes + reverse-mode gradient nodes);
 * `TrainSession` runs them; `AdamF32` updates the Float32Array parameters.
 */
export * from '../grad/grad-ops';
export * from './adam';
export * from './ddpm-graph';
export * from './head-graph';
export * from './threaded-session';
export * from './train-session';
