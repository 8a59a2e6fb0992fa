/**
 * Geometry on planar float images: crop, flips, bilinear resize, reflect padding to a
 * multiple of N and cropping back.
 */
import { checkFloat, type FloatImage } from './convert';
import { DifFusionError } from './errors';

/** Crop a window (x, y, width, height) out of a planar image. */
export function cropFloat(
  img: FloatImage,
  x: number,
  y: number,
  width: number,
  height: number,
): FloatImage {
  checkFloat(img);
  if (
    x < 0 ||
    y < 0 ||
    width <= 0 ||
    height <= 0 ||
    x + width > img.width ||
    y + height > img.height
  ) {
    throw new DifFusionError(
      `crop ${width}x${height} at (${x}, ${y}) does not fit in a ${img.width}x${img.height} image`,
    );
  }
  const out = new Float32Array(img.channels * width * height);
  const hw = img.width * img.height;
  for (let c = 0; c < img.channels; c++) {
    for (let r = 0; r < height; r++) {
      const s = c * hw + (y + r) * img.width + x;
      out.set(img.data.subarray(s, s + width), c * width * height + r * width);
    }
  }
  return { width, height, channels: img.channels, data: out };
}

/** Mirror left-right. */
export function flipHorizontal(img: FloatImage): FloatImage {
  const { width: w, height: h, channels } = img;
  const out = new Float32Array(img.data.length);
  for (let c = 0; c < channels; c++) {
    for (let y = 0; y < h; y++) {
      const row = c * w * h + y * w;
      for (let x = 0; x < w; x++) out[row + x] = img.data[row + w - 1 - x];
    }
  }
  return { ...img, data: out };
}

/** Mirror top-bottom. */
export function flipVertical(img: FloatImage): FloatImage {
  const { width: w, height: h, channels } = img;
  const out = new Float32Array(img.data.length);
  for (let c = 0; c < channels; c++) {
    for (let y = 0; y < h; y++) {
      const s = c * w * h + (h - 1 - y) * w;
      out.set(img.data.subarray(s, s + w), c * w * h + y * w);
    }
  }
  return { ...img, data: out };
}

/**
 * Bilinear resize with half-pixel centres (PIL / torchvision Resize for upscaling,
 * OpenCV INTER_LINEAR, align_corners = false); edges clamp.
 */
export function resizeBilinear(img: FloatImage, width: number, height: number): FloatImage {
  checkFloat(img);
  if (!(width > 0 && height > 0 && Number.isInteger(width) && Number.isInteger(height))) {
    throw new DifFusionError(`cannot resize to ${width}x${height}`);
  }
  const { width: sw, height: sh, channels } = img;
  const out = new Float32Array(channels * width * height);
  const sx = sw / width;
  const sy = sh / height;
  const x0 = new Int32Array(width);
  const x1 = new Int32Array(width);
  const fx = new Float64Array(width);
  for (let x = 0; x < width; x++) {
    const u = Math.min(Math.max((x + 0.5) * sx - 0.5, 0), sw - 1);
    x0[x] = Math.floor(u);
    x1[x] = Math.min(x0[x] + 1, sw - 1);
    fx[x] = u - x0[x];
  }
  for (let y = 0; y < height; y++) {
    const v = Math.min(Math.max((y + 0.5) * sy - 0.5, 0), sh - 1);
    const y0 = Math.floor(v);
    const y1 = Math.min(y0 + 1, sh - 1);
    const fy = v - y0;
    for (let c = 0; c < channels; c++) {
      const base = c * sw * sh;
      const r0 = base + y0 * sw;
      const r1 = base + y1 * sw;
      const o = c * width * height + y * width;
      for (let x = 0; x < width; x++) {
        const a = img.data[r0 + x0[x]] * (1 - fx[x]) + img.data[r0 + x1[x]] * fx[x];
        const b = img.data[r1 + x0[x]] * (1 - fx[x]) + img.data[r1 + x1[x]] * fx[x];
        out[o + x] = a * (1 - fy) + b * fy;
      }
    }
  }
  return { width, height, channels, data: out };
}

/** Index into 0..n-1 reflected like numpy's 'reflect' mode (edge not repeated). */
export function reflectIndex(i: number, n: number): number {
  if (n === 1) return 0;
  const period = 2 * (n - 1);
  const m = ((i % period) + period) % period; // never -0
  return m < n ? m : period - m;
}

export interface Padding {
  top: number;
  left: number;
  bottom: number;
  right: number;
}

export interface PaddedImage {
  image: FloatImage;
  /** What was added; pass to {@link unpad}. */
  padding: Padding;
  /** The size before padding. */
  originalWidth: number;
  originalHeight: number;
}

/**
 * Reflect-pad so width and height become multiples of `multiple` (the UNet needs
 * 2^(levels-1)). Padding goes to the bottom and right by default, or is split evenly
 * (`center: true`, extra pixel bottom/right). Crop back with {@link unpad}.
 */
export function padToMultiple(
  img: FloatImage,
  multiple: number,
  options: { center?: boolean } = {},
): PaddedImage {
  checkFloat(img);
  if (!Number.isInteger(multiple) || multiple < 1) {
    throw new DifFusionError(`pad multiple must be a positive integer, got ${multiple}`);
  }
  const W = Math.ceil(img.width / multiple) * multiple;
  const H = Math.ceil(img.height / multiple) * multiple;
  const dw = W - img.width;
  const dh = H - img.height;
  const left = options.center ? Math.floor(dw / 2) : 0;
  const top = options.center ? Math.floor(dh / 2) : 0;
  const padding = { top, left, bottom: dh - top, right: dw - left };
  return {
    image: padReflect(img, padding),
    padding,
    originalWidth: img.width,
    originalHeight: img.height,
  };
}

/** Reflect-pad by the given amounts (numpy 'reflect'; works for pads larger than the image). */
export function padReflect(img: FloatImage, p: Padding): FloatImage {
  const { width: w, height: h, channels } = img;
  const W = w + p.left + p.right;
  const H = h + p.top + p.bottom;
  if (p.left === 0 && p.right === 0 && p.top === 0 && p.bottom === 0) {
    return { ...img, data: img.data.slice() };
  }
  const out = new Float32Array(channels * W * H);
  const xs = new Int32Array(W);
  for (let x = 0; x < W; x++) xs[x] = reflectIndex(x - p.left, w);
  for (let c = 0; c < channels; c++) {
    for (let y = 0; y < H; y++) {
      const sr = c * w * h + reflectIndex(y - p.top, h) * w;
      const o = c * W * H + y * W;
      for (let x = 0; x < W; x++) out[o + x] = img.data[sr + xs[x]];
    }
  }
  return { width: W, height: H, channels, data: out };
}

/** Crop a padded image back to its original size. */
export function unpad(
  img: FloatImage,
  padded: Pick<PaddedImage, 'padding' | 'originalWidth' | 'originalHeight'>,
): FloatImage {
  return cropFloat(
    img,
    padded.padding.left,
    padded.padding.top,
    padded.originalWidth,
    padded.originalHeight,
  );
}
