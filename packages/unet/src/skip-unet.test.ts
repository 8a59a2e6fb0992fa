import { fileURLToPath } from 'node:url';
import { readSafetensors } from '@dif-fusion/io';
import { trainableSpecs, updateRunningStats } from '@dif-fusion/nn';
import {
  nchwToNhwc,
  nhwcToNchw,
  TfOps,
  TfParamStore,
  takeBatchStats,
  useBackend,
} from '@dif-fusion/tfjs';
import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import { relErr } from '../../../test/shared';
import { SkipUNet, skipUnetConfig } from './index';

// The official skip_unet.py's outputs (scripts/make-skip-unet-fixture.py).
const fixture = readSafetensors(
  fileURLToPath(new URL('../fixtures/skip-unet.safetensors', import.meta.url)),
);
const tensor = (k: string) => {
  const t = fixture.tensors.get(k)!;
  return tf.tensor(Float32Array.from(t.data), t.shape);
};
const VARIANTS = ['small', 'affine'];

describe('SkipUNet equals the official skip_unet.py (tfjs, 1e-4 of the largest value)', () => {
  for (const name of VARIANTS) {
    const config = JSON.parse(fixture.metadata[`config.${name}`]);
    it(`${name}: parameter names and shapes are the official state_dict`, () => {
      const unet = new SkipUNet(config);
      const want = [...fixture.tensors.keys()]
        .filter((k) => k.startsWith(`${name}.weights.`))
        .map((k) => [k.slice(`${name}.weights.`.length), fixture.tensors.get(k)!.shape]);
      expect(unet.params().map((p) => [p.name, p.shape])).toEqual(want);
      expect(trainableSpecs(unet.params()).some((p) => p.name.includes('running'))).toBe(false);
    });
    it(`${name}: eval mode (running statistics) and train mode (batch statistics, running update)`, async () => {
      await useBackend('cpu');
      const unet = new SkipUNet(config);
      const weights = new Map(
        unet.params().map((p) => [p.name, fixture.tensors.get(`${name}.weights.${p.name}`)!]),
      );
      const store = TfParamStore.fromTorch(unet.params(), weights);
      const x = nchwToNhwc(tensor(`${name}.x`));
      const level = tensor(`${name}.level`);
      const evalOut = nhwcToNchw(unet.forward(new TfOps(store), x, level));
      const errEval = relErr(await evalOut.data(), fixture.tensors.get(`${name}.eval`)!.data);
      const ops = new TfOps(store, { training: true });
      const trainOut = nhwcToNchw(unet.forward(ops, x, level));
      const errTrain = relErr(await trainOut.data(), fixture.tensors.get(`${name}.train`)!.data);
      const stats = takeBatchStats(ops);
      expect(stats.length).toBe(
        unet.params().filter((p) => p.name.endsWith('running_mean')).length,
      );
      const buffers = updateRunningStats(weights, stats);
      let errStats = 0;
      for (const [k, v] of buffers) {
        const want = fixture.tensors.get(`${name}.after.${k}`)!;
        expect(v.shape).toEqual(want.shape);
        errStats = Math.max(errStats, relErr(v.data, want.data));
      }
      if (process.env.DBG) console.log(name, { errEval, errTrain, errStats });
      expect(errEval).toBeLessThan(1e-4);
      expect(errTrain).toBeLessThan(1e-4);
      expect(errStats).toBeLessThan(1e-5);
      store.dispose();
    });
  }
});

describe('SkipUNet features', () => {
  it('fd holds the up blocks reversed, shaped as decoderChannels/decoderScale say; forward = final_conv(fd[0])', async () => {
    await useBackend('cpu');
    const config = JSON.parse(fixture.metadata['config.affine']);
    const unet = new SkipUNet(config);
    const weights = new Map(
      unet.params().map((p) => [p.name, fixture.tensors.get(`affine.weights.${p.name}`)!]),
    );
    const store = TfParamStore.fromTorch(unet.params(), weights);
    const ops = new TfOps(store);
    const x = nchwToNhwc(tensor('affine.x'));
    const level = tensor('affine.level');
    const { fe, fd } = unet.features(ops, x, level);
    expect(fe).toHaveLength(1 + unet.downs.length);
    expect(fd).toHaveLength(unet.decoderCount);
    expect(unet.decoderCount).toBe(unet.ups.length);
    const channels = unet.decoderChannels();
    for (const [i, f] of fd.entries()) {
      const s = unet.decoderScale(i);
      expect(f.shape).toEqual([2, 8 / s, 12 / s, channels[i]]);
    }
    const head = unet.finalConv.forward(ops, ops.relu(unet.finalNorm.forward(ops, fd[0])));
    const eps = unet.forward(ops, x, level);
    expect(relErr(await head.data(), await eps.data())).toBe(0);
    const partial = unet.features(ops, x, level, { minDecoderIndex: 3 });
    expect(partial.fd.slice(0, 3)).toEqual([undefined, undefined, undefined]);
    expect(relErr(await partial.fd[3]!.data(), await fd[3].data())).toBe(0);
    store.dispose();
  });
});

describe('skip_unet config', () => {
  const base = JSON.parse(fixture.metadata['config.small']);
  it('reads the reference block (channel_multiplier) and skips from floor((1 - r) L R)', () => {
    const { channel_mults, ...rest } = base;
    const c = skipUnetConfig({
      ...rest,
      channel_multiplier: channel_mults,
      norm_groups: 32,
      attn_res: [16],
    });
    expect(c).toEqual({ ...rest, channel_multiplier: channel_mults, use_affine_level: false });
    // the PyTorch fixture's constructor arguments (channel_mults) read the same
    expect(skipUnetConfig(base)).toEqual(c);
    expect(new SkipUNet(c).skipStart).toBe(1); // floor(0.2929 * 2 * 2)
    expect(
      new SkipUNet({ ...c, channel_multiplier: [1, 2, 4, 8, 8], res_blocks: 3 }).skipStart,
    ).toBe(4);
    expect(new SkipUNet({ ...c, skip_range: 1 }).skipStart).toBe(0);
  });
  it('refuses bad values in one line', () => {
    expect(() => skipUnetConfig({ ...base, res_blocks: 1 })).toThrow(
      'skip_unet config: res_blocks must be at least 2 with which_model_G skip_unet',
    );
    expect(() => skipUnetConfig({ ...base, skip_range: 2 })).toThrow(
      'skip_unet config: skip_range must be in [0, 1] (got 2)',
    );
    expect(() => skipUnetConfig({ ...base, num_heads: 2 })).toThrow(/num_heads is an sr3 option/);
  });
});
