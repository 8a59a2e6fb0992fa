/**
 * Fusion methods. Every method takes the same planar inputs the ONNX model takes — `ir`
 * [1,H,W] and `vis` [3,H,W], Float32 in [-1,1] — and returns the fused [3,H,W] in [-1,1], so
 * the classical baselines and the model run through exactly the same pipeline (padding,
 * tiling, encoding).
 */
import { rgbToYCbCr, yCbCrToRgb } from '@dif-fusion/io';

export const BASELINES = ['average', 'max', 'ycbcr-average', 'ycbcr-max'] as const;
export type Baseline = (typeof BASELINES)[number];
export const METHODS = ['model', ...BASELINES] as const;
export type Method = (typeof METHODS)[number];

export function isBaseline(m: string): m is Baseline {
  return (BASELINES as readonly string[]).includes(m);
}

/**
 * A classical baseline, pixel by pixel.
 * - `average`: (vis_c + ir) / 2 per channel; `max`: max(vis_c, ir) per channel.
 * - `ycbcr-average` / `ycbcr-max`: the visible image's Y (BT.601) is fused with the IR
 *   intensity (average / max), its Cb and Cr are kept, and the result goes back to RGB.
 */
export function fuseBaseline(
  method: Baseline,
  ir: Float32Array,
  vis: Float32Array,
  height: number,
  width: number,
): Float32Array {
  const n = height * width;
  if (ir.length !== n || vis.length !== 3 * n)
    throw new Error(
      `fuseBaseline: expected ir [1,${height},${width}] and vis [3,${height},${width}]`,
    );
  const out = new Float32Array(3 * n);
  if (method === 'average' || method === 'max') {
    const avg = method === 'average';
    for (let c = 0; c < 3; c++) {
      const o = c * n;
      for (let i = 0; i < n; i++) {
        const v = vis[o + i];
        const t = ir[i];
        out[o + i] = avg ? (v + t) * 0.5 : Math.max(v, t);
      }
    }
    return out;
  }
  // BT.601 YCbCr as the fusion toolkits use it (@dif-fusion/io), on [-1,1] values: the
  // visible Y is fused with the IR intensity, the visible Cb and Cr are kept.
  const avg = method === 'ycbcr-average';
  const ycc = rgbToYCbCr({ width, height, channels: 3, data: vis }, '-1..1');
  const y = ycc.data;
  for (let i = 0; i < n; i++) {
    const t = ir[i];
    y[i] = avg ? (y[i] + t) * 0.5 : Math.max(y[i], t);
  }
  const rgb = yCbCrToRgb(ycc, '-1..1').data;
  for (let i = 0; i < 3 * n; i++) {
    const v = rgb[i];
    out[i] = v < -1 ? -1 : Math.min(v, 1);
  }
  return out;
}
