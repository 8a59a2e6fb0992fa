/**
 * `@dif-fusion/onnx/train`: training on ONNX Runtime, knowing no network. A training graph
 * comes from running a network's one definition on `GradOps` (forward nodes + reverse-mode
 * gradient nodes; `finishTrainGraph`); `TrainSession` runs it; `AdamF32` updates the
 * Float32Array parameters. The DDPM's and the fusion head's graphs are @dif-fusion/train's.
 */
export * from '../grad/grad-ops';
export * from './adam';
export * from './threaded-session';
export * from './train-graph';
export * from './train-session';
