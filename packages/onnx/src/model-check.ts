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
function nonFiniteBytes(b: Uint8Array, type: number): { first: number; count: number } {
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  let first = -1;
  let count = 0;
  const hit = (i: number) => {
    if (first < 0) first = i;
    count++;
  };
  if (type === FLOAT) {
    // exponent bits all ones: NaN or ±Inf
    for (let i = 0; i * 4 < b.byteLength; i++)
      if ((v.getUint32(i * 4, true) & 0x7f800000) === 0x7f800000) hit(i);
  } else if (type === DOUBLE) {
    for (let i = 0; i * 8 < b.byteLength; i++)
      if ((v.getUint32(i * 8 + 4, true) & 0x7ff00000) === 0x7ff00000) hit(i);
  } else {
    const mask = type === FLOAT16 ? 0x7c00 : 0x7f80;
    for (let i = 0; i * 2 < b.byteLength; i++)
      if ((v.getUint16(i * 2, true) & mask) === mask) hit(i);
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
