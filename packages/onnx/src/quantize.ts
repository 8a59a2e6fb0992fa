/**
 * int8 inference graphs: static QDQ quantization of a model's convolutions.
 *
 * Written here rather than taken from ONNX Runtime's quantization tool because that tool is
 * Python-only (onnxruntime.quantization); the rewrite is small and works on the graph this
 * package writes. The format is ONNX Runtime's recommended one for x86 CPUs: activations
 * uint8 (asymmetric, per tensor), weights int8 (symmetric, per output channel), bias int32
 * with scale = input scale x weight scale. Each Conv becomes
 *
 *   X -> QuantizeLinear -> DequantizeLinear -> Conv(DQ(W_int8), DQ(B_int32)) -> Q -> DQ -> Y
 *
 * and ONNX Runtime's QDQ fusion turns each such group into one QLinearConv (u8s8 integer
 * kernels: AVX2, AVX-512 VNNI). Every other node stays float.
 *
 * Calibration: {@link calibrationGraph} adds every Conv's input and output as graph outputs;
 * run it on representative pairs and feed the observed ranges ({@link RangeRecorder}) to
 * {@link quantizeConvs}.
 */
import type { ModelMsg, NodeMsg, TensorMsg, ValueInfoMsg } from './proto';
import { AttributeType } from './proto';

const FLOAT = 1;
const UINT8 = 2;
const INT8 = 3;
const INT32 = 6;

/** The float tensors a quantization needs ranges of: every Conv's input and output. */
export function calibrationTensors(model: ModelMsg): string[] {
  const names = new Set<string>();
  for (const n of model.graph.node)
    if (n.opType === 'Conv') {
      names.add(n.input[0]);
      names.add(n.output[0]);
    }
  return [...names];
}

/** A copy of `model` that also outputs the tensors of {@link calibrationTensors}. */
export function calibrationGraph(model: ModelMsg): { model: ModelMsg; outputs: string[] } {
  const have = new Set(model.graph.output.map((o) => o.name));
  const outputs = calibrationTensors(model).filter((n) => !have.has(n));
  const extra: ValueInfoMsg[] = outputs.map((name) => ({
    name,
    type: { tensorType: { elemType: FLOAT } },
  }));
  return {
    model: { ...model, graph: { ...model.graph, output: [...model.graph.output, ...extra] } },
    outputs,
  };
}

/** Observed value range of a tensor. */
export interface Range {
  min: number;
  max: number;
}

/**
 * Accumulates per-tensor ranges over calibration runs. `percentile` (e.g. 99.99) clips rare
 * outliers per run (their share of the tensor's values, estimated on at most 2^18 of them),
 * which keeps the step of the common values small; 100 (default) takes the plain min and max.
 */
export class RangeRecorder {
  readonly ranges = new Map<string, Range>();
  constructor(private readonly percentile = 100) {}

  add(name: string, data: Float32Array): void {
    let lo: number;
    let hi: number;
    if (this.percentile >= 100) {
      lo = Number.POSITIVE_INFINITY;
      hi = Number.NEGATIVE_INFINITY;
      for (let i = 0; i < data.length; i++) {
        const v = data[i];
        if (v < lo) lo = v;
        if (v > hi) hi = v;
      }
    } else {
      // at most 2^18 values, evenly strided: a full sort of each 10 M-value activation would
      // make calibration minutes long; the percentile of the sample differs by a few values
      const stride = Math.max(1, Math.floor(data.length / 2 ** 18));
      const s = new Float32Array(Math.ceil(data.length / stride));
      for (let i = 0, j = 0; i < data.length; i += stride) s[j++] = data[i];
      s.sort();
      const k = Math.floor(((100 - this.percentile) / 100) * (s.length - 1));
      lo = s[k];
      hi = s[s.length - 1 - k];
    }
    const r = this.ranges.get(name);
    this.ranges.set(
      name,
      r ? { min: Math.min(r.min, lo), max: Math.max(r.max, hi) } : { min: lo, max: hi },
    );
  }
}

/** uint8 affine parameters of a range (widened to hold 0 exactly, as ONNX requires). */
export function uint8Params(r: Range): { scale: number; zeroPoint: number } {
  const lo = Math.min(0, r.min);
  const hi = Math.max(0, r.max);
  const scale = hi > lo ? (hi - lo) / 255 : 1;
  const zeroPoint = Math.min(255, Math.max(0, Math.round(-lo / scale)));
  return { scale, zeroPoint };
}

function floatsOf(t: TensorMsg): Float32Array {
  if (t.dataType !== FLOAT || !t.rawData)
    throw new Error(`quantize: ${t.name} is not raw float data`);
  const b = t.rawData;
  const copy = b.byteOffset % 4 === 0 ? b : new Uint8Array(b); // a copy (Buffer.slice is a view)
  return new Float32Array(copy.buffer, copy.byteOffset, copy.byteLength / 4);
}

function tensor(name: string, dataType: number, dims: number[], data: ArrayBufferView): TensorMsg {
  return {
    name,
    dataType,
    dims,
    rawData: new Uint8Array(data.buffer, data.byteOffset, data.byteLength).slice(),
  };
}

function node(opType: string, input: string[], output: string[], axis?: number): NodeMsg {
  return {
    opType,
    input,
    output,
    name: `${opType}_${output[0]}`,
    attribute: axis === undefined ? [] : [{ name: 'axis', type: AttributeType.INT, i: axis }],
  };
}

/** What {@link quantizeConvs} did, for the model folder's record. */
export interface QuantizeReport {
  convs: number;
  /** Convs left in float (their outputs): no calibration range, or kept float on request. */
  skipped: string[];
}

/**
 * The QDQ int8 form of `model` (see the file comment). `ranges` holds the calibrated range of
 * each Conv's input and output (names as in the float graph); a Conv missing one stays float,
 * as do the Convs whose output is named in `keepFloat`.
 */
export function quantizeConvs(
  model: ModelMsg,
  ranges: ReadonlyMap<string, Range>,
  options: {
    keepFloat?: ReadonlySet<string>;
    /**
     * Weights in 7 bits (±63) instead of 8 (±127): u8 x s8 products summed in pairs then fit
     * int16 (255 x 63 x 2 < 32767), so the AVX2 kernels (VPMADDUBSW, on CPUs without VNNI)
     * cannot saturate; the results are then equal on every x86 CPU (ONNX Runtime's
     * `reduce_range`).
     */
    reduceRange?: boolean;
  } = {},
): { model: ModelMsg; report: QuantizeReport } {
  const g = model.graph;
  const inits = new Map(g.initializer.map((t) => [t.name, t]));
  const added: TensorMsg[] = [];
  const replaced = new Set<string>();
  const out: NodeMsg[] = [];
  const report: QuantizeReport = { convs: 0, skipped: [] };
  const qmax = options.reduceRange ? 63 : 127;
  /** The dequantized name of an activation, quantized once however many convs read it. */
  const qdq = new Map<string, string>();
  const qdqParams = (name: string) => {
    const { scale, zeroPoint } = uint8Params(ranges.get(name)!);
    const s = `${name}__q_scale`;
    const z = `${name}__q_zero`;
    if (!inits.has(s) && !added.some((t) => t.name === s)) {
      added.push(tensor(s, FLOAT, [], new Float32Array([scale])));
      added.push(tensor(z, UINT8, [], new Uint8Array([zeroPoint])));
    }
    return { s, z, scale };
  };
  const dequantized = (name: string): { name: string; scale: number } => {
    const p = qdqParams(name);
    let dq = qdq.get(name);
    if (!dq) {
      dq = `${name}__dq`;
      out.push(node('QuantizeLinear', [name, p.s, p.z], [`${name}__q`]));
      out.push(node('DequantizeLinear', [`${name}__q`, p.s, p.z], [dq]));
      qdq.set(name, dq);
    }
    return { name: dq, scale: p.scale };
  };

  for (const n of g.node) {
    const [x, w, b] = n.input;
    const y = n.output[0];
    const weight = inits.get(w);
    if (
      n.opType !== 'Conv' ||
      !weight ||
      (b !== undefined && b !== '' && !inits.has(b)) ||
      !ranges.has(x) ||
      !ranges.has(y) ||
      options.keepFloat?.has(y)
    ) {
      if (n.opType === 'Conv') report.skipped.push(y);
      out.push(n);
      continue;
    }
    report.convs++;
    const xq = dequantized(x);
    // weights: int8, symmetric per output channel
    const wf = floatsOf(weight);
    const cout = weight.dims[0];
    const per = wf.length / cout;
    const wScale = new Float32Array(cout);
    const wq = new Int8Array(wf.length);
    for (let c = 0; c < cout; c++) {
      let m = 0;
      for (let i = c * per; i < (c + 1) * per; i++) m = Math.max(m, Math.abs(wf[i]));
      const s = m > 0 ? m / qmax : 1;
      wScale[c] = s;
      for (let i = c * per; i < (c + 1) * per; i++)
        wq[i] = Math.max(-qmax, Math.min(qmax, Math.round(wf[i] / s)));
    }
    added.push(tensor(`${w}__int8`, INT8, weight.dims, wq));
    added.push(tensor(`${w}__scale`, FLOAT, [cout], wScale));
    added.push(tensor(`${w}__zero`, INT8, [cout], new Int8Array(cout)));
    out.push(
      node('DequantizeLinear', [`${w}__int8`, `${w}__scale`, `${w}__zero`], [`${w}__dq`], 0),
    );
    replaced.add(w);
    const inputs = [xq.name, `${w}__dq`];
    if (b) {
      const bf = floatsOf(inits.get(b)!);
      const bScale = new Float32Array(cout);
      const bq = new Int32Array(cout);
      for (let c = 0; c < cout; c++) {
        bScale[c] = xq.scale * wScale[c];
        bq[c] = Math.round(bf[c] / bScale[c]);
      }
      added.push(tensor(`${b}__int32`, INT32, [cout], bq));
      added.push(tensor(`${b}__scale`, FLOAT, [cout], bScale));
      added.push(tensor(`${b}__zero`, INT32, [cout], new Int32Array(cout)));
      out.push(
        node('DequantizeLinear', [`${b}__int32`, `${b}__scale`, `${b}__zero`], [`${b}__dq`], 0),
      );
      replaced.add(b);
      inputs.push(`${b}__dq`);
    }
    // the output: quantized and dequantized under its own name, so its readers stay as they are
    const yf = `${y}__f`;
    out.push({ ...n, input: inputs, output: [yf] });
    const p = qdqParams(y);
    out.push(node('QuantizeLinear', [yf, p.s, p.z], [`${y}__q`]));
    out.push(node('DequantizeLinear', [`${y}__q`, p.s, p.z], [y]));
    qdq.set(y, y);
  }
  // the float weights a quantized Conv replaced, unless something else still reads them
  const read = new Set(out.flatMap((n) => n.input));
  const initializer = [
    ...g.initializer.filter((t) => !replaced.has(t.name) || read.has(t.name)),
    ...added,
  ];
  return { model: { ...model, graph: { ...g, node: out, initializer } }, report };
}

/** One calibration input of a fusion graph (the `fuse` inputs, planar, in [-1, 1]). */
export interface CalibrationInput {
  ir: Float32Array;
  vis: Float32Array;
  /** [K,1,4,H,W]: the noise of the model's K time steps. */
  noise: Float32Array;
  height: number;
  width: number;
}

/** How a model folder was quantized (config.json `quantization`). */
export interface QuantizationRecord {
  format: 'QDQ';
  activations: 'uint8 per tensor (asymmetric)';
  weights:
    | 'int8 per output channel (symmetric)'
    | 'int8 per output channel (symmetric, 7-bit range)';
  /** Convs quantized; the other nodes run in float. */
  convs: number;
  /** Convs kept in float. */
  float_convs: number;
  calibration: { inputs: number; range: 'min-max' | `percentile ${number}`; source?: string };
}
