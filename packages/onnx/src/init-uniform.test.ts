import { initParam, paramSeed } from '@dif-fusion/nn';
import { fillUniform, Rng } from '@dif-fusion/schedules';
import { describe, expect, it } from 'vitest';

const bytes = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

describe('fast uniform draws are the Rng draws and initParam, bit for bit', () => {
  it('fillUniform = uniformRange, and initParam for uniform-init parameters', () => {
    for (const seed of [0, 9, 123456789]) {
      const rng = new Rng(seed);
      const want = new Float32Array(777);
      for (let i = 0; i < want.length; i++) want[i] = rng.uniformRange(-0.3, 0.3);
      expect(bytes(fillUniform(seed, new Float32Array(777), -0.3, 0.3)).equals(bytes(want))).toBe(
        true,
      );
    }
    const spec = {
      name: 'downs.0.res_block.block1.block.3.weight',
      shape: [8, 4, 3, 3],
      init: { kind: 'uniform' as const, bound: 0.17 },
    };
    const a = initParam(spec, 5);
    const b = fillUniform(paramSeed(5, spec.name), new Float32Array(a.length), -0.17, 0.17);
    expect(bytes(a).equals(bytes(b))).toBe(true);
  });
});
