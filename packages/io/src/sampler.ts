/**
 * Training sampler: seeded random crops (the same window in both images), random
 * horizontal and vertical flips, batched — the reference's FusionDataset 'train' split.
 * Images smaller than the crop are first upscaled as the reference's transform_augment does
 * (torchvision Resize(crop): the shorter side becomes `crop`, bilinear, aspect kept).
 */
import { Rng, type RngState } from '@dif-fusion/schedules';
import type { FloatImage } from './convert';
import { imageToFloat } from './convert';
import type { PairImages } from './dataset';
import { DifFusionError } from './errors';
import { cropFloat, flipHorizontal, flipVertical, resizeBilinear } from './geometry';
import type { Image } from './image';

export interface AugmentOptions {
  hflip?: boolean;
  vflip?: boolean;
}

export interface AugmentedPair {
  name: string;
  /** [1, crop, crop] in [-1, 1]. */
  ir: FloatImage;
  /** [3, crop, crop] in [-1, 1]. */
  vi: FloatImage;
  /** Crop window in the (possibly upscaled) image, and the flips applied. */
  x: number;
  y: number;
  scaled: boolean;
  hflip: boolean;
  vflip: boolean;
}

/** Size torchvision's Resize(size) gives: shorter side = size, the other int(size * long / short). */
export function resizeShorterSide(width: number, height: number, size: number): [number, number] {
  return width <= height
    ? [size, Math.trunc((size * height) / width)]
    : [Math.trunc((size * width) / height), size];
}

function cropInt(img: Image, x: number, y: number, w: number, h: number): Image {
  const c = img.channels;
  const out = img.bitDepth === 16 ? new Uint16Array(w * h * c) : new Uint8Array(w * h * c);
  for (let r = 0; r < h; r++) {
    const s = ((y + r) * img.width + x) * c;
    out.set(img.data.subarray(s, s + w * c), r * w * c);
  }
  return { width: w, height: h, channels: img.channels, bitDepth: img.bitDepth, data: out };
}

/**
 * One training sample. Random draws, in order: crop row y = int(H - crop + 1), column
 * x = int(W - crop + 1) (none when the image is exactly crop-sized), then hflip and vflip
 * each when uniform() > 0.5 (and enabled).
 */
export function augmentPair(
  pair: Pick<PairImages, 'name' | 'ir' | 'vi'>,
  crop: number,
  rng: Rng,
  options: AugmentOptions = {},
): AugmentedPair {
  const { ir, vi } = pair;
  if (ir.width !== vi.width || ir.height !== vi.height) {
    throw new DifFusionError(
      `${pair.name}: IR is ${ir.width}x${ir.height}, visible ${vi.width}x${vi.height}`,
    );
  }
  let W = vi.width;
  let H = vi.height;
  let irF: FloatImage;
  let viF: FloatImage;
  let x = 0;
  let y = 0;
  const scaled = W < crop || H < crop;
  const draw = () => {
    if (W !== crop || H !== crop) {
      y = rng.int(H - crop + 1);
      x = rng.int(W - crop + 1);
    }
  };
  if (scaled) {
    const [w2, h2] = resizeShorterSide(W, H, crop);
    irF = resizeBilinear(imageToFloat(ir), w2, h2);
    viF = resizeBilinear(imageToFloat(vi), w2, h2);
    W = w2;
    H = h2;
    draw();
    irF = cropFloat(irF, x, y, crop, crop);
    viF = cropFloat(viF, x, y, crop, crop);
  } else {
    draw();
    irF = imageToFloat(cropInt(ir, x, y, crop, crop));
    viF = imageToFloat(cropInt(vi, x, y, crop, crop));
  }
  const hflip = (options.hflip ?? true) && rng.uniform() > 0.5;
  const vflip = (options.vflip ?? true) && rng.uniform() > 0.5;
  if (hflip) {
    irF = flipHorizontal(irF);
    viF = flipHorizontal(viF);
  }
  if (vflip) {
    irF = flipVertical(irF);
    viF = flipVertical(viF);
  }
  return { name: pair.name, ir: irF, vi: viF, x, y, scaled, hflip, vflip };
}

/** Anything that hands out pairs by index (a PairDataset, or an in-memory list). */
export interface PairSource {
  readonly length: number;
  get(
    index: number,
  ): Promise<Pick<PairImages, 'name' | 'ir' | 'vi'>> | Pick<PairImages, 'name' | 'ir' | 'vi'>;
}

export interface SamplerOptions extends AugmentOptions {
  cropSize: number;
  batchSize: number;
  /** Seed of the sampler's own Rng (default 0), unless `rng` is given. */
  seed?: number;
  rng?: Rng;
  /** Shuffle the pair order every epoch (default true, as the reference's use_shuffle). */
  shuffle?: boolean;
}

/** A batch, NCHW planar float32 in [-1, 1]. */
export interface TrainingBatch {
  batchSize: number;
  cropSize: number;
  /** [B, 3, crop, crop]. */
  vis: Float32Array;
  /** [B, 1, crop, crop]. */
  ir: Float32Array;
  /** [B, 4, crop, crop]: visible then IR, as the reference's `img` (torch.cat([vis, ir])). */
  img: Float32Array;
  names: string[];
  /** Epoch of each sample (0-based). */
  epochs: number[];
}

export interface SamplerState {
  rng: RngState;
  epoch: number;
  position: number;
  order: number[];
}

/**
 * Endless seeded batches over a pair source: epoch-wise permutation (Fisher–Yates from the
 * Rng), then per-sample {@link augmentPair}. getState()/setState() resume exactly.
 */
export class TrainingSampler {
  private readonly source: PairSource;
  private readonly options: SamplerOptions;
  private rng: Rng;
  private epoch = 0;
  private position = 0;
  private order: number[] = [];

  constructor(source: PairSource, options: SamplerOptions) {
    if (source.length === 0) throw new DifFusionError('training sampler: the dataset has no pairs');
    if (!Number.isInteger(options.cropSize) || options.cropSize < 1) {
      throw new DifFusionError(`crop size must be a positive integer, got ${options.cropSize}`);
    }
    if (!Number.isInteger(options.batchSize) || options.batchSize < 1) {
      throw new DifFusionError(`batch size must be a positive integer, got ${options.batchSize}`);
    }
    this.source = source;
    this.options = options;
    this.rng = options.rng ?? new Rng(options.seed ?? 0);
    this.order = this.newOrder();
  }

  private newOrder(): number[] {
    const n = this.source.length;
    return (this.options.shuffle ?? true)
      ? this.rng.permutation(n)
      : Array.from({ length: n }, (_, i) => i);
  }

  /** Number of batches per epoch (rounded up; batches run across epoch boundaries). */
  get batchesPerEpoch(): number {
    return Math.ceil(this.source.length / this.options.batchSize);
  }

  async next(): Promise<TrainingBatch> {
    const { cropSize: c, batchSize: B } = this.options;
    const plane = c * c;
    const vis = new Float32Array(B * 3 * plane);
    const ir = new Float32Array(B * plane);
    const img = new Float32Array(B * 4 * plane);
    const names: string[] = [];
    const epochs: number[] = [];
    for (let b = 0; b < B; b++) {
      if (this.position >= this.order.length) {
        this.epoch++;
        this.position = 0;
        this.order = this.newOrder();
      }
      const idx = this.order[this.position++];
      epochs.push(this.epoch);
      const pair = await this.source.get(idx);
      const s = augmentPair(pair, c, this.rng, this.options);
      vis.set(s.vi.data, b * 3 * plane);
      ir.set(s.ir.data, b * plane);
      img.set(s.vi.data, b * 4 * plane);
      img.set(s.ir.data, b * 4 * plane + 3 * plane);
      names.push(s.name);
    }
    return { batchSize: B, cropSize: c, vis, ir, img, names, epochs };
  }

  getState(): SamplerState {
    return {
      rng: this.rng.getState(),
      epoch: this.epoch,
      position: this.position,
      order: [...this.order],
    };
  }

  setState(state: SamplerState): void {
    if (state.order.length !== this.source.length) {
      throw new DifFusionError(
        `sampler state is for ${state.order.length} pairs, the dataset has ${this.source.length}`,
      );
    }
    this.rng = Rng.fromState(state.rng);
    this.epoch = state.epoch;
    this.position = state.position;
    this.order = [...state.order];
  }
}
