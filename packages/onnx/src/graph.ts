/**
 * A small ONNX graph builder: named values, nodes, float32 initializers and int64/float
 * constants, graph inputs/outputs with symbolic dimensions, dead-node elimination, and
 * serialisation to `model.onnx` (weights inline, or in an external data file when they
 * would push the protobuf past its 2 GB limit).
 */
import {
  type AttributeMsg,
  AttributeType,
  DataType,
  encodeModel,
  type ModelMsg,
  type NodeMsg,
  type TensorMsg,
  type ValueInfoMsg,
} from './proto';

/** A value (tensor) in the graph, by name. */
export type Value = string;

/** A node attribute, tagged with its ONNX type. */
export type Attr =
  | { kind: 'int'; value: number }
  | { kind: 'float'; value: number }
  | { kind: 'string'; value: string }
  | { kind: 'ints'; value: number[] }
  | { kind: 'floats'; value: number[] };

export const attr = {
  int: (value: number): Attr => ({ kind: 'int', value }),
  float: (value: number): Attr => ({ kind: 'float', value }),
  string: (value: string): Attr => ({ kind: 'string', value }),
  ints: (value: number[]): Attr => ({ kind: 'ints', value }),
  floats: (value: number[]): Attr => ({ kind: 'floats', value }),
};

/** Attributes of a 2-D `Conv`: square stride, symmetric padding, no dilation. */
export function convAttrs(stride: number, pad: number, group = 1): Record<string, Attr> {
  return {
    strides: attr.ints([stride, stride]),
    pads: attr.ints([pad, pad, pad, pad]),
    dilations: attr.ints([1, 1]),
    group: attr.int(group),
  };
}

/** A dimension of a graph input/output: a fixed size or a symbolic name. */
export type Dim = number | string;

interface Initializer {
  name: string;
  dims: number[];
  dataType: number;
  bytes: Uint8Array;
}

/** The default opset: 17 (GroupNorm is decomposed, so nothing newer is needed). */
export const DEFAULT_OPSET = 17;
/** IR version 8 goes with opset 17 (onnx 1.12+). */
const IR_VERSION = 8;
/** Protobuf messages are limited to 2 GiB; keep a margin for the graph itself. */
export const INLINE_WEIGHT_LIMIT = 1.8 * 1024 ** 3;

export interface SerializeOptions {
  /** Opset of the default domain (17 or later). */
  opset?: number;
  producerName?: string;
  producerVersion?: string;
  docString?: string;
  metadata?: Record<string, string>;
  /**
   * Store initializers in an external file (relative `location`, beside model.onnx):
   * 'auto' (default) when their total size passes INLINE_WEIGHT_LIMIT, or always/never.
   */
  externalData?: 'auto' | 'always' | 'never';
  /** File name of the external data, relative to model.onnx. */
  externalDataLocation?: string;
}

export interface SerializedModel {
  /** The model protobuf. */
  model: Uint8Array;
  /** External weights (when used): chunks to write, in order, to `externalDataLocation`. */
  externalData: { location: string; chunks: Uint8Array[]; byteLength: number } | null;
}

function bytesOf(data: Float32Array | Int32Array | BigInt64Array): Uint8Array {
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

export class GraphBuilder {
  readonly nodes: NodeMsg[] = [];
  private readonly inits = new Map<string, Initializer>();
  private readonly inputs: ValueInfoMsg[] = [];
  private readonly outputs: ValueInfoMsg[] = [];
  private readonly used = new Set<string>();
  private readonly constCache = new Map<string, Value>();
  private counter = 0;

  /**
   * @param opset opset of the default domain the nodes are written for (17 or later); ops
   * whose signature changed (e.g. Reduce* axes as an input from 18) follow it.
   */
  constructor(
    readonly name = 'graph',
    readonly opset = DEFAULT_OPSET,
  ) {
    if (!Number.isInteger(opset) || opset < 17)
      throw new Error(`ONNX graph: opset must be an integer >= 17, got ${opset}`);
  }

  /**
   * A Reduce* node over `axes` (all axes when empty), written for the builder's opset:
   * an `axes` attribute up to opset 17, an `axes` input from 18.
   */
  reduce(
    op: 'ReduceMean' | 'ReduceSum' | 'ReduceProd' | 'ReduceMax',
    x: Value,
    axes: number[],
    keepdims: boolean,
  ): Value {
    const k = { keepdims: attr.int(keepdims ? 1 : 0) };
    if (axes.length === 0) return this.node(op, [x], k);
    if (this.opset >= 18) return this.node(op, [x, this.constI64(axes)], k);
    return this.node(op, [x], { ...k, axes: attr.ints(axes) });
  }

  /** A fresh value name with a readable stem. */
  fresh(stem: string): Value {
    let name: string;
    do name = `${stem}_${this.counter++}`;
    while (this.used.has(name));
    this.used.add(name);
    return name;
  }

  private claim(name: string): void {
    if (this.used.has(name)) throw new Error(`ONNX graph: duplicate value name ${name}`);
    this.used.add(name);
  }

  /** A graph input: float32, or float64 with `elemType` DataType.DOUBLE. */
  input(name: string, dims: Dim[], elemType: number = DataType.FLOAT): Value {
    this.claim(name);
    this.inputs.push(valueInfo(name, dims, elemType));
    return name;
  }

  /**
   * Mark `value` as graph output `name` (through an Identity node when names differ); float32
   * unless `elemType` says otherwise.
   */
  output(value: Value, name: string, dims?: Dim[], elemType: number = DataType.FLOAT): void {
    if (value !== name) {
      this.claim(name);
      this.nodes.push({
        input: [value],
        output: [name],
        name: `${name}_out`,
        opType: 'Identity',
        attribute: [],
      });
    }
    this.outputs.push(valueInfo(name, dims, elemType));
  }

  hasInitializer(name: string): boolean {
    return this.inits.has(name);
  }

  /** A float32 initializer (weights). The data is referenced, not copied. */
  initializer(name: string, dims: number[], data: Float32Array): Value {
    const n = dims.reduce((a, b) => a * b, 1);
    if (n !== data.length)
      throw new Error(
        `ONNX initializer ${name}: shape [${dims}] needs ${n} values, got ${data.length}`,
      );
    this.claim(name);
    this.inits.set(name, {
      name,
      dims: dims.slice(),
      dataType: DataType.FLOAT,
      bytes: bytesOf(data),
    });
    return name;
  }

  /** An int64 constant (shapes, axes, indices), shared between uses. */
  constI64(values: number[], dims: number[] = [values.length]): Value {
    const key = `i64:${dims.join('x')}:${values.join(',')}`;
    const hit = this.constCache.get(key);
    if (hit) return hit;
    const name = this.fresh('const_i64');
    const data = BigInt64Array.from(values.map((v) => BigInt(v)));
    this.inits.set(name, { name, dims, dataType: DataType.INT64, bytes: bytesOf(data) });
    this.constCache.set(key, name);
    return name;
  }

  /** A float32 constant, shared between identical uses. */
  constF32(values: ArrayLike<number>, dims: number[] = [values.length]): Value {
    const data = Float32Array.from(values);
    const key = `f32:${dims.join('x')}:${Array.from(data).join(',')}`;
    const hit = this.constCache.get(key);
    if (hit) return hit;
    const name = this.fresh('const_f32');
    this.inits.set(name, { name, dims, dataType: DataType.FLOAT, bytes: bytesOf(data) });
    this.constCache.set(key, name);
    return name;
  }

  /** Append a node; returns its single output (or `nOut` outputs with `nodeN`). */
  node(opType: string, inputs: Value[], attrs: Record<string, Attr> = {}, stem?: string): Value {
    return this.nodeN(opType, inputs, 1, attrs, stem)[0];
  }

  nodeN(
    opType: string,
    inputs: Value[],
    nOut: number,
    attrs: Record<string, Attr> = {},
    stem?: string,
  ): Value[] {
    for (const i of inputs)
      if (i !== '' && !this.used.has(i))
        throw new Error(`ONNX graph: ${opType} reads unknown value ${i}`);
    const base = stem ?? opType.toLowerCase();
    const outputs = Array.from({ length: nOut }, () => this.fresh(base));
    this.nodes.push({
      input: inputs,
      output: outputs,
      name: `${outputs[0]}_node`,
      opType,
      attribute: Object.entries(attrs).map(([k, a]) => attributeMsg(k, a)),
    });
    // a copy: a caller reordering its values (e.g. reverse()) must not rewire the node
    return outputs.slice();
  }

  /** Drop nodes and initializers that no graph output depends on. */
  prune(): void {
    const needed = new Set(this.outputs.map((o) => o.name));
    const keep: boolean[] = new Array(this.nodes.length).fill(false);
    for (let i = this.nodes.length - 1; i >= 0; i--) {
      const n = this.nodes[i];
      if (n.output.some((o) => needed.has(o))) {
        keep[i] = true;
        for (const inp of n.input) if (inp) needed.add(inp);
      }
    }
    const kept = this.nodes.filter((_, i) => keep[i]);
    this.nodes.length = 0;
    this.nodes.push(...kept);
    for (const name of [...this.inits.keys()]) if (!needed.has(name)) this.inits.delete(name);
  }

  /** Number of float32 weights held as initializers. */
  get weightCount(): number {
    let n = 0;
    for (const i of this.inits.values())
      if (i.dataType === DataType.FLOAT) n += i.bytes.byteLength / 4;
    return n;
  }

  /** Prune, then serialise to protobuf (with external data when needed). */
  serialize(options: SerializeOptions = {}): SerializedModel {
    this.prune();
    const opset = options.opset ?? this.opset;
    if (opset !== this.opset)
      throw new Error(
        `ONNX graph: built for opset ${this.opset}, cannot serialise as opset ${opset}`,
      );
    const location = options.externalDataLocation ?? 'model.onnx.data';
    let total = 0;
    for (const i of this.inits.values()) total += i.bytes.byteLength;
    const mode = options.externalData ?? 'auto';
    const external = mode === 'always' || (mode === 'auto' && total > INLINE_WEIGHT_LIMIT);

    const initializer: TensorMsg[] = [];
    const chunks: Uint8Array[] = [];
    let offset = 0;
    for (const i of this.inits.values()) {
      // Small tensors (constants) always stay inline.
      if (external && i.bytes.byteLength >= 1024) {
        const pad = (4096 - (offset % 4096)) % 4096;
        if (pad) chunks.push(new Uint8Array(pad));
        offset += pad;
        initializer.push({
          name: i.name,
          dims: i.dims,
          dataType: i.dataType,
          dataLocation: 1,
          externalData: [
            { key: 'location', value: location },
            { key: 'offset', value: String(offset) },
            { key: 'length', value: String(i.bytes.byteLength) },
          ],
        });
        chunks.push(i.bytes);
        offset += i.bytes.byteLength;
      } else {
        initializer.push({ name: i.name, dims: i.dims, dataType: i.dataType, rawData: i.bytes });
      }
    }
    const model: ModelMsg = {
      irVersion: opset >= 21 ? 10 : opset >= 19 ? 9 : IR_VERSION,
      opsetImport: [{ domain: '', version: opset }],
      producerName: options.producerName ?? 'dif-fusion',
      producerVersion: options.producerVersion ?? '0',
      docString: options.docString,
      graph: {
        name: this.name,
        node: this.nodes,
        initializer,
        input: this.inputs,
        output: this.outputs,
      },
      metadataProps: Object.entries(options.metadata ?? {}).map(([key, value]) => ({ key, value })),
    };
    return {
      model: encodeModel(model),
      externalData: external ? { location, chunks, byteLength: offset } : null,
    };
  }
}

function valueInfo(name: string, dims?: Dim[], elemType: number = DataType.FLOAT): ValueInfoMsg {
  const tensorType: ValueInfoMsg['type']['tensorType'] = { elemType };
  if (dims)
    tensorType.shape = {
      dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })),
    };
  return { name, type: { tensorType } };
}

function attributeMsg(name: string, a: Attr): AttributeMsg {
  switch (a.kind) {
    case 'int':
      return { name, type: AttributeType.INT, i: a.value };
    case 'float':
      return { name, type: AttributeType.FLOAT, f: a.value };
    case 'string':
      return { name, type: AttributeType.STRING, s: new TextEncoder().encode(a.value) };
    case 'ints':
      return { name, type: AttributeType.INTS, ints: a.value };
    case 'floats':
      return { name, type: AttributeType.FLOATS, floats: a.value };
  }
}
