/**
 * Dif-Fusion's fusion loss (official models/fs_loss.py, from SeAFusion), written once on
 * `Ops` (TensorFlow.js trains through `fusionLoss` of the tfjs subpath, the ONNX head training
 * graph through GradOps; both run this definition):
 *
 *   loss_in   = mean |F - max(V, I)|
 *   loss_grad = mean |S(F) - max(S(V), S(I))|,  S(x) = |sobel_x * x| + |sobel_y * x| per channel
 *   loss      = loss_in + alpha * loss_grad (+ colorWeight * loss_color, off by default)
 *
 * with the infrared image broadcast to the visible image's channels and zero padding 1 for
 * the Sobel filters, or, with `space: 'luma'` (dif-fusion's addition, for heads that change
 * lightness only), the same two terms on BT.601 luma Y(x) = 0.299 R + 0.587 G + 0.114 B:
 *
 *   loss_in   = mean |Y(F) - max(Y(V), I)|
 *   loss_grad = mean |S(Y(F)) - max(S(Y(V)), S(I))|
 *
 * The per-channel target max(V_c, I) lifts every channel of a saturated pixel that is darker
 * than the infrared, so for a red tail light (R high, G and B low) it asks for much more
 * lightness than the pixel's luma warrants; the luma target asks for exactly the lightness of
 * ycbcr-max (max(Y(V), I)), which is what keeps colour fidelity (CIEDE2000) close to it.
 * Other targets (`salient`, ./target.ts) are computed outside and passed in.
 */
import type { Ops } from '@dif-fusion/nn';
import { SOBEL_X, SOBEL_Y } from './sobel';
import { LUMA_WEIGHTS } from './target';

/**
 * |sobel_x * x| + |sobel_y * x| of every channel of an image `[N, channels, H, W]`, zero
 * padding 1 (same size out); the signs do not matter after the absolute value.
 */
export function sobelMagnitude<T>(ops: Ops<T>, x: T, channels: number): T {
  const per = (k: readonly number[]) => {
    const w = new Float32Array(9 * channels);
    for (let i = 0; i < channels; i++) w.set(k, 9 * i);
    return ops.abs(ops.constConv(x, w, [channels, 1, 3, 3], { groups: channels, padding: 1 }));
  };
  return ops.add(per(SOBEL_X), per(SOBEL_Y));
}

/** BT.601 chroma (Cb, Cr) of an RGB image, without the offset (it cancels in L1): [N,2,H,W]. */
export function chroma<T>(ops: Ops<T>, x: T): T {
  const m = Float32Array.from([-0.168736, -0.331264, 0.5, 0.5, -0.418688, -0.081312]);
  return ops.constConv(x, m, [2, 3, 1, 1]);
}

/** BT.601 luma Y = 0.299 R + 0.587 G + 0.114 B of an RGB image: [N,1,H,W]. */
export function luma<T>(ops: Ops<T>, x: T): T {
  return ops.constConv(x, Float32Array.from(LUMA_WEIGHTS), [1, 3, 1, 1]);
}

/** What {@link fusionLossTerms} reads (images `[N,C,H,W]` in [-1, 1]). */
export interface FusionLossArgs<T> {
  /** Visible `[N,3,H,W]`. */
  vis: T;
  /** The visible (and fused) image's channels (default 3; rgb space only). */
  visChannels?: number;
  /** Infrared `[N,1,H,W]` (or `[N,3,H,W]` with irChannels 3, rgb space). */
  ir: T;
  /** The infrared's channels (default 1: broadcast to the visible image's). */
  irChannels?: number;
  /** The head's fused image `[N,3,H,W]` (the loss is differentiable with respect to it). */
  fused: T;
  alpha: number;
  colorWeight: number;
  space: 'rgb' | 'luma';
  /**
   * Targets computed outside (`[N,C,H,W]`, C = 1 in luma space, else 3), e.g. the `salient`
   * target of ./target.ts; absent: the official max(V, I) and max(S(V), S(I)).
   */
  target?: { intensity: T; gradient: T };
}

export interface FusionLossTerms<T> {
  /** Weighted total (scalar). */
  loss: T;
  lossIn: T;
  lossGrad: T;
  /** Present when colorWeight > 0. */
  lossColor?: T;
}

/** The fusion loss and its terms (see the module comment). */
export function fusionLossTerms<T>(ops: Ops<T>, a: FusionLossArgs<T>): FusionLossTerms<T> {
  const lum = a.space === 'luma';
  const c = lum ? 1 : (a.visChannels ?? 3);
  const fs = lum ? luma(ops, a.fused) : a.fused;
  let target = a.target?.intensity;
  let gradTarget = a.target?.gradient;
  if (!target || !gradTarget) {
    // The targets carry no gradient; the infrared broadcast to c channels.
    const vs = lum ? luma(ops, a.vis) : a.vis;
    const ic = a.irChannels ?? 1;
    const wide = (x: T) => (ic === c ? x : ops.concatChannels(new Array<T>(c).fill(x)));
    target = ops.max(vs, wide(a.ir));
    gradTarget = ops.max(sobelMagnitude(ops, vs, c), wide(sobelMagnitude(ops, a.ir, ic)));
  }
  const lossIn = ops.meanAll(ops.abs(ops.sub(fs, target)));
  const lossGrad = ops.meanAll(ops.abs(ops.sub(sobelMagnitude(ops, fs, c), gradTarget)));
  let loss = ops.add(lossIn, ops.scale(lossGrad, a.alpha));
  if (!(a.colorWeight > 0)) return { loss, lossIn, lossGrad };
  const lossColor = ops.meanAll(ops.abs(ops.sub(chroma(ops, a.fused), chroma(ops, a.vis))));
  loss = ops.add(loss, ops.scale(lossColor, a.colorWeight));
  return { loss, lossIn, lossGrad, lossColor };
}
