/**
 * safetensors: 8-byte little-endian header length N, N bytes of JSON header
 * ({name: {dtype, shape, data_offsets: [begin, end]}, __metadata__?: {string: string}}),
 * then the raw little-endian data. https://github.com/huggingface/safetensors
 */
import { readFileSync } from 'node:fs';

export type Dtype = 'F32' | 'F16' | 'BF16' | 'F64' | 'I64' | 'I32' | 'U8';

export interface TensorEntry {
  dtype: Dtype;
  shape: number[];
  /** Values as numbers (F16/BF16 widened to float32, I64 as float64). */
  data: Float32Array | Float64Array | Int32Array | Uint8Array;
}

export interface SafetensorsFile {
  metadata: Record<string, string>;
  tensors: Map<string, TensorEntry>;
}

/** Read a whole safetensors file (small files; see the io README for lazy reads). */
export function readSafetensors(path: string): SafetensorsFile {
  const buf = readFileSync(path);
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8'));
  const base = 8 + n;
  const metadata: Record<string, string> = header.__metadata__ ?? {};
  const tensors = new Map<string, TensorEntry>();
  for (const [name, info] of Object.entries<any>(header)) {
    if (name === '__metadata__') continue;
    const [b, e] = info.data_offsets as [number, number];
    const bytes = buf.subarray(base + b, base + e);
    const ab = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
    let data: TensorEntry['data'];
    switch (info.dtype as Dtype) {
      case 'F32':
        data = new Float32Array(ab);
        break;
      case 'F64':
        data = new Float64Array(ab);
        break;
      case 'I64': {
        const big = new BigInt64Array(ab);
        data = Float64Array.from(big, (v) => Number(v));
        break;
      }
      case 'I32':
        data = new Int32Array(ab);
        break;
      case 'U8':
        data = new Uint8Array(ab);
        break;
      default:
        throw new Error(`${path}: unsupported dtype ${info.dtype} for tensor ${name}`);
    }
    tensors.set(name, { dtype: info.dtype, shape: info.shape, data });
  }
  return { metadata, tensors };
}
