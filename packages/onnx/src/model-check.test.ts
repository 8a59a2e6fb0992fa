import { describe, expect, it } from 'vitest';
import { nonFiniteBytes } from './model-check';

const FLOAT = 1;
const FLOAT16 = 10;
const DOUBLE = 11;
const BFLOAT16 = 16;

/** Bytes of `arr` placed at byte offset `at` of a larger buffer (a protobuf field's view). */
function at(arr: ArrayBufferView, offset: number): Uint8Array {
  const src = new Uint8Array(arr.buffer, arr.byteOffset, arr.byteLength);
  const buf = new Uint8Array(src.length + offset + 3);
  buf.set(src, offset);
  return buf.subarray(offset, offset + src.length);
}

describe('nonFiniteBytes', () => {
  it('counts NaN and ±Inf in float32, aligned or not, and names the first index', () => {
    const v = new Float32Array([0, 1, Number.NaN, -2, Number.POSITIVE_INFINITY, 3.4e38, -0]);
    for (const off of [0, 1, 2, 3])
      expect(nonFiniteBytes(at(v, off), FLOAT)).toEqual({ first: 2, count: 2 });
    expect(nonFiniteBytes(at(new Float32Array([1, 2, 3]), 1), FLOAT)).toEqual({
      first: -1,
      count: 0,
    });
  });

  it('reads doubles by their high word (1e300 is finite, -Inf is not)', () => {
    const v = new Float64Array([1e300, -1e-300, 5, Number.NEGATIVE_INFINITY, Number.NaN]);
    for (const off of [0, 4, 1])
      expect(nonFiniteBytes(at(v, off), DOUBLE)).toEqual({ first: 3, count: 2 });
  });

  it('reads float16 and bfloat16 bit patterns', () => {
    // float16: 0x3c00 = 1, 0x7bff = 65504 (largest finite), 0x7c00 = +Inf, 0xfe00 = NaN
    const h = new Uint16Array([0x3c00, 0x7bff, 0x7c00, 0xfe00]);
    expect(nonFiniteBytes(at(h, 2), FLOAT16)).toEqual({ first: 2, count: 2 });
    // bfloat16: 0x3f80 = 1, 0x7f7f finite, 0xff80 = -Inf
    const b = new Uint16Array([0x3f80, 0x7f7f, 0xff80]);
    expect(nonFiniteBytes(at(b, 1), BFLOAT16)).toEqual({ first: 2, count: 1 });
  });
});

describe('nonFiniteBytes on a Buffer view (protobufjs hands raw_data out as Buffer)', () => {
  it('copies a misaligned Buffer instead of viewing it', () => {
    const v = new Float32Array([1, Number.NaN, 2]);
    const buf = Buffer.alloc(13);
    buf.set(new Uint8Array(v.buffer), 1);
    expect(nonFiniteBytes(buf.subarray(1, 13), 1)).toEqual({ first: 1, count: 1 });
  });
});
