/**
 * Imported weights run through our networks (tfjs, cpu backend) give what PyTorch computed
 * with the same weights (fixtures/reference.safetensors, made by scripts/make-fixtures.py):
 * the UNet's noise prediction at t = 5, 50, 100 (midpoint noise levels) and the fused image.
 */
import { join } from 'node:path';
import { FusionHead } from '@dif-fusion/fusion-head';
import { readSafetensors } from '@dif-fusion/io';
import { NoiseSchedule } from '@dif-fusion/schedules';
import { nchwToNhwc, nhwcToNchw, TfOps, TfParamStore, useBackend } from '@dif-fusion/tfjs';
import { UNet } from '@dif-fusion/unet';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { relErr } from '../../../test/shared';
import { type ImportedDifFusion, importDifFusion, inferSchedule } from './index';

const fixture = (name: string) => join(__dirname, '..', 'fixtures', name);

describe('imported weights reproduce the PyTorch forward pass', () => {
  const ref = readSafetensors(fixture('reference.safetensors'));
  const t = (name: string) => {
    const e = ref.tensors.get(name);
    if (!e) throw new Error(`reference.safetensors: no ${name}`);
    return tf.tensor(Float32Array.from(e.data), e.shape, 'float32');
  };
  let imported: ImportedDifFusion;

  beforeAll(async () => {
    expect(await useBackend('cpu')).toBe('cpu');
    imported = await importDifFusion(
      { ddpm: fixture('ddpm_gen.pth'), head: fixture('df_head_gen.pth') },
      { normGroups: 2 },
    );
  });
  afterAll(() => tf.disposeVariables());

  it('infers the beta schedule from the betas buffer; midpoint levels equal PyTorch', () => {
    expect(imported.schedule).toEqual(JSON.parse(ref.metadata.schedule));
    const schedule = new NoiseSchedule(imported.schedule);
    for (const step of imported.head!.config.time_steps) {
      const want = ref.tensors.get(`t${step}.level`)!.data[0];
      expect(Math.abs(schedule.midpointNoiseLevel(step) - want)).toBeLessThan(1e-7);
    }
    // the other schedules are recognised too (rebuilt, then stored as float32 like a buffer)
    for (const name of ['quad', 'cosine', 'warmup10', 'jsd'] as const) {
      const cfg = { schedule: name, n_timestep: 100, linear_start: 1e-4, linear_end: 2e-2 };
      const b = Float32Array.from(new NoiseSchedule(cfg).betas);
      expect(inferSchedule(b)?.schedule, name).toBe(name);
    }
    expect(inferSchedule(Float32Array.from([0.1, 0.5, 0.2]))).toBeNull();
  });

  it('UNet eps at t = 5, 50, 100 and the fused image within 1e-4 relative', () => {
    const unet = new UNet(imported.unet.config);
    const head = new FusionHead(imported.head!.config, imported.unet.config);
    const unetOps = new TfOps(TfParamStore.fromTorch(unet.params(), imported.unet.weights));
    const headOps = new TfOps(TfParamStore.fromTorch(head.params(), imported.head!.weights));
    const errs: Record<string, number> = {};
    tf.tidy(() => {
      const feats: tf.Tensor[][] = [];
      for (const step of head.config.time_steps) {
        const x = nchwToNhwc(t(`t${step}.x_noisy`));
        const level = t(`t${step}.level`);
        const eps = nhwcToNchw(unet.forward(unetOps, x, level));
        errs[`eps t${step}`] = relErr(eps.dataSync(), ref.tensors.get(`t${step}.eps`)!.data);
        feats.push(unet.features(unetOps, x, level).fd);
      }
      const fused = nhwcToNchw(head.forward(headOps, feats));
      expect(fused.shape).toEqual(ref.tensors.get('output.fused')!.shape);
      errs.fused = relErr(fused.dataSync(), ref.tensors.get('output.fused')!.data);
    });
    console.log(
      `[torch-import] rel err vs PyTorch: ${Object.entries(errs)
        .map(([k, v]) => `${k} ${v.toExponential(2)}`)
        .join(', ')}`,
    );
    for (const [k, v] of Object.entries(errs)) expect(v, k).toBeLessThan(1e-4);
  });
});
