/** An 8-bit image with interleaved channels (1 gray, 2 gray+alpha, 3 RGB, 4 RGBA), row-major. */
export interface Image8 {
  data: Uint8Array | Uint8ClampedArray;
  width: number;
  height: number;
  channels: number;
}

/** A single-channel 8-bit image, row-major. */
export interface Gray8 {
  data: Uint8Array;
  width: number;
  height: number;
}

/** MATLAB's rgb2gray weights (Rec.601 luma, as MATLAB and Octave spell them). */
export const RGB2GRAY_WEIGHTS = [0.298936021293775, 0.587043074451121, 0.114020904255103] as const;

/**
 * MATLAB `rgb2gray` on a uint8 image: weighted sum in double, rounded back to uint8.
 * One- and two-channel images are taken as already gray (alpha dropped); a fourth channel
 * (alpha) is ignored.
 */
export function toGray(img: Image8): Gray8 {
  const { width, height, channels, data } = img;
  const n = width * height;
  if (data.length < n * channels)
    throw new Error(`image data too short for ${width}x${height}x${channels}`);
  const out = new Uint8Array(n);
  if (channels <= 2) {
    for (let i = 0; i < n; i++) out[i] = data[i * channels];
    return { data: out, width, height };
  }
  const [wr, wg, wb] = RGB2GRAY_WEIGHTS;
  for (let i = 0, j = 0; i < n; i++, j += channels) {
    out[i] = Math.round(wr * data[j] + wg * data[j + 1] + wb * data[j + 2]);
  }
  return { data: out, width, height };
}

/** Widens an image to interleaved RGB (gray replicated, alpha dropped). */
export function toRgb(img: Image8): Uint8Array {
  const { width, height, channels, data } = img;
  const n = width * height;
  if (channels === 3 && data.length === n * 3)
    return data instanceof Uint8Array ? data : new Uint8Array(data);
  const out = new Uint8Array(n * 3);
  for (let i = 0, j = 0; i < n; i++, j += channels) {
    if (channels >= 3) {
      out[i * 3] = data[j];
      out[i * 3 + 1] = data[j + 1];
      out[i * 3 + 2] = data[j + 2];
    } else {
      out[i * 3] = out[i * 3 + 1] = out[i * 3 + 2] = data[j];
    }
  }
  return out;
}

export function assertSameSize(
  a: { width: number; height: number },
  b: { width: number; height: number },
  what: string,
): void {
  if (a.width !== b.width || a.height !== b.height)
    throw new Error(`${what}: size mismatch ${a.width}x${a.height} vs ${b.width}x${b.height}`);
}
