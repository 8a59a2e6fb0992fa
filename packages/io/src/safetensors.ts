/**
 * safetensors: 8-byte little-endian header length N, N bytes of JSON header
 * ({name: {dtype, shape, data_offsets: [begin, end]}, __metadata__?: {string: string}}),
 * then the raw little-endian data. https://github.com/huggingface/safetensors
 *
 * - {@link readSafetensors}: whole file (small files, golden vectors).
 * - {@link SafetensorsReader}: header only, then one tensor at a time by positioned reads
 *   (multi-GB checkpoints are never loaded whole).
 * - {@link writeSafetensors} / {@link writeSafetensorsSync}: atomic (temp file + rename).
 * Every problem is a one-line {@link DifFusionError} naming the file.
 */
import { closeSync, fstatSync, openSync, readFileSync, readSync } from 'node:fs';
import { writeFileAtomic, writeFileAtomicSync } from './atomic';
import { fileError, fsError } from './errors';

export type Dtype = 'F32' | 'F16' | 'BF16' | 'F64' | 'I64' | 'I32' | 'U8';

/** Bytes per element of each supported dtype. */
export const DTYPE_SIZE: Readonly<Record<Dtype, number>> = Object.freeze({
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  U8: 1,
});

export function isDtype(d: unknown): d is Dtype {
  return typeof d === 'string' && Object.hasOwn(DTYPE_SIZE, d);
}

export interface TensorEntry {
  dtype: Dtype;
  shape: number[];
  /**
   * Values as numbers: F32/F16/BF16 → Float32Array (half types widened exactly), F64 →
   * Float64Array, I64 → Float64Array (exact up to 2^53), I32 → Int32Array, U8 → Uint8Array.
   */
  data: Float32Array | Float64Array | Int32Array | Uint8Array;
}

export interface SafetensorsFile {
  metadata: Record<string, string>;
  tensors: Map<string, TensorEntry>;
}

/** One tensor's header entry. `begin`/`end` are offsets into the data section. */
export interface TensorInfo {
  dtype: Dtype;
  shape: number[];
  begin: number;
  end: number;
}

export interface SafetensorsHeader {
  metadata: Record<string, string>;
  /** In file order (by data offset). */
  tensors: Map<string, TensorInfo>;
  /** Byte offset of the data section in the file (8 + header length). */
  dataStart: number;
}

/** Headers larger than this are rejected as malformed (the reference library uses 100 MB). */
const MAX_HEADER = 100_000_000;

function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/**
 * Parse and validate a header. `fileSize` is the whole file's size; throws a one-line
 * error naming `path` for a bad header length, bad JSON, unknown dtype, offsets out of range,
 * overlapping tensors or a size that does not match shape × dtype.
 */
export function parseSafetensorsHeader(
  headerBytes: Uint8Array,
  fileSize: number,
  path: string,
): SafetensorsHeader {
  const dataStart = 8 + headerBytes.byteLength;
  const dataSize = fileSize - dataStart;
  let json: unknown;
  try {
    json = JSON.parse(Buffer.from(headerBytes).toString('utf8'));
  } catch {
    throw fileError(path, 'malformed safetensors: header is not valid JSON');
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw fileError(path, 'malformed safetensors: header is not a JSON object');
  }
  const metadata: Record<string, string> = {};
  const list: [string, TensorInfo][] = [];
  for (const [name, raw] of Object.entries(json as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
        throw fileError(path, 'malformed safetensors: __metadata__ is not an object');
      }
      for (const [k, v] of Object.entries(raw)) {
        if (typeof v !== 'string') {
          throw fileError(path, `malformed safetensors: metadata value '${k}' is not a string`);
        }
        metadata[k] = v;
      }
      continue;
    }
    const info = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    const bad = (what: string) =>
      fileError(path, `malformed safetensors: tensor '${name}' ${what}`);
    if (typeof info !== 'object' || info === null) throw bad('has no dtype/shape/data_offsets');
    if (!isDtype(info.dtype)) {
      throw bad(
        `has unknown dtype ${JSON.stringify(info.dtype)} (supported: ${Object.keys(DTYPE_SIZE).join(', ')})`,
      );
    }
    const shape = info.shape;
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw bad(`has an invalid shape ${JSON.stringify(shape)}`);
    }
    const off = info.data_offsets;
    if (
      !Array.isArray(off) ||
      off.length !== 2 ||
      !off.every((d) => Number.isSafeInteger(d) && d >= 0) ||
      off[1] < off[0]
    ) {
      throw bad(`has invalid data_offsets ${JSON.stringify(off)}`);
    }
    const [begin, end] = off as [number, number];
    if (end > dataSize) {
      throw bad(
        `has data_offsets [${begin}, ${end}] out of range (data section is ${Math.max(dataSize, 0)} bytes; file truncated?)`,
      );
    }
    const want = numel(shape) * DTYPE_SIZE[info.dtype];
    if (end - begin !== want) {
      throw bad(
        `has ${end - begin} bytes but shape [${shape.join(', ')}] of ${info.dtype} needs ${want}`,
      );
    }
    list.push([name, { dtype: info.dtype, shape: [...shape], begin, end }]);
  }
  list.sort((a, b) => a[1].begin - b[1].begin || a[1].end - b[1].end);
  for (let i = 1; i < list.length; i++) {
    const [pn, p] = list[i - 1];
    const [cn, c] = list[i];
    if (c.begin < p.end) {
      throw fileError(
        path,
        `malformed safetensors: tensors '${pn}' [${p.begin}, ${p.end}] and '${cn}' [${c.begin}, ${c.end}] overlap`,
      );
    }
  }
  return { metadata, tensors: new Map(list), dataStart };
}

function checkHeaderLength(n: bigint, fileSize: number, path: string): number {
  if (n > BigInt(MAX_HEADER) || Number(n) > fileSize - 8) {
    throw fileError(
      path,
      `malformed safetensors: bad header length ${n} (file is ${fileSize} bytes)`,
    );
  }
  if (n < 2n) throw fileError(path, `malformed safetensors: bad header length ${n}`);
  return Number(n);
}

/** Decode raw little-endian bytes of one tensor into numbers (see {@link TensorEntry.data}). */
export function decodeTensorBytes(
  bytes: Uint8Array,
  dtype: Dtype,
): Float32Array | Float64Array | Int32Array | Uint8Array {
  // Copy into a fresh, aligned buffer (file offsets need not be aligned).
  const ab = new ArrayBuffer(bytes.byteLength);
  new Uint8Array(ab).set(bytes);
  switch (dtype) {
    case 'F32':
      return new Float32Array(ab);
    case 'F64':
      return new Float64Array(ab);
    case 'I32':
      return new Int32Array(ab);
    case 'U8':
      return new Uint8Array(ab);
    case 'I64': {
      const big = new BigInt64Array(ab);
      const out = new Float64Array(big.length);
      for (let i = 0; i < big.length; i++) out[i] = Number(big[i]);
      return out;
    }
    case 'F16': {
      const h = new Uint16Array(ab);
      const out = new Float32Array(h.length);
      for (let i = 0; i < h.length; i++) out[i] = halfToFloat(h[i]);
      return out;
    }
    case 'BF16': {
      const h = new Uint16Array(ab);
      const bits = new Uint32Array(h.length);
      for (let i = 0; i < h.length; i++) bits[i] = h[i] << 16;
      return new Float32Array(bits.buffer);
    }
  }
}

/** Read a whole safetensors file (small files; use {@link SafetensorsReader} for large ones). */
export function readSafetensors(path: string): SafetensorsFile {
  let buf: Buffer;
  try {
    buf = readFileSync(path);
  } catch (err) {
    throw fsError(path, err);
  }
  if (buf.length < 8) {
    throw fileError(path, `malformed safetensors: ${buf.length} bytes, too short for a header`);
  }
  const n = checkHeaderLength(buf.readBigUInt64LE(0), buf.length, path);
  const header = parseSafetensorsHeader(buf.subarray(8, 8 + n), buf.length, path);
  const tensors = new Map<string, TensorEntry>();
  for (const [name, t] of header.tensors) {
    const bytes = buf.subarray(header.dataStart + t.begin, header.dataStart + t.end);
    tensors.set(name, { dtype: t.dtype, shape: t.shape, data: decodeTensorBytes(bytes, t.dtype) });
  }
  return { metadata: header.metadata, tensors };
}

/**
 * Lazy reader: `open` reads only the 8-byte length and the JSON header; `read(name)` then
 * reads that one tensor with a positioned read. Call `close()` when done.
 */
export class SafetensorsReader {
  readonly path: string;
  readonly metadata: Record<string, string>;
  readonly tensors: ReadonlyMap<string, TensorInfo>;
  readonly fileSize: number;
  private readonly dataStart: number;
  private fd: number | null;

  private constructor(path: string, fd: number, fileSize: number, header: SafetensorsHeader) {
    this.path = path;
    this.fd = fd;
    this.fileSize = fileSize;
    this.metadata = header.metadata;
    this.tensors = header.tensors;
    this.dataStart = header.dataStart;
  }

  static open(path: string): SafetensorsReader {
    let fd: number;
    try {
      fd = openSync(path, 'r');
    } catch (err) {
      throw fsError(path, err);
    }
    try {
      const size = fstatSync(fd).size;
      if (size < 8) {
        throw fileError(path, `malformed safetensors: ${size} bytes, too short for a header`);
      }
      const lenBuf = Buffer.alloc(8);
      readFully(fd, lenBuf, 0, path);
      const n = checkHeaderLength(lenBuf.readBigUInt64LE(0), size, path);
      const hb = Buffer.alloc(n);
      readFully(fd, hb, 8, path);
      return new SafetensorsReader(path, fd, size, parseSafetensorsHeader(hb, size, path));
    } catch (err) {
      closeSync(fd);
      throw err;
    }
  }

  /** Tensor names in file order. */
  names(): string[] {
    return [...this.tensors.keys()];
  }

  has(name: string): boolean {
    return this.tensors.has(name);
  }

  info(name: string): TensorInfo {
    const t = this.tensors.get(name);
    if (!t) throw fileError(this.path, `no tensor named '${name}'`);
    return t;
  }

  /** The tensor's raw little-endian bytes. */
  readBytes(name: string): Uint8Array {
    const t = this.info(name);
    if (this.fd === null) throw fileError(this.path, 'reader is closed');
    const out = Buffer.alloc(t.end - t.begin);
    readFully(this.fd, out, this.dataStart + t.begin, this.path);
    return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
  }

  /** One tensor, decoded to numbers. */
  read(name: string): TensorEntry {
    const t = this.info(name);
    return {
      dtype: t.dtype,
      shape: [...t.shape],
      data: decodeTensorBytes(this.readBytes(name), t.dtype),
    };
  }

  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }
}

function readFully(fd: number, buf: Uint8Array, position: number, path: string): void {
  let off = 0;
  while (off < buf.byteLength) {
    const n = readSync(fd, buf, off, buf.byteLength - off, position + off);
    if (n === 0) throw fileError(path, 'malformed safetensors: file truncated');
    off += n;
  }
}

/** A tensor to write: values are converted to `dtype` (F16/BF16 round to nearest even). */
export interface TensorInput {
  dtype: Dtype;
  shape: readonly number[];
  data: ArrayLike<number> | BigInt64Array;
}

export type TensorsInput =
  | Map<string, TensorInput>
  | Record<string, TensorInput>
  | Iterable<[string, TensorInput]>;

function entriesOf(tensors: TensorsInput): [string, TensorInput][] {
  if (tensors instanceof Map) return [...tensors.entries()];
  if (Symbol.iterator in (tensors as object))
    return [...(tensors as Iterable<[string, TensorInput]>)];
  return Object.entries(tensors as Record<string, TensorInput>);
}

/** Encode one tensor's values as little-endian bytes of `dtype`. */
export function encodeTensorBytes(input: TensorInput, name = 'tensor'): Uint8Array {
  const { dtype, shape, data } = input;
  if (!isDtype(dtype)) throw new RangeError(`${name}: unknown dtype ${String(dtype)}`);
  const n = numel(shape);
  if (data.length !== n) {
    throw new RangeError(
      `${name}: ${data.length} values but shape [${shape.join(', ')}] holds ${n}`,
    );
  }
  const bytes = (a: ArrayBufferView) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  switch (dtype) {
    case 'F32':
      return bytes(
        data instanceof Float32Array ? data : Float32Array.from(data as ArrayLike<number>),
      );
    case 'F64':
      return bytes(
        data instanceof Float64Array ? data : Float64Array.from(data as ArrayLike<number>),
      );
    case 'I32':
      return bytes(data instanceof Int32Array ? data : Int32Array.from(data as ArrayLike<number>));
    case 'U8':
      return bytes(data instanceof Uint8Array ? data : Uint8Array.from(data as ArrayLike<number>));
    case 'I64': {
      if (data instanceof BigInt64Array) return bytes(data);
      const out = new BigInt64Array(n);
      for (let i = 0; i < n; i++) {
        const v = (data as ArrayLike<number>)[i];
        if (!Number.isInteger(v)) throw new RangeError(`${name}: I64 value ${v} is not an integer`);
        out[i] = BigInt(v);
      }
      return bytes(out);
    }
    case 'F16': {
      const out = new Uint16Array(n);
      for (let i = 0; i < n; i++) out[i] = floatToHalf((data as ArrayLike<number>)[i]);
      return bytes(out);
    }
    case 'BF16': {
      const f = Float32Array.from(data as ArrayLike<number>);
      const u = new Uint32Array(f.buffer);
      const out = new Uint16Array(n);
      for (let i = 0; i < n; i++) out[i] = floatBitsToBf16(u[i]);
      return bytes(out);
    }
  }
}

/**
 * Serialise to safetensors as a list of chunks (header, then each tensor's bytes, in the
 * given order, contiguous). The header is padded with spaces to a multiple of 8 bytes.
 */
export function serializeSafetensors(
  tensors: TensorsInput,
  metadata?: Record<string, string>,
): Uint8Array[] {
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length > 0) {
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== 'string') throw new RangeError(`metadata value '${k}' must be a string`);
    }
    header.__metadata__ = metadata;
  }
  const datas: Uint8Array[] = [];
  let offset = 0;
  for (const [name, t] of entriesOf(tensors)) {
    if (name === '__metadata__') throw new RangeError('a tensor cannot be named __metadata__');
    const b = encodeTensorBytes(t, name);
    header[name] = {
      dtype: t.dtype,
      shape: [...t.shape],
      data_offsets: [offset, offset + b.byteLength],
    };
    offset += b.byteLength;
    datas.push(b);
  }
  let json = JSON.stringify(header);
  const len = Buffer.byteLength(json, 'utf8');
  json += ' '.repeat((8 - (len % 8)) % 8);
  const hb = Buffer.from(json, 'utf8');
  const lenBuf = Buffer.alloc(8);
  lenBuf.writeBigUInt64LE(BigInt(hb.byteLength));
  return [lenBuf, hb, ...datas];
}

/** Write a safetensors file atomically (temp file + rename). */
export async function writeSafetensors(
  path: string,
  tensors: TensorsInput,
  metadata?: Record<string, string>,
): Promise<void> {
  await writeFileAtomic(path, serializeSafetensors(tensors, metadata));
}

/** Synchronous {@link writeSafetensors}. */
export function writeSafetensorsSync(
  path: string,
  tensors: TensorsInput,
  metadata?: Record<string, string>,
): void {
  writeFileAtomicSync(path, serializeSafetensors(tensors, metadata));
}

// ---- half-precision helpers -------------------------------------------------------------

/** IEEE half (binary16) bits → number (exact). */
export function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? Number.NaN : s * Number.POSITIVE_INFINITY;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** number → IEEE half bits, rounding to nearest even (as numpy/PyTorch), with overflow to inf. */
export function floatToHalf(v: number): number {
  f32[0] = v; // first to float32, as torch's .half() does from float32 tensors
  const x = u32[0];
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0); // inf / NaN
  let e = exp - 127 + 15;
  if (e >= 31) return sign | 0x7c00; // overflow
  if (e <= 0) {
    if (e < -10) return sign; // underflow to zero
    mant |= 0x800000; // implicit bit
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    let r = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    if (rem > half || (rem === half && r & 1)) r++;
    return sign | r;
  }
  let r = mant >>> 13;
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && r & 1)) {
    r++;
    if (r === 0x400) {
      r = 0;
      e++;
      if (e >= 31) return sign | 0x7c00;
    }
  }
  return sign | (e << 10) | r;
}

/** float32 bits → bfloat16 bits, rounding to nearest even (NaN stays NaN). */
function floatBitsToBf16(x: number): number {
  if ((x & 0x7f800000) === 0x7f800000 && x & 0x7fffff) return ((x >>> 16) | 0x40) & 0xffff;
  const lsb = (x >>> 16) & 1;
  return ((x + 0x7fff + lsb) >>> 16) & 0xffff;
}
