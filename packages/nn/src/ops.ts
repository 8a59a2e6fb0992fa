/**
 * The operations every network in dif-fusion is written against.
 *
 * A network is defined once, as code calling these methods. Two realisations exist:
 * - `TfOps` (this package) runs them on TensorFlow.js tensors, for training and tests;
 * - `OnnxOps` (@dif-fusion/onnx) emits ONNX nodes, for export and fast inference.
 *
 * Tensors are opaque handles (`T`). Image tensors are logically `[N, C, H, W]`; an
 * implementation picks its physical layout (TfOps stores NHWC, OnnxOps NCHW), so model
 * code never reshapes or transposes images itself. Vectors are `[N, F]`.
 * Parameters are fetched by their PyTorch `state_dict` key with `param(name)`; each
 * implementation stores them in whatever layout it needs.
 */
/**
 * The statistics one BatchNorm2d site computed from its training batch: per-channel mean
 * and biased variance over N, H, W (`count` = N*H*W values each). The trainer turns them
 * into the running-statistics update (see `updateRunningStats`).
 */
export interface BatchStat<T> {
  /** The BatchNorm2d module's state_dict prefix (e.g. `ups.0.model1.0`). */
  site: string;
  mean: T;
  variance: T;
  count: number;
}

export interface Ops<T> {
  /** Which realisation this is. */
  readonly kind: 'tf' | 'onnx';
  /** Training mode enables dropout. */
  readonly training: boolean;

  /** A parameter by its official PyTorch state_dict key (without `denoise_fn.`). */
  param(name: string): T;

  /** 2-D convolution, PyTorch semantics: weight `[O, I, kh, kw]`, symmetric zero padding. */
  conv2d(x: T, weight: T, bias: T | null, options?: { stride?: number; padding?: number }): T;
  /** Fully connected layer on vectors `[N, F]`: weight `[out, in]` (PyTorch layout). */
  linear(x: T, weight: T, bias: T | null): T;
  /** GroupNorm over an image tensor (PyTorch nn.GroupNorm, affine). */
  groupNorm(x: T, groups: number, weight: T, bias: T, eps?: number): T;

  /**
   * nn.BatchNorm2d (affine): y = (x - mean) / sqrt(var + eps) * weight + bias per channel.
   * With `running` (eval mode) mean and var are the running statistics; without (training
   * mode) they are the batch's mean and biased variance over N, H, W, and a training
   * realisation appends them to `batchStats` under `site`.
   */
  batchNorm2d(
    x: T,
    weight: T,
    bias: T,
    running: { mean: T; variance: T } | null,
    options: { site: string; eps?: number },
  ): T;
  /** Batch statistics of the training-mode BatchNorm2d calls, in call order. */
  readonly batchStats?: BatchStat<T>[];
  /** nn.AvgPool2d(2, stride=2): the mean of each 2x2 block (H and W even). */
  avgPool2x2(x: T): T;

  /** Element-wise, same shape. */
  add(a: T, b: T): T;
  mul(a: T, b: T): T;
  max(a: T, b: T): T;
  /** x * s for a constant s. */
  scale(x: T, s: number): T;
  /** a * x + b * y for constants a, b (used by qSample: level*x + sqrt(1-level^2)*noise). */
  axpby(a: number, x: T, b: number, y: T): T;

  swish(x: T): T;
  relu(x: T): T;
  leakyRelu(x: T, slope: number): T;
  sigmoid(x: T): T;
  tanh(x: T): T;
  dropout(x: T, rate: number): T;

  /** image `[N,C,H,W]` + vector `[N,C]` broadcast over H, W. */
  addChannel(x: T, v: T): T;
  /** image `[N,C,H,W]` * vector `[N,C]` broadcast over H, W. */
  mulChannel(x: T, v: T): T;
  /** image `[N,C,H,W]` * single-channel image `[N,1,H,W]` broadcast over C. */
  mulSpatial(x: T, s: T): T;
  /** Features [start, end) of a vector `[N, F]`. */
  sliceFeatures(v: T, start: number, end: number): T;
  /** Concatenate image tensors along channels (torch.cat(dim=1)). */
  concatChannels(xs: T[]): T;
  /**
   * Concatenate tensors (images or vectors) along the batch axis (torch.cat(dim=0)): e.g.
   * the K time steps of the fusion features stacked into one UNet pass.
   */
  concatBatch(xs: T[]): T;
  /**
   * Split a tensor along the batch axis into `parts` equal parts (torch.chunk(dim=0)).
   * `name`: a stem for the parts' names where a realisation names values (ONNX graphs).
   */
  splitBatch(x: T, parts: number, name?: string): T[];
  /** Mean over H and W: image `[N,C,H,W]` -> vector `[N,C]`. */
  meanSpatial(x: T): T;
  /** nn.Upsample(scale_factor=2, mode='nearest'). */
  upsampleNearest2x(x: T): T;
  /** F.interpolate(scale_factor=2, mode='bilinear', align_corners=True). */
  upsampleBilinear2x(x: T): T;

  /**
   * SR3 self-attention core: `qkv` is the `[N, 3C, H, W]` output of the qkv 1x1 conv,
   * viewed as `[N, nHead, 3*C/nHead, H, W]` and chunked into q, k, v; scores are divided
   * by sqrt(C) (the full channel count, as the official code does), softmax over the keys.
   * Returns `[N, C, H, W]` (before the output projection).
   */
  selfAttention(qkv: T, nHead: number): T;

  /**
   * WaveGrad/SR3 sinusoidal encoding of the continuous noise level `[N, 1]` -> `[N, dim]`:
   * enc = level * exp(-ln(1e4) * k / (dim/2)), k = 0..dim/2-1; output cat(sin(enc), cos(enc)).
   */
  positionalEncoding(level: T, dim: number): T;

  // ------------------------------------------------------------ loss maths
  // The primitives q_sample, the training losses and the fusion loss are written on (once,
  // in @dif-fusion/diffusion and @dif-fusion/fusion-head). Element-wise ops keep the shape.

  /** a - b, same shape. */
  sub(a: T, b: T): T;
  /** |x|; d/dx = sign(x) (0 at 0, as TensorFlow.js and PyTorch). */
  abs(x: T): T;
  /** x^2. */
  square(x: T): T;
  /** sqrt(x). */
  sqrt(x: T): T;
  /** e^x. */
  exp(x: T): T;
  /** ln x. */
  log(x: T): T;
  /** x + s for a constant s. */
  addScalar(x: T, s: number): T;
  /** max(x, s) for a constant s (a clamp from below); the gradient reaches x where x >= s. */
  maxScalar(x: T, s: number): T;
  /** 1 where `x < s` (`less`) or `x > s` (`greater`), else 0: a mask that carries no gradient. */
  compareScalar(x: T, op: 'less' | 'greater', s: number): T;
  /** image `[N,C,H,W]` * per-sample value `[N,1]` broadcast over C, H, W (q_sample's levels). */
  mulSample(x: T, s: T): T;
  /** A one-element value (`[]`, `[1]`) broadcast to the shape of `like`. */
  broadcastLike(s: T, like: T): T;
  /** The sum of every element: a scalar `[]`. */
  sumAll(x: T): T;
  /** The mean of every element: a scalar `[]`. */
  meanAll(x: T): T;
  /** Channels [start, end) of an image `[N,C,H,W]` (torch `x[:, start:end]`). */
  sliceChannels(x: T, start: number, end: number): T;
  /** x forward, no gradient backward (PyTorch's `detach`). */
  stopGradient(x: T): T;
  /**
   * Convolution with a constant kernel (Sobel filters, colour transforms), PyTorch semantics:
   * `kernel` `[O, I/groups, kh, kw]` row-major, `groups` groups, stride 1, zero padding
   * `padding`.
   */
  constConv(
    x: T,
    kernel: Float32Array,
    kernelShape: [number, number, number, number],
    options?: { groups?: number; padding?: number },
  ): T;

  /**
   * Marks `fn(inputs)` as a gradient-checkpointing segment: a training realisation may keep
   * none of its activations and recompute them in the backward pass. Optional; without it
   * (or when the realisation does not checkpoint) callers run `fn(inputs)`.
   */
  checkpoint?(inputs: T[], fn: (inputs: T[]) => T): T;
}
