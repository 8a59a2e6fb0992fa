/**
 * FLOPs of the exported fusion graph: the UNet's and the head's forward code run on
 * @dif-fusion/onnx's `FlopOps` (shapes only) exactly as `buildFusionGraph` runs them on
 * `OnnxOps`.
 */

import type { FusionHead } from '@dif-fusion/fusion-head';
import { type FlopCount, FlopOps } from '@dif-fusion/onnx';
import type { UNet } from '@dif-fusion/unet';

export interface FusionFlops {
  /** All of the fusion graph: K pruned UNet passes + the head (matmul + element-wise). */
  total: FlopCount;
  /** The pruned UNet passes alone (all K steps). */
  unet: FlopCount;
  /** One full UNet pass (eps, no pruning) for one time step, for comparison. */
  fullPass: FlopCount;
  head: FlopCount;
}

/** Shapes of a network's parameters, as FlopOps takes them. */
function shapesOf(
  params: Array<{ name: string; shape: number[] }>,
): Map<string, { shape: number[] }> {
  return new Map(params.map((p) => [p.name, { shape: p.shape }]));
}

/**
 * FLOPs of the exported fusion graph for an `n x 3 x height x width` input: the UNet's
 * feature pass on K*N noisy inputs, stopped at the head's finest feature, then the head.
 */
export function fusionFlops(
  unet: UNet,
  head: FusionHead,
  shape: { n?: number; height: number; width: number },
): FusionFlops {
  const n = shape.n ?? 1;
  const k = head.config.time_steps.length;
  const { height: h, width: w } = shape;
  const u = new FlopOps(shapesOf(unet.params()));
  const min = Math.min(...head.requiredFeatureIndices());
  const { fd } = unet.features(u, [k * n, unet.config.in_channel, h, w], [k * n, 1], {
    minDecoderIndex: min,
  });
  const full = new FlopOps(shapesOf(unet.params()));
  unet.forward(full, [n, unet.config.in_channel, h, w], [n, 1]);
  const hd = new FlopOps(shapesOf(head.params()));
  const feats = Array.from({ length: k }, () => fd.map((s) => (s ? [n, s[1], s[2], s[3]] : s)));
  head.forward(hd, feats, { vis: [n, 3, h, w], ir: [n, 1, h, w] });
  return {
    total: {
      matmul: u.count.matmul + hd.count.matmul,
      elementwise: u.count.elementwise + hd.count.elementwise,
    },
    unet: u.count,
    fullPass: full.count,
    head: hd.count,
  };
}
