import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { writeSafetensorsSync } from './safetensors';
import { checkWeights, nonFinite, readWeights } from './weights-check';

const dir = mkdtempSync(join(tmpdir(), 'dif-io-weights-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('weights are float and finite', () => {
  it('finds NaN and ±Inf, nothing else', () => {
    expect(nonFinite([0, -1e38, 3.4e38, Number.MIN_VALUE])).toBeNull();
    expect(nonFinite([1, Number.NaN, 2, Number.POSITIVE_INFINITY, -Infinity])).toEqual({
      first: 1,
      count: 3,
    });
  });

  it('a NaN tensor (F32 and F16) is refused naming the file and the tensor', () => {
    const p = join(dir, 'nan.safetensors');
    writeSafetensorsSync(p, {
      'conv.weight': { dtype: 'F32', shape: [2, 2], data: [0.5, -1, 2, 3] },
      'conv.bias': { dtype: 'F16', shape: [3], data: [0, Number.NaN, Number.NaN] },
    });
    expect(() => readWeights(p)).toThrow(
      `${p}: tensor 'conv.bias' holds 2 non-finite values of 3 (first: NaN at index 1); the weights diverged, use an earlier checkpoint`,
    );
    const inf = join(dir, 'inf.safetensors');
    writeSafetensorsSync(inf, { w: { dtype: 'BF16', shape: [2], data: [1, Infinity] } });
    expect(() => readWeights(inf)).toThrow(
      /inf\.safetensors: tensor 'w' holds 1 non-finite value of 2 \(first: Infinity/,
    );
  });

  it('an integer tensor is refused instead of being converted', () => {
    const p = join(dir, 'int.safetensors');
    writeSafetensorsSync(p, {
      'a.weight': { dtype: 'F32', shape: [1], data: [1] },
      'b.weight': { dtype: 'I32', shape: [2], data: [1, 2] },
    });
    expect(() => readWeights(p)).toThrow(
      `${p}: tensor 'b.weight' has dtype I32; weights must be F32, F16, BF16, F64`,
    );
    // `only` skips what is not a weight (e.g. a step counter)
    expect(readWeights(p, (n) => n.startsWith('a.')).tensors.size).toBe(2);
    expect(() => checkWeights(new Map([['x', { data: [1, 2] }]]), 'mem')).not.toThrow();
  });
});
