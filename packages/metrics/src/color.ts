/**
 * Colour fidelity: sRGB → CIELAB exactly as skimage.color.rgb2lab (D65, 2° observer, its
 * matrix and constants), and the mean per-pixel CIEDE2000 between two RGB images.
 *
 * CIEDE2000 itself comes from culori (maintained, checked against Sharma's test data); the
 * conversion is ours because culori's own sRGB → Lab uses different matrix constants than
 * skimage's, which moves small ΔE values past the reference tolerance.
 */
import { differenceCiede2000 } from 'culori/fn';
import { assertSameSize, type Image8, toRgb } from './image';

// skimage.color.colorconv.xyz_from_rgb and the D65 white point skimage uses.
const M = [
  [0.412453, 0.35758, 0.180423],
  [0.212671, 0.71516, 0.072169],
  [0.019334, 0.119193, 0.950227],
] as const;
const WHITE = [0.95047, 1, 1.08883] as const;

/** sRGB 8-bit code value → linear light, per skimage (threshold 0.04045). */
const LINEAR = (() => {
  const t = new Float64Array(256);
  for (let i = 0; i < 256; i++) {
    const v = i / 255;
    t[i] = v > 0.04045 ? ((v + 0.055) / 1.055) ** 2.4 : v / 12.92;
  }
  return t;
})();

function labF(t: number): number {
  return t > 0.008856 ? Math.cbrt(t) : 7.787 * t + 16 / 116;
}

/** Interleaved RGB (3 channels) → interleaved L*a*b* (Float64Array, 3 per pixel). */
export function rgbToLab(rgb: Uint8Array): Float64Array {
  const n = rgb.length / 3;
  const out = new Float64Array(n * 3);
  for (let i = 0; i < n; i++) {
    const r = LINEAR[rgb[3 * i]];
    const g = LINEAR[rgb[3 * i + 1]];
    const b = LINEAR[rgb[3 * i + 2]];
    const fx = labF((M[0][0] * r + M[0][1] * g + M[0][2] * b) / WHITE[0]);
    const fy = labF((M[1][0] * r + M[1][1] * g + M[1][2] * b) / WHITE[1]);
    const fz = labF((M[2][0] * r + M[2][1] * g + M[2][2] * b) / WHITE[2]);
    out[3 * i] = 116 * fy - 16;
    out[3 * i + 1] = 500 * (fx - fy);
    out[3 * i + 2] = 200 * (fy - fz);
  }
  return out;
}

const ciede2000 = differenceCiede2000();

/**
 * Mean CIEDE2000 (kL = kC = kH = 1) over corresponding pixels of two interleaved L*a*b*
 * planes; `reference` plays culori's "standard" colour (the formula is symmetric).
 */
export function meanCiede2000(reference: Float64Array, sample: Float64Array): number {
  if (reference.length !== sample.length) throw new Error('meanCiede2000: length mismatch');
  const n = reference.length / 3;
  // Two reused colour objects: culori reads plain {mode, l, a, b} objects.
  const std = { mode: 'lab65' as const, l: 0, a: 0, b: 0 };
  const smp = { mode: 'lab65' as const, l: 0, a: 0, b: 0 };
  let s = 0;
  for (let i = 0; i < n; i++) {
    std.l = reference[3 * i];
    std.a = reference[3 * i + 1];
    std.b = reference[3 * i + 2];
    smp.l = sample[3 * i];
    smp.a = sample[3 * i + 1];
    smp.b = sample[3 * i + 2];
    s += ciede2000(std, smp);
  }
  return s / n;
}

/**
 * ΔE: mean per-pixel CIEDE2000 between the fused and the visible image, both taken as sRGB
 * (gray images replicated to RGB, alpha ignored).
 */
export function deltaE(fused: Image8, visible: Image8): number {
  assertSameSize(fused, visible, 'DeltaE');
  return meanCiede2000(rgbToLab(toRgb(visible)), rgbToLab(toRgb(fused)));
}
