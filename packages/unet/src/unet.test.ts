import { readSafetensors } from '@dif-fusion/io';
import { nchwToNhwc, nhwcToNchw, TfOps, TfParamStore, useBackend } from '@dif-fusion/tfjs';
import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import { golden, hasGolden, noteSkip, relErr } from '../../../test/shared';
import { PAPER_UNET_CONFIG, parseUNetConfig, UNet, type UNetConfig } from './index';

noteSkip(hasGolden, 'golden');

const input = (t: { shape: number[]; data: ArrayLike<number> }) =>
  nchwToNhwc(tf.tensor(Float32Array.from(t.data), t.shape));

describe('UNet structure', () => {
  it('has exactly the official state_dict keys and shapes at the paper size', async () => {
    if (!hasGolden) return;
    const { readFileSync } = await import('node:fs');
    const layout = JSON.parse(readFileSync(golden('official_state_dict_layout.json'), 'utf8'));
    const expected: Record<string, number[]> = {};
    for (const [k, v] of Object.entries(layout.ddpm_gen_pth.keys as Record<string, number[]>))
      if (k.startsWith('denoise_fn.')) expected[k.slice('denoise_fn.'.length)] = v;
    const unet = new UNet(layout.ddpm_gen_pth.config);
    const ours = Object.fromEntries(unet.params().map((p) => [p.name, p.shape]));
    expect(ours).toEqual(expected);
    const count = unet.params().reduce((s, p) => s + p.shape.reduce((a, b) => a * b, 1), 0);
    expect(count).toBe(layout.params.ddpm_unet);
    expect(unet.config).toMatchObject(PAPER_UNET_CONFIG);
  });

  it('reports decoder channels and scales of the reversed features', () => {
    const unet = new UNet({ ...PAPER_UNET_CONFIG, inner_channel: 16, norm_groups: 16 });
    expect(unet.decoderCount).toBe(15);
    expect(unet.decoderChannels()).toEqual([
      16, 16, 16, 32, 32, 32, 64, 64, 64, 128, 128, 128, 128, 128, 128,
    ]);
    expect([0, 2, 3, 5, 8, 11, 14].map((i) => unet.decoderScale(i))).toEqual([
      1, 1, 2, 2, 4, 8, 16,
    ]);
    expect(unet.sizeMultiple).toBe(16);
  });

  it('config round-trips through JSON and rejects bad values in one line', () => {
    const c: UNetConfig = { ...PAPER_UNET_CONFIG, channel_multiplier: [1, 2] };
    expect(parseUNetConfig(JSON.parse(JSON.stringify(c)))).toEqual({
      ...c,
      with_noise_level_emb: true,
      use_affine_level: false,
    });
    expect(() => parseUNetConfig({ ...c, inner_channel: 20 })).toThrow(
      /norm_groups 32 must divide inner_channel/,
    );
    expect(() => parseUNetConfig({ ...c, channel_multiplier: [] })).toThrow(/channel_multiplier/);
  });
});

for (const backend of ['wasm', 'cpu'] as const) {
  describe.skipIf(!hasGolden)(`UNet golden parity (${backend})`, () => {
    for (const name of ['unet_small', 'unet_5level']) {
      it(`${name}: eps and every fe/fd within 1e-4`, async () => {
        await useBackend(backend);
        const file = readSafetensors(golden(`${name}.safetensors`));
        const config = JSON.parse(file.metadata.config);
        const unet = new UNet(config);
        const store = TfParamStore.fromTorch(unet.params(), file.tensors, { prefix: 'weights.' });
        const ops = new TfOps(store);
        const x = input(file.tensors.get('input.x')!);
        const level = tf.tensor(
          Float32Array.from(file.tensors.get('input.noise_level')!.data),
          file.tensors.get('input.noise_level')!.shape,
        );
        const { fe, fd, eps: out } = unet.forwardWithFeatures(ops, x, level);
        const eps = nhwcToNchw(out);
        expect(relErr(await eps.data(), file.tensors.get('output.eps')!.data)).toBeLessThan(1e-4);
        const feKeys = [...file.tensors.keys()].filter((k) => k.startsWith('output.fe.')).sort();
        const fdKeys = [...file.tensors.keys()].filter((k) => k.startsWith('output.fd.')).sort();
        expect(fe.length).toBe(feKeys.length);
        expect(fd.length).toBe(fdKeys.length);
        for (const [i, k] of feKeys.entries()) {
          const g = file.tensors.get(k)!;
          const ours = nhwcToNchw(fe[i]);
          expect(ours.shape).toEqual(g.shape);
          expect(relErr(await ours.data(), g.data), k).toBeLessThan(1e-4);
        }
        for (const [i, k] of fdKeys.entries()) {
          const g = file.tensors.get(k)!;
          const ours = nhwcToNchw(fd[i]);
          expect(ours.shape).toEqual(g.shape);
          expect(relErr(await ours.data(), g.data), k).toBeLessThan(1e-4);
        }
        if (backend === 'cpu') return;
        // forward() alone and stopping early give the same values.
        expect(await unet.forward(ops, x, level).data()).toEqual(await out.data());
        const part = unet.features(ops, x, level, { minDecoderIndex: 5 });
        expect(part.fd[4]).toBeUndefined();
        expect(await part.fd[5].data()).toEqual(await fd[5].data());
        tf.dispose(store.variables());
      });
    }
  });
}
