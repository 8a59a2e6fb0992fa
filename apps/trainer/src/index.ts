/** @dif-fusion/trainer: the `dif-train` CLI and its training functions. */

export { Adam } from '@dif-fusion/tfjs';
export * from './checkpoint';
export {
  type DdpmConfig,
  DEFAULT_DDPM_CONFIG,
  DEFAULT_HEAD_CONFIG,
  type HeadTrainConfig,
  loadDdpmConfig,
  loadHeadConfig,
  parseJsonWithComments,
} from './config';
export { type DdpmTrainOptions, type TrainResult, trainDdpm } from './ddpm';
export { type HeadTrainOptions, trainHead } from './head-train';
export {
  type CliIo,
  createProgram,
  main,
  registerDdpmCommand,
  registerHeadCommand,
} from './program';
