/**
 * Checks of a model folder's graph against itself and its config.json, before any run: every
 * float weight finite (a diverged training run exports NaN weights that fuse to a black
 * image), and the time steps the graph was exported with equal the config's.
 */
import { closeSync, openSync, readSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { decodeModel, type TensorMsg } from './proto';

/** ONNX TensorProto data types holding floats. */
const FLOAT = 1;
const FLOAT16 = 10;
const DOUBLE = 11;
const BFLOAT16 = 16;

/** Count of non-finite values in little-endian bytes of an ONNX float type, and the first index. */
export function nonFiniteBytes(b: Uint8Array, type: number): { first: number; count: number } {
  // Typed-array views in the platform's byte order (little-endian on every platform
  // onnxruntime-node ships for), copied when misaligned: a DataView read per element kept a 12 MB
  // model's check at ~75 ms of every load; this loop takes a few ms.
  const width = type === FLOAT ? 4 : type === DOUBLE ? 8 : 2;
  const aligned = b.byteOffset % 4 === 0 ? b : new Uint8Array(b); // a copy (Buffer.slice would be a view)
  const n = Math.floor(aligned.byteLength / width);
  let first = -1;
  let count = 0;
  if (width === 2) {
    const mask = type === FLOAT16 ? 0x7c00 : 0x7f80;
    const u = new Uint16Array(aligned.buffer, aligned.byteOffset, n);
    for (let i = 0; i < n; i++)
      if ((u[i] & mask) === mask) {
        if (first < 0) first = i;
        count++;
      }
  } else {
    // exponent bits all ones: NaN or ±Inf (doubles: the high word of each element). Shifted
    // down first so every intermediate is a small integer: masks like 0x7f800000 are heap
    // numbers to V8 and kept this loop ~20x slower before it was optimised.
    const u = new Int32Array(aligned.buffer, aligned.byteOffset, (n * width) / 4);
    if (width === 4) {
      for (let i = 0; i < n; i++)
        if (((u[i] >>> 23) & 0xff) === 0xff) {
          if (first < 0) first = i;
          count++;
        }
    } else {
      for (let i = 0; i < n; i++)
        if (((u[2 * i + 1] >>> 20) & 0x7ff) === 0x7ff) {
          if (first < 0) first = i;
          count++;
        }
    }
  }
  return { first, count };
}

function tensorBytes(t: TensorMsg, modelPath: string): Uint8Array | null {
  if (t.dataLocation === 1 && t.externalData) {
    const kv = Object.fromEntries(t.externalData.map((e) => [e.key, e.value]));
    const offset = Number(kv.offset ?? 0);
    const length = Number(kv.length);
    if (!kv.location || !Number.isFinite(length)) return null;
    const out = new Uint8Array(length);
    const fd = openSync(join(dirname(modelPath), kv.location), 'r');
    try {
      readSync(fd, out, 0, length, offset);
    } finally {
      closeSync(fd);
    }
    return out;
  }
  if (t.rawData) return t.rawData;
  const floats = (t as { floatData?: number[] }).floatData;
  return floats ? new Uint8Array(Float32Array.from(floats).buffer) : null;
}

/**
 * Problems of an ONNX fusion model file, as one line each (empty when none): a float
 * initializer holding NaN or ±Inf, or time steps in the graph's metadata that differ from
 * `timeSteps` (the config's).
 */
export function checkModelFile(
  bytes: Uint8Array,
  modelPath: string,
  timeSteps: number[],
): string[] {
  const model = decodeModel(bytes);
  const problems: string[] = [];
  const meta = Object.fromEntries((model.metadataProps ?? []).map((p) => [p.key, p.value]));
  if (meta.time_steps !== undefined && meta.time_steps !== JSON.stringify(timeSteps))
    problems.push(
      `config.json has time_steps ${JSON.stringify(timeSteps)} but model.onnx was exported with ${meta.time_steps}: the two files do not belong together`,
    );
  for (const t of model.graph.initializer ?? []) {
    if (![FLOAT, FLOAT16, DOUBLE, BFLOAT16].includes(t.dataType)) continue;
    const b = tensorBytes(t, modelPath);
    if (!b) continue;
    const { first, count } = nonFiniteBytes(b, t.dataType);
    if (count) {
      problems.push(
        `model.onnx weight '${t.name}' holds ${count} NaN/Inf value${count === 1 ? '' : 's'} (first at index ${first}); the weights diverged, export from an earlier checkpoint`,
      );
      break;
    }
  }
  return problems;
}
