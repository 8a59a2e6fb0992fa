/**
 * @dif-fusion/train: the training engines of Dif-Fusion behind one interface
 * ({@link TrainingEngine}): the DDPM and the fusion head, each on ONNX Runtime training
 * graphs or on tfjs, chosen by name in `createDdpmEngine` / `createHeadEngine`. The data,
 * the random draws of a step, the loop and the checkpoints are the caller's (dif-train).
 */
export * from './ddpm-graph';
export * from './ddpm-variants';
export * from './denoiser';
export * from './engine';
export * from './engines';
export * from './fast-init';
export * from './feature-cache';
export * from './head-graph';
export {
  dropoutMasks,
  initWeights,
  OrtDdpmEngine,
  type OrtDdpmOptions,
  SetupStopped,
  secondsSince,
  type TestSlow,
  testSlowFromEnv,
} from './ort-ddpm';
export { OrtHeadEngine, type OrtHeadOptions } from './ort-head';
export { shardLossAndGrads, TfjsDdpmEngine, type TfjsDdpmOptions } from './tfjs-ddpm';
export { TfjsHeadEngine, type TfjsHeadOptions } from './tfjs-head';
export { type ShardResult, splitBatch, type WorkerInit, WorkerPool } from './workers';
