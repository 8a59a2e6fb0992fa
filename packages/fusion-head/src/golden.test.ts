import { readSafetensors } from '@dif-fusion/io';
import { nchwToNhwc, nhwcToNchw, TfOps, TfParamStore, useBackend } from '@dif-fusion/tfjs';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { golden, hasGolden, noteSkip } from '../../../test/shared';
import { FusionHead } from './head';
import { fusionLoss } from './loss';

noteSkip(hasGolden, 'golden');

/** Max absolute difference, and the same over the reference's max |value| (README's measure). */
function errors(a: ArrayLike<number>, b: ArrayLike<number>): { abs: number; rel: number } {
  let maxDiff = 0;
  let maxAbs = 0;
  for (let i = 0; i < b.length; i++) {
    maxDiff = Math.max(maxDiff, Math.abs(a[i] - b[i]));
    maxAbs = Math.max(maxAbs, Math.abs(b[i]));
  }
  return { abs: maxDiff, rel: maxDiff / maxAbs };
}

const tensorOf = (e: { shape: number[]; data: ArrayLike<number> }) =>
  tf.tensor(Float32Array.from(e.data), e.shape, 'float32');

for (const backend of ['cpu', 'wasm'] as const) {
  describe.skipIf(!hasGolden)(`golden parity (${backend})`, () => {
    beforeAll(async () => {
      expect(await useBackend(backend)).toBe(backend);
    });
    afterAll(() => {
      tf.disposeVariables();
    });

    it('fusion head, reference mode, matches output.rgb', () => {
      const g = readSafetensors(golden('fusion_head.safetensors'));
      const feats = readSafetensors(golden('diffusion_feats.safetensors'));
      const meta = g.metadata;
      const head = new FusionHead(
        { feat_scales: JSON.parse(meta.feat_scales), time_steps: JSON.parse(meta.time_steps) },
        {
          inner_channel: Number(meta.inner_channel),
          channel_multiplier: JSON.parse(meta.channel_multiplier),
          res_blocks: 2,
        },
      );
      const store = TfParamStore.fromTorch(head.params(), g.tensors as any, { prefix: 'weights.' });
      const ops = new TfOps(store);
      const out = tf.tidy(() => {
        const fs = head.config.time_steps.map((t) =>
          Array.from({ length: 15 }, (_, i) =>
            nchwToNhwc(tensorOf(feats.tensors.get(`t${t}.fd.${String(i).padStart(2, '0')}`)!)),
          ),
        );
        return nhwcToNchw(head.forward(ops, fs));
      });
      const want = g.tensors.get('output.rgb')!;
      expect(out.shape).toEqual(want.shape);
      const err = errors(out.dataSync(), want.data);
      console.log(
        `[${backend}] head max abs err ${err.abs.toExponential(2)}, rel ${err.rel.toExponential(2)}`,
      );
      expect(err.abs).toBeLessThan(1e-4);
      expect(err.rel).toBeLessThan(1e-4);
      out.dispose();
      store.dispose();
    });

    it('fusion loss matches loss_in and loss_grad', () => {
      const g = readSafetensors(golden('fusion_loss.safetensors'));
      const t = (k: string) => tensorOf(g.tensors.get(k)!);
      const r = fusionLoss(t('input.vis'), t('input.ir'), t('input.fused'));
      const lin = r.lossIn.dataSync()[0];
      const lgr = r.lossGrad.dataSync()[0];
      const win = g.tensors.get('output.loss_in')!.data[0];
      const wgr = g.tensors.get('output.loss_grad')!.data[0];
      console.log(`[${backend}] loss_in ${lin} (want ${win}), loss_grad ${lgr} (want ${wgr})`);
      expect(Math.abs(lin - win)).toBeLessThan(1e-5);
      expect(Math.abs(lgr - wgr)).toBeLessThan(1e-5);
      expect(Math.abs(lin - win) / Math.abs(win)).toBeLessThan(1e-5);
      expect(Math.abs(lgr - wgr) / Math.abs(wgr)).toBeLessThan(1e-5);
      expect(r.loss.dataSync()[0]).toBeCloseTo(win + wgr, 5);
    });
  });
}
