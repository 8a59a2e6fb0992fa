import { fileURLToPath } from 'node:url';
import { readSafetensors } from '@dif-fusion/io';
import { nchwToNhwc, nhwcToNchw, TfOps, TfParamStore, useBackend } from '@dif-fusion/tfjs';
import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import { relErr } from '../../../test/shared';
import { parseUNetConfig, UNet, unetConfigToJSON } from './index';

// PyTorch outputs of tiny UNets with each option (scripts/make-fixtures.py).
const fixture = readSafetensors(
  fileURLToPath(new URL('../fixtures/variants.safetensors', import.meta.url)),
);
const tensor = (k: string) => {
  const t = fixture.tensors.get(k)!;
  return tf.tensor(Float32Array.from(t.data), t.shape);
};

describe('UNet options equal the PyTorch forward pass (1e-5 of the largest value)', () => {
  for (const name of ['affine_heads', 'scale_shift']) {
    it(`${name}: ${fixture.metadata[`config.${name}`]}`, async () => {
      await useBackend('cpu');
      const unet = new UNet(JSON.parse(fixture.metadata[`config.${name}`]));
      const store = TfParamStore.fromTorch(unet.params(), fixture.tensors, {
        prefix: `${name}.weights.`,
      });
      const eps = nhwcToNchw(
        unet.forward(new TfOps(store), nchwToNhwc(tensor('input.x')), tensor('input.noise_level')),
      );
      expect(relErr(await eps.data(), fixture.tensors.get(`${name}.eps`)!.data)).toBeLessThan(1e-5);
      store.dispose();
    });
  }
});

describe('UNet option keys', () => {
  const base = { ...JSON.parse(fixture.metadata['config.affine_heads']), use_affine_level: false };
  it('are absent from a default config and round-trip through the reference block', () => {
    const c = parseUNetConfig({ ...base, num_heads: 1, use_scale_shift_norm: false });
    expect(c).not.toHaveProperty('num_heads');
    expect(c).not.toHaveProperty('use_scale_shift_norm');
    const v = parseUNetConfig({ ...base, num_heads: 2, use_scale_shift_norm: true });
    expect(parseUNetConfig(unetConfigToJSON(v))).toEqual(v);
    expect(unetConfigToJSON(v)).toMatchObject({ num_heads: 2, use_scale_shift_norm: true });
  });
  it('refuse bad values in one line', () => {
    expect(() => parseUNetConfig({ ...base, num_heads: 3 })).toThrow(
      'UNet config: num_heads 3 must divide the 8 channels of an attention layer',
    );
    expect(() =>
      parseUNetConfig({ ...base, use_affine_level: true, use_scale_shift_norm: true }),
    ).toThrow(/use_affine_level must be false/);
    expect(() => parseUNetConfig({ ...base, use_scale_shift_norm: 1 })).toThrow(
      /use_scale_shift_norm must be true or false/,
    );
    expect(() => parseUNetConfig({ ...base, num_heads: 0 })).toThrow(
      /num_heads must be an integer >= 1/,
    );
  });
});
