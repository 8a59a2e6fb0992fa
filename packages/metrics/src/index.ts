/**
 * @dif-fusion/metrics: image fusion metrics as the Tang et al. "General Evaluation Metric"
 * toolkit defines them, plus ΔE (CIEDE2000) colour fidelity. Pure TypeScript on typed arrays.
 */
import { deltaE } from './color';
import { assertSameSize, type Image8, toGray } from './image';
import {
  averageGradient,
  correlationCoefficient,
  entropy,
  meanSquaredError,
  mutualInformation,
  nabf,
  psnrFromMse,
  qabf,
  scd,
  spatialFrequency,
  ssim,
  standardDeviation,
  vif,
} from './metrics';

export { deltaE, meanCiede2000, rgbToLab } from './color';
export { filterReplicate, filterValid, gaussian1d } from './filter';
export { assertSameSize, type Gray8, type Image8, RGB2GRAY_WEIGHTS, toGray, toRgb } from './image';
export {
  analysisNabf,
  averageGradient,
  correlationCoefficient,
  entropy,
  meanSquaredError,
  mutualInformation,
  nabf,
  nabfIntended,
  psnr,
  psnrFromMse,
  qabf,
  scd,
  spatialFrequency,
  ssim,
  ssimPair,
  standardDeviation,
  vif,
  vifp,
} from './metrics';

/** Metric names in report order. */
export const METRIC_NAMES = [
  'EN',
  'SD',
  'SF',
  'AG',
  'MI',
  'SCD',
  'VIF',
  'Qabf',
  'Nabf',
  'SSIM',
  'CC',
  'PSNR',
  'MSE',
  'DeltaE',
] as const;

export type MetricName = (typeof METRIC_NAMES)[number];
export type MetricValues = Record<MetricName, number>;

/** Metrics where a lower value is better; higher is better for the rest. */
export const LOWER_IS_BETTER: ReadonlySet<MetricName> = new Set<MetricName>([
  'MSE',
  'Nabf',
  'DeltaE',
]);

/**
 * Every metric of one fused image against its infrared and visible sources. Inputs are
 * 8-bit images of the same size with 1-4 interleaved channels; the gray metrics use MATLAB's
 * rgb2gray of each, ΔE uses the fused and visible colours.
 */
export function evaluateFusion(ir: Image8, vi: Image8, fused: Image8): MetricValues {
  assertSameSize(ir, fused, 'fused vs infrared');
  assertSameSize(vi, fused, 'fused vs visible');
  const a = toGray(ir);
  const b = toGray(vi);
  const f = toGray(fused);
  const mse = meanSquaredError(a, b, f);
  return {
    EN: entropy(f),
    SD: standardDeviation(f),
    SF: spatialFrequency(f),
    AG: averageGradient(f),
    MI: mutualInformation(a, b, f),
    SCD: scd(a, b, f),
    VIF: vif(a, b, f),
    Qabf: qabf(a, b, f),
    Nabf: nabf(a, b, f),
    SSIM: ssim(a, b, f),
    CC: correlationCoefficient(a, b, f),
    PSNR: psnrFromMse(mse),
    MSE: mse,
    DeltaE: deltaE(fused, vi),
  };
}
