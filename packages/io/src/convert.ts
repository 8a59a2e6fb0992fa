/**
 * Float images and colour conversions.
 *
 * A {@link FloatImage} is planar CHW: the value of channel c at (x, y) is
 * `data[c * width * height + y * width + x]` — one image of an NCHW batch, what the models
 * eat. Model range is [-1, 1] (ToTensor() * 2 - 1 in the reference).
 */
import { DifFusionError } from './errors';
import { type Image, RGB2GRAY_WEIGHTS, validateImage } from './image';

export interface FloatImage {
  width: number;
  height: number;
  channels: number;
  /** Planar CHW, length channels * height * width. */
  data: Float32Array;
}

function maxOf(bitDepth: 8 | 16): number {
  return bitDepth === 16 ? 65535 : 255;
}

/** Integer image → planar float in [-1, 1]: v / max * 2 - 1 (max 255 or 65535). */
let lut8: Float32Array | undefined;
let lut16: Float32Array | undefined;
const toFloatTable = (max: number) =>
  Float32Array.from({ length: max + 1 }, (_, v) => (v / max) * 2 - 1);
const LUT8 = () => {
  lut8 ??= toFloatTable(255);
  return lut8;
};
const LUT16 = () => {
  lut16 ??= toFloatTable(65535);
  return lut16;
};

export function imageToFloat(img: Image): FloatImage {
  validateImage(img);
  const { width, height, channels, data } = img;
  const hw = width * height;
  const out = new Float32Array(hw * channels);
  // One entry per integer value (the same expression, so the same floats): the loop below is
  // run once per image, mostly before V8 has optimised it, and a table read is its cheapest body.
  const lut = img.bitDepth === 16 ? LUT16() : LUT8();
  for (let c = 0; c < channels; c++) {
    for (let i = 0; i < hw; i++) out[c * hw + i] = lut[data[i * channels + c]];
  }
  return { width, height, channels, data: out };
}

/**
 * Planar float in [-1, 1] → integer image: round(clamp((x + 1) / 2, 0, 1) * max), as the
 * reference's tensor2img. 1 or 3 channels (other counts are an error).
 */
export function floatToImage(f: FloatImage, bitDepth: 8 | 16 = 8): Image {
  const { width, height, channels, data } = f;
  if (channels !== 1 && channels !== 3) {
    throw new DifFusionError(`cannot make an image of ${channels} channels (1 or 3)`);
  }
  checkFloat(f);
  const hw = width * height;
  const max = maxOf(bitDepth);
  const out = bitDepth === 16 ? new Uint16Array(hw * channels) : new Uint8Array(hw * channels);
  for (let c = 0; c < channels; c++) {
    for (let i = 0; i < hw; i++) {
      const v = (data[c * hw + i] + 1) / 2;
      out[i * channels + c] = Math.round((v < 0 ? 0 : v > 1 ? 1 : Number.isNaN(v) ? 0 : v) * max);
    }
  }
  return { width, height, channels, bitDepth, data: out };
}

export function checkFloat(f: FloatImage): void {
  if (f.data.length !== f.width * f.height * f.channels) {
    throw new DifFusionError(
      `float image data has ${f.data.length} values, ${f.channels}x${f.height}x${f.width} needs ${f.width * f.height * f.channels}`,
    );
  }
}

/** Interleaved HWC → planar CHW (any numeric typed arrays). */
export function hwcToChw(
  src: ArrayLike<number>,
  width: number,
  height: number,
  channels: number,
  out: Float32Array = new Float32Array(width * height * channels),
): Float32Array {
  const hw = width * height;
  for (let c = 0; c < channels; c++)
    for (let i = 0; i < hw; i++) out[c * hw + i] = src[i * channels + c];
  return out;
}

/** Planar CHW → interleaved HWC. */
export function chwToHwc(
  src: ArrayLike<number>,
  width: number,
  height: number,
  channels: number,
  out: Float32Array = new Float32Array(width * height * channels),
): Float32Array {
  const hw = width * height;
  for (let c = 0; c < channels; c++)
    for (let i = 0; i < hw; i++) out[i * channels + c] = src[c * hw + i];
  return out;
}

/** The range float values are in, for colour conversions: chroma is centred at 0.5, 128 or 0. */
export type ValueRange = '0..1' | '0..255' | '-1..1';

/** δ, the chroma centre of a range: 0.5 for 0..1, 128 for 0..255 (as OpenCV), 0 for -1..1. */
function chromaCentre(range: ValueRange): number {
  switch (range) {
    case '0..1':
      return 0.5;
    case '0..255':
      return 128;
    case '-1..1':
      return 0;
  }
}

/**
 * BT.601 RGB → YCbCr as the fusion toolkits (SeAFusion/TarDAL/Dif-Fusion pipelines) use:
 * Y = 0.299 R + 0.587 G + 0.114 B, Cr = (R - Y) * 0.713 + δ, Cb = (B - Y) * 0.564 + δ, where
 * δ is the chroma centre of the range (0.5 for 0..1, 128 for 0..255 as OpenCV, 0 for -1..1 —
 * there Y is also in -1..1). Input and output are planar; output planes are Y, Cb, Cr.
 */
export function rgbToYCbCr(rgb: FloatImage, range: ValueRange = '0..1'): FloatImage {
  if (rgb.channels !== 3)
    throw new DifFusionError(`rgbToYCbCr needs 3 channels, got ${rgb.channels}`);
  checkFloat(rgb);
  const delta = chromaCentre(range);
  const hw = rgb.width * rgb.height;
  const d = rgb.data;
  const out = new Float32Array(hw * 3);
  for (let i = 0; i < hw; i++) {
    const r = d[i];
    const g = d[hw + i];
    const b = d[2 * hw + i];
    // the weights sum to 1, so Y is in the input's range whatever its offset
    const y = 0.299 * r + 0.587 * g + 0.114 * b;
    out[i] = y;
    out[hw + i] = (b - y) * 0.564 + delta;
    out[2 * hw + i] = (r - y) * 0.713 + delta;
  }
  return { ...rgb, data: out };
}

/**
 * Inverse of {@link rgbToYCbCr} with the toolkits' constants: R = Y + 1.403 (Cr - δ),
 * G = Y - 0.714 (Cr - δ) - 0.344 (Cb - δ), B = Y + 1.773 (Cb - δ). Input planes Y, Cb, Cr.
 * Not clamped (clamp when converting to an integer image).
 */
export function yCbCrToRgb(ycbcr: FloatImage, range: ValueRange = '0..1'): FloatImage {
  if (ycbcr.channels !== 3)
    throw new DifFusionError(`yCbCrToRgb needs 3 channels, got ${ycbcr.channels}`);
  checkFloat(ycbcr);
  const delta = chromaCentre(range);
  const hw = ycbcr.width * ycbcr.height;
  const d = ycbcr.data;
  const out = new Float32Array(hw * 3);
  for (let i = 0; i < hw; i++) {
    const y = d[i];
    const cb = d[hw + i] - delta;
    const cr = d[2 * hw + i] - delta;
    out[i] = y + 1.403 * cr;
    out[hw + i] = y - 0.714 * cr - 0.344 * cb;
    out[2 * hw + i] = y + 1.773 * cb;
  }
  return { ...ycbcr, data: out };
}

/**
 * MATLAB's rgb2gray on an 8-bit (or 16-bit) image: round(0.298936021293775 R +
 * 0.587043074451121 G + 0.114020904255103 B), 1 channel. Gray input is returned as is.
 */
export function rgb2gray(img: Image): Image {
  validateImage(img);
  if (img.channels === 1) return img;
  const n = img.width * img.height;
  const max = maxOf(img.bitDepth);
  const out = img.bitDepth === 16 ? new Uint16Array(n) : new Uint8Array(n);
  const [wr, wg, wb] = RGB2GRAY_WEIGHTS;
  const d = img.data;
  for (let i = 0; i < n; i++) {
    out[i] = Math.min(max, Math.round(wr * d[i * 3] + wg * d[i * 3 + 1] + wb * d[i * 3 + 2]));
  }
  return { ...img, channels: 1, data: out };
}

/** D65 reference white of skimage (CIE 1931 2°). */
export const D65_WHITE = [0.95047, 1.0, 1.08883] as const;

/**
 * sRGB → CIELAB (D65, 2°) exactly as skimage.color.rgb2lab: linearise sRGB (threshold 0.04045,
 * exponent 2.4), XYZ with skimage's matrix, divide by the white point, f(t) = cbrt(t) above
 * 0.008856 else 7.787 t + 16/116; L = 116 f(Y) - 16, a = 500 (f(X) - f(Y)), b = 200 (f(Y) - f(Z)).
 * Input: an 8/16-bit RGB {@link Image}, or a planar RGB {@link FloatImage} in 0..1.
 * Output: planar L, a, b as Float64Array (length 3 * width * height).
 */
export function rgbToLab(input: Image | FloatImage): Float64Array {
  const hw = input.width * input.height;
  if (input.channels !== 3)
    throw new DifFusionError(`rgbToLab needs 3 channels, got ${input.channels}`);
  const isInt = 'bitDepth' in input;
  const max = isInt ? maxOf(input.bitDepth) : 1;
  const out = new Float64Array(hw * 3);
  const get = (i: number, c: number) =>
    isInt ? input.data[i * 3 + c] / max : (input.data as Float32Array)[c * hw + i];
  const lin = (v: number) => (v > 0.04045 ? ((v + 0.055) / 1.055) ** 2.4 : v / 12.92);
  const f = (t: number) => (t > 0.008856 ? Math.cbrt(t) : 7.787 * t + 16 / 116);
  for (let i = 0; i < hw; i++) {
    const r = lin(get(i, 0));
    const g = lin(get(i, 1));
    const b = lin(get(i, 2));
    const x = (0.412453 * r + 0.35758 * g + 0.180423 * b) / D65_WHITE[0];
    const y = (0.212671 * r + 0.71516 * g + 0.072169 * b) / D65_WHITE[1];
    const z = (0.019334 * r + 0.119193 * g + 0.950227 * b) / D65_WHITE[2];
    const fx = f(x);
    const fy = f(y);
    const fz = f(z);
    out[i] = 116 * fy - 16;
    out[hw + i] = 500 * (fx - fy);
    out[2 * hw + i] = 200 * (fy - fz);
  }
  return out;
}
