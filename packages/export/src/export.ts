/**
 * Exporting the fusion pipeline and the bare UNet to ONNX, from the same network
 * definitions training uses: the UNet's and the head's `forward` code runs once on
 * `OnnxOps`, which records the graph.
 *
 * Fusion graph (`model.onnx`), inputs `ir` [N,1,H,W], `vis` [N,3,H,W] (in [-1, 1]) and
 * `noise` [K,N,4,H,W], output `fused` [N,3,H,W] in [-1, 1]:
 *   x = concat(vis, ir)                                  (visible RGB, then IR: the reference's order)
 *   x_k = level_k * x + sqrt(1 - level_k^2) * noise[k]   (q_sample at the fixed level of step k)
 *   fd = UNet.features(concat_k x_k, level)              (one UNet pass, K*N images batched;
 *                                                          the up path stops at the head's finest need)
 *   fused = head(split_k fd)
 */
import { basename } from 'node:path';
import { stepFeatures } from '@dif-fusion/diffusion';
import {
  FusionHead,
  type FusionHeadConfig,
  type FusionHeadConfigInput,
  headConfigToJSON,
} from '@dif-fusion/fusion-head';
import {
  initParam,
  type ParamSpec,
  paramSeed,
  shapeSize,
  type TorchWeights,
  type TorchWeightsLike,
} from '@dif-fusion/nn';
import {
  type Attr,
  attr,
  DEFAULT_OPSET,
  GraphBuilder,
  MODEL_FORMAT,
  MODEL_FORMAT_VERSION,
  OnnxOps,
  type OnnxOpsOptions,
  type Provenance,
  type SerializedModel,
  type Value,
  writeModelFile,
  writeModelFolder,
} from '@dif-fusion/onnx';
import {
  DifFusionError,
  fillUniform,
  NoiseSchedule,
  type NoiseScheduleConfig,
  parseScheduleConfig,
} from '@dif-fusion/schedules';
import { UNet, type UNetConfig, unetConfigToJSON } from '@dif-fusion/unet';
import type { ModelFolderConfig } from './model-folder';

/** Graph options shared by both exports. */
export interface GraphOptions {
  /** Opset of the default domain (17 or later; default 17). */
  opset?: number;
  /** GroupNorm realisation (see OnnxOpsOptions). */
  groupNorm?: OnnxOpsOptions['groupNorm'];
  /** External weight file: 'auto' (when weights pass ~1.8 GB), 'always' or 'never'. */
  externalData?: 'auto' | 'always' | 'never';
}

export interface FusionGraphSpec {
  unet: UNet | UNetConfig;
  /** UNet weights under their official keys (no `denoise_fn.`), PyTorch layout. */
  unetWeights: TorchWeightsLike;
  head: FusionHead | FusionHeadConfigInput;
  /** Head weights under their official keys. */
  headWeights: TorchWeightsLike;
  /** Noise level (sqrt(alpha_cumprod)) per head time step, in `time_steps` order. */
  noiseLevels: number[];
}

/** A one-line error about what is being exported (mismatched configs, missing weights...). */
export class ExportError extends DifFusionError {}

function asUNet(u: UNet | UNetConfig): UNet {
  return u instanceof UNet ? u : new UNet(u);
}
/** A head config reads its channels from the UNet it is exported with. */
function asHead(h: FusionHead | FusionHeadConfigInput, unet: UNet): FusionHead {
  return h instanceof FusionHead ? h : new FusionHead(h, unet.config);
}

/**
 * Every parameter a network uses is in `weights` with its shape; one-line ExportError
 * (`<what> weights: missing <name>` / `... has shape [..], expected [..]`) otherwise.
 */
export function checkNetworkWeights(
  what: string,
  params: ParamSpec[],
  weights: TorchWeightsLike,
  only?: Set<string>,
): void {
  for (const p of params) {
    if (only && !only.has(p.name)) continue;
    const w = weights.get(p.name);
    if (!w) throw new ExportError(`${what} weights: missing ${p.name}`);
    const same = w.shape.length === p.shape.length && w.shape.every((d, i) => d === p.shape[i]);
    if (!same)
      throw new ExportError(
        `${what} weights: ${p.name} has shape [${w.shape}], expected [${p.shape}]`,
      );
  }
}

/** Check that a head fits a UNet: same channels per decoder feature, full-resolution output. */
export function checkHeadFitsUNet(unet: UNet, head: FusionHead): void {
  const cfg = head.config;
  const channels = unet.decoderChannels();
  for (const s of cfg.feat_scales) {
    if (s >= channels.length)
      throw new ExportError(
        `head feat_scale ${s} is out of range: the UNet has ${channels.length} decoder features`,
      );
    if (channels[s] !== head.featureChannels(s))
      throw new ExportError(
        `head expects ${head.featureChannels(s)} channels at feat_scale ${s}, the UNet gives ${channels[s]} (inner_channel/channel_multiplier/res_blocks differ)`,
      );
  }
  const finest = Math.min(...cfg.feat_scales);
  if (unet.decoderScale(finest) !== 1)
    throw new ExportError(
      `head's finest feat_scale ${finest} is at 1/${unet.decoderScale(finest)} resolution: the fused image would not be full size`,
    );
}

/** Minimum reversed decoder index the head reads (the UNet up path stops there). */
export function minDecoderIndex(head: FusionHead): number {
  return Math.min(...head.requiredFeatureIndices());
}

/**
 * Build the fusion graph (see the module comment). Returns the builder, not yet serialised,
 * and the UNet/head instances used.
 */
export function buildFusionGraph(
  spec: FusionGraphSpec,
  options: GraphOptions = {},
): { graph: GraphBuilder; unet: UNet; head: FusionHead } {
  const unet = asUNet(spec.unet);
  const head = asHead(spec.head, unet);
  checkHeadFitsUNet(unet, head);
  const k = head.config.time_steps.length;
  const levels = spec.noiseLevels;
  if (levels.length !== k)
    throw new ExportError(`${levels.length} noise levels for ${k} time steps`);
  for (const l of levels)
    if (!(l > 0 && l <= 1)) throw new ExportError(`noise level ${l} is outside (0, 1]`);
  checkNetworkWeights('UNet', unet.params(), spec.unetWeights);
  checkNetworkWeights('head', head.usedParams(), spec.headWeights);

  const opset = options.opset ?? DEFAULT_OPSET;
  if (!Number.isInteger(opset) || opset < 17)
    throw new ExportError(`opset must be 17 or later, got ${opset}`);
  const g = new GraphBuilder('dif_fusion', opset);
  const unetOps = new OnnxOps(g, spec.unetWeights, {
    prefix: 'unet.',
    groupNorm: options.groupNorm,
  });
  const headOps = new OnnxOps(g, spec.headWeights, {
    prefix: 'head.',
    groupNorm: options.groupNorm,
  });

  const ir = g.input('ir', ['N', 1, 'H', 'W']);
  const vis = g.input('vis', ['N', 3, 'H', 'W']);
  const noise = g.input('noise', [k, 'N', 4, 'H', 'W']);
  const x = unetOps.concatChannels([vis, ir]); // [N, 4, H, W]

  // The noise of each step: noise[k], [N, 4, H, W].
  const noises = unetOps
    .splitBatch(noise, k, 'noise_k')
    .map((v) => g.node('Squeeze', [v, g.constI64([0])]));
  // The one feature sequence (@dif-fusion/diffusion's stepFeatures), batched: one UNet pass
  // over the K*N noisy images, its features split back into K parts along the batch axis.
  const feats = stepFeatures(unetOps, {
    x,
    levels,
    noise: noises,
    features: (batch, level) =>
      unet.features(unetOps, batch, level, { minDecoderIndex: minDecoderIndex(head) }).fd,
    batchLevel: () => {
      // level [K*N, 1]: level_k repeated N times.
      const nDim = g.node('Slice', [g.node('Shape', [ir]), g.constI64([0]), g.constI64([1])]);
      const levelKN = g.node('Expand', [
        g.constF32(levels, [k, 1]),
        g.node('Concat', [g.constI64([k]), nDim], { axis: attr.int(0) }),
      ]);
      return g.node('Reshape', [levelKN, g.constI64([-1, 1])]);
    },
    indices: head.requiredFeatureIndices(),
  }) as Value[][];
  const fused = head.forward(headOps, feats, { vis, ir });
  g.output(fused, 'fused', ['N', head.config.out_channels, 'H', 'W']);
  return { graph: g, unet, head };
}

export interface ExportFusionOptions extends GraphOptions {
  unet: UNet | UNetConfig;
  unetWeights: TorchWeightsLike;
  head: FusionHead | FusionHeadConfigInput;
  headWeights: TorchWeightsLike;
  /**
   * Noise levels per time step. Default: the midpoint of each step's interval of the
   * schedule (`schedule` is then required), as the deterministic feature extraction uses.
   */
  noiseLevels?: number[];
  /** The beta schedule the time steps refer to (the reference's `model.beta_schedule.train`). */
  schedule?: NoiseScheduleConfig | null;
  /** Seed of random weights (random-init exports), recorded in config.json. */
  seed?: number | null;
  provenance?: Provenance;
}

export interface ExportResult {
  dir: string;
  config: ModelFolderConfig;
  /** Number of float32 weights in the graph (after pruning dead layers). */
  weights: number;
  /** Number of ONNX nodes. */
  nodes: number;
  /** Bytes of model.onnx (+ external data). */
  bytes: number;
}

/** Noise levels for time steps: midpoints of the schedule's intervals. */
export function midpointLevels(schedule: NoiseScheduleConfig, timeSteps: number[]): number[] {
  const s = new NoiseSchedule(parseScheduleConfig(schedule));
  return timeSteps.map((t) => {
    if (!Number.isInteger(t) || t < 1 || t > s.numTimesteps)
      throw new ExportError(`time step ${t} is outside 1..${s.numTimesteps} of the schedule`);
    return s.midpointNoiseLevel(t);
  });
}

/**
 * Export a fusion model folder: `dir/model.onnx` (+ `model.onnx.data` when the weights pass
 * ~1.8 GB) and `dir/config.json`, written atomically (config.json last).
 */
export function exportFusionModel(dir: string, options: ExportFusionOptions): ExportResult {
  const unet = asUNet(options.unet);
  const head = asHead(options.head, unet);
  const timeSteps = head.config.time_steps.slice();
  let levels = options.noiseLevels;
  let rule = 'explicit';
  if (!levels) {
    if (!options.schedule)
      throw new ExportError('noise levels need either noiseLevels or the beta schedule');
    levels = midpointLevels(options.schedule, timeSteps);
    rule = 'midpoint';
  }
  const { graph } = buildFusionGraph(
    {
      unet,
      unetWeights: options.unetWeights,
      head,
      headWeights: options.headWeights,
      noiseLevels: levels,
    },
    options,
  );
  const opset = options.opset ?? DEFAULT_OPSET;
  const serialized = graph.serialize({
    opset,
    externalData: options.externalData,
    docString: 'Dif-Fusion infrared/visible fusion (SR3 UNet features + fusion head)',
    metadata: { format: MODEL_FORMAT, time_steps: JSON.stringify(timeSteps) },
  });
  const config: ModelFolderConfig = {
    format: MODEL_FORMAT,
    format_version: MODEL_FORMAT_VERSION,
    unet: unetConfigToJSON(unet.config),
    head: headConfigToJSON(head.config),
    noise_levels: levels.slice(),
    noise_level_rule: rule,
    beta_schedule: options.schedule ? { ...options.schedule } : null,
    seed: options.seed ?? null,
    size_multiple: unet.sizeMultiple,
    feature_indices: head.requiredFeatureIndices(),
    inputs: { ir: '[N,1,H,W]', vis: '[N,3,H,W]', noise: `[${timeSteps.length},N,4,H,W]` },
    output: '[N,3,H,W]',
    opset,
    external_data: serialized.externalData !== null,
    provenance: options.provenance ?? {},
    created: new Date().toISOString(),
  };
  const written = writeModelFolder(dir, serialized, config);
  return {
    dir,
    config: written,
    weights: graph.weightCount,
    nodes: graph.nodes.length,
    bytes: modelBytes(serialized),
  };
}

function modelBytes(m: SerializedModel): number {
  return m.model.byteLength + (m.externalData?.byteLength ?? 0);
}

/** The bare UNet: inputs `x` [N,in,H,W] and `level` [N,1], output `eps` [N,out,H,W]. */
export function buildUNetEpsGraph(
  unetOrConfig: UNet | UNetConfig,
  weights: TorchWeightsLike,
  options: GraphOptions = {},
): GraphBuilder {
  const unet = asUNet(unetOrConfig);
  checkNetworkWeights('UNet', unet.params(), weights);
  const g = new GraphBuilder('sr3_unet', options.opset ?? DEFAULT_OPSET);
  const ops = new OnnxOps(g, weights, { groupNorm: options.groupNorm });
  const x = g.input('x', ['N', unet.config.in_channel, 'H', 'W']);
  const level = g.input('level', ['N', 1]);
  g.output(unet.forward(ops, x, level), 'eps', ['N', unet.config.out_channel, 'H', 'W']);
  return g;
}

/** Serialise the eps-only UNet graph (for tests and tools). */
export function serializeUNetEps(
  unet: UNet | UNetConfig,
  weights: TorchWeightsLike,
  options: GraphOptions = {},
): SerializedModel {
  return buildUNetEpsGraph(unet, weights, options).serialize({
    opset: options.opset,
    externalData: options.externalData,
    docString: 'SR3 UNet noise prediction eps(x, level)',
  });
}

/** Write the eps-only UNet to `file` (atomically; external data beside it when needed). */
export function exportUNetEps(
  file: string,
  unet: UNet | UNetConfig,
  weights: TorchWeightsLike,
  options: GraphOptions = {},
): { file: string; bytes: number } {
  const m = buildUNetEpsGraph(unet, weights, options).serialize({
    opset: options.opset,
    externalData: options.externalData,
    externalDataLocation: `${basename(file)}.data`,
    docString: 'SR3 UNet noise prediction eps(x, level)',
  });
  writeModelFile(file, m);
  return { file, bytes: modelBytes(m) };
}

/**
 * Random weights for a network's parameters (PyTorch layouts), from `seed`: each parameter
 * from its own stream, the values `initParam` (and so `TfParamStore.init(params, seed)`)
 * gives, so the values depend only on seed, name, shape and init. Uniform-init parameters
 * use the fast bulk generator (the paper's UNet has 370 M weights).
 *
 * `orthogonal: 'uniform'` draws orthogonal-init parameters (the fusion head's) from
 * PyTorch's default uniform(±1/sqrt(fan_in)) instead: orthogonalising the paper-size
 * head's 1024 x 3072 matrices takes minutes and changes nothing for a benchmark.
 */
export function randomWeights(
  params: ParamSpec[],
  seed: number,
  options: { orthogonal?: 'exact' | 'uniform' } = {},
): TorchWeights {
  const w: TorchWeights = new Map();
  for (const p of params) {
    const size = shapeSize(p.shape);
    let bound: number | null = null;
    if (p.init.kind === 'uniform') bound = p.init.bound;
    else if (p.init.kind === 'orthogonal' && options.orthogonal === 'uniform')
      bound = 1 / Math.sqrt(size / p.shape[0]);
    const data =
      bound !== null
        ? fillUniform(paramSeed(seed, p.name), new Float32Array(size), -bound, bound)
        : initParam(p, seed);
    w.set(p.name, { shape: p.shape.slice(), data });
  }
  return w;
}

export type { FusionHeadConfig };
