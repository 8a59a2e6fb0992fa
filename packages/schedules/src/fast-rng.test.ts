import { describe, expect, it } from 'vitest';
import { normalArray } from './fast-rng';
import { Rng } from './rng';

const bytes = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

describe('fast Rng draws are the Rng draws, bit for bit', () => {
  it('normalArray (odd and even lengths, several seeds)', () => {
    for (const seed of [0, 1, 42, 0xffffffff, -7])
      for (const n of [0, 1, 2, 3, 1001, 4096]) {
        expect(bytes(normalArray(seed, n)).equals(bytes(new Rng(seed).normalArray(n)))).toBe(true);
      }
  });
});
