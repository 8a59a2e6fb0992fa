import { describe, expect, it } from 'vitest';
import { fillNormal, normalArray } from './fast-rng';
import { Rng } from './rng';

const bytes = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

describe('fast Rng draws are the Rng draws, bit for bit', () => {
  it('normalArray (odd and even lengths, several seeds)', () => {
    for (const seed of [0, 1, 42, 0xffffffff, -7])
      for (const n of [0, 1, 2, 3, 1001, 4096]) {
        expect(bytes(normalArray(seed, n)).equals(bytes(new Rng(seed).normalArray(n)))).toBe(true);
      }
  });

  it('fillNormal: the doubles of Rng.normal() in a Float64Array, rounded in a Float32Array', () => {
    for (const seed of [3, 77])
      for (const n of [0, 1, 5, 1000]) {
        const r = new Rng(seed);
        const ref = Array.from({ length: n }, () => r.normal());
        expect([...fillNormal(seed, new Float64Array(n))]).toEqual(ref);
        expect([...fillNormal(seed, new Float32Array(n))]).toEqual([...Float32Array.from(ref)]);
      }
  });
});
