/**
 * @dif-fusion/fuser — programmatic API of `dif-fuse`. The job queue (BullMQ, ioredis: optional
 * peer dependencies) is the `@dif-fusion/fuser/queue` subpath.
 */
export { FuseError } from './errors';
export {
  type EvalOptions,
  type EvalResult,
  registerEvalCommand,
  runEval,
} from './eval/index';
export {
  fuseImages,
  modelMemory,
  type OpenedFuser,
  type OpenOptions,
  openFuser,
  sessionCacheDir,
} from './fuse';
export {
  OUTPUT_EXTENSIONS,
  outputFormat,
  type Planar,
  readInfrared,
  readVisible,
  sideBySide,
  writeImage,
} from './images';
export {
  BASELINES,
  type Baseline,
  fuseBaseline,
  isBaseline,
  METHODS,
  type Method,
} from './methods';
export { checkModelDir, defaultModelCandidates, defaultModelDir, resolveModelDir } from './model';
export {
  AUTO_TILE_PIXELS,
  autoTile,
  cellNoise,
  cropPlanes,
  DEFAULT_MEMORY_BUDGET,
  DEFAULT_OVERLAP,
  DEFAULT_TILE,
  type Fuser,
  fusePlanar,
  MIN_AUTO_TILE,
  NOISE_CELL,
  planTiles,
  reflectPad,
  type TilingOptions,
} from './pipeline';
export { buildProgram, main } from './program';
export { isVideoPath, probeVideo, type VideoInfo } from './video/ffmpeg';
export { type PairBy, type Pairing, pairFrames } from './video/pairing';
export { isVideoJob, runVideo, type VideoOptions, type VideoResult } from './video/run';
