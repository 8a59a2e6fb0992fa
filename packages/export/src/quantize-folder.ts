/**
 * `precision: int8` model folders: a float model folder's graph calibrated on sample inputs
 * and rewritten with QDQ int8 convolutions (./quantize), written atomically beside its config.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseFusionBlocks } from '@dif-fusion/fusion-head';
import {
  type CalibrationInput,
  calibrationGraph,
  decodeModel,
  encodeModel,
  inPrivateTmp,
  MODEL_FORMAT_VERSION,
  OnnxRuntimeError,
  ort,
  type QuantizationRecord,
  quantizeConvs,
  RangeRecorder,
  readModelConfig,
  writeModelFolder,
} from '@dif-fusion/onnx';
import type { ModelFolderConfig } from './model-folder';

export interface QuantizeFolderOptions {
  /** Clip each calibration run's ranges at this percentile (default 100: min-max). */
  percentile?: number;
  /**
   * Convs kept in float at the graph's start and end (in node order: the UNet's first conv,
   * the head's output convs), where 8-bit steps show most. Default none.
   */
  floatConvs?: { first?: number; last?: number };
  /** Weights in 7 bits (quantizeConvs' reduceRange): no saturation on AVX2 CPUs without VNNI. */
  reduceRange?: boolean;
  /** Recorded in config.json (e.g. the calibration folder's name). */
  source?: string;
  log?: (line: string) => void;
}

/**
 * Quantize the float model folder `src` into `out` (may equal `src`): config.json records
 * `precision: "int8"` and how (`quantization`). Inputs are the calibration pairs, e.g. a few
 * training pairs at the sizes the model will see.
 */
export async function quantizeModelFolder(
  src: string,
  out: string,
  inputs: Iterable<CalibrationInput> | AsyncIterable<CalibrationInput>,
  options: QuantizeFolderOptions = {},
): Promise<{
  config: ModelFolderConfig;
  record: QuantizationRecord;
  /** The int8 graph's node count and model.onnx's bytes (QDQ adds nodes, int8 shrinks it). */
  nodes: number;
  bytes: number;
}> {
  // the networks' blocks read as the export writes them (old key names of older folders)
  const config = readModelConfig(src, parseFusionBlocks);
  if (config.external_data)
    throw new OnnxRuntimeError(
      `model folder ${src}: int8 quantization reads weights held in model.onnx; this one keeps them in model.onnx.data`,
    );
  if (config.precision === 'int8')
    throw new OnnxRuntimeError(`model folder ${src} is int8 already`);
  const model = decodeModel(readFileSync(join(src, 'model.onnx')));
  const { model: cal, outputs } = calibrationGraph(model);
  const session = await inPrivateTmp(() =>
    ort.InferenceSession.create(encodeModel(cal), { logSeverityLevel: 3, enableMemPattern: false }),
  );
  const percentile = options.percentile ?? 100;
  const recorder = new RangeRecorder(percentile);
  const k = config.head.time_steps.length;
  let count = 0;
  try {
    for await (const x of inputs) {
      const { height: h, width: w } = x;
      const r = await session.run({
        ir: new ort.Tensor('float32', x.ir, [1, 1, h, w]),
        vis: new ort.Tensor('float32', x.vis, [1, 3, h, w]),
        noise: new ort.Tensor('float32', x.noise, [k, 1, 4, h, w]),
      });
      for (const name of outputs) recorder.add(name, r[name].data as Float32Array);
      count++;
      options.log?.(`calibration ${count}: ${w}x${h}`);
    }
  } finally {
    await session.release();
  }
  if (count === 0)
    throw new OnnxRuntimeError('int8 quantization needs at least one calibration input');
  const convs = model.graph.node.filter((n) => n.opType === 'Conv').map((n) => n.output[0]);
  const { first = 0, last = 0 } = options.floatConvs ?? {};
  const keepFloat = new Set([...convs.slice(0, first), ...convs.slice(convs.length - last)]);
  const { model: q, report } = quantizeConvs(model, recorder.ranges, {
    keepFloat,
    reduceRange: options.reduceRange,
  });
  const record: QuantizationRecord = {
    format: 'QDQ',
    activations: 'uint8 per tensor (asymmetric)',
    weights: options.reduceRange
      ? 'int8 per output channel (symmetric, 7-bit range)'
      : 'int8 per output channel (symmetric)',
    convs: report.convs,
    float_convs: report.skipped.length,
    calibration: {
      inputs: count,
      range: percentile >= 100 ? 'min-max' : `percentile ${percentile}`,
      ...(options.source ? { source: options.source } : {}),
    },
  };
  const encoded = encodeModel(q);
  const written = writeModelFolder(
    out,
    { model: encoded, externalData: null },
    // written in this version's format (the head block holds the time steps: version 2)
    {
      ...config,
      format_version: MODEL_FORMAT_VERSION,
      precision: 'int8' as const,
      quantization: record,
    },
  );
  return { config: written, record, nodes: q.graph.node.length, bytes: encoded.length };
}
