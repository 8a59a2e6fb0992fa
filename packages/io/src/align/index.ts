export * from './matrix';
export { blur, edgeFeature, orientationFeature, type Raster, resizeArea, toGray } from './raster';
export {
  gradientScore,
  type RasterPair,
  type RegisterOptions,
  type RegisterResult,
  refineTransform,
  registerPairs,
  stretchTransform,
} from './register';
export * from './rig';
export * from './warp';
