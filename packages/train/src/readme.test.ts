/**
 * The README's opening example, run as written (a tiny DDPM, a few steps on ONNX Runtime
 * and on tfjs): both engines start from the same loss, and training lowers it.
 */
import { GaussianDiffusion } from '@dif-fusion/diffusion/tfjs';
import { NoiseSchedule, Rng } from '@dif-fusion/schedules';
import { useBackend } from '@dif-fusion/tfjs';
import { describe, expect, it } from 'vitest';
import { buildDenoiser, createDdpmEngine, drawDdpmBatch, type TrainBackend } from './index';

async function readmeExample(backend: TrainBackend): Promise<number[]> {
  const crop = 16;
  const batch = 2;
  const unet = {
    in_channel: 4,
    out_channel: 4,
    inner_channel: 8,
    norm_groups: 4,
    channel_multiplier: [1, 2],
    attn_res: [8],
    res_blocks: 1,
    dropout: 0,
  };
  const schedule = new NoiseSchedule({
    schedule: 'linear',
    n_timestep: 100,
    linear_start: 1e-4,
    linear_end: 0.05,
  });
  const denoiser = buildDenoiser(unet, crop);
  const diffusion = new GaussianDiffusion(denoiser.unet, schedule, { loss: 'l2' });
  const engine = await createDdpmEngine({
    backend, // 'onnxruntime', or a tfjs backend: 'wasm', 'cpu', 'tensorflow'
    diffusion,
    schedule,
    batch,
    crop,
    optimizer: { type: 'adamw', lr: 2e-3 },
    weights: null, // fresh (orthogonal) weights from the seed
    seed: 0,
  });
  const rng = new Rng(0);
  const pairs = Float32Array.from({ length: batch * 4 * crop * crop }, (_, i) => Math.sin(i / 7));
  const losses: number[] = [];
  for (let i = 0; i < 8; i++) {
    const step = await engine.step(
      drawDdpmBatch(pairs, batch, { schedule, rng, varType: diffusion.varType }),
    );
    step.commit?.();
    losses.push(step.loss);
  }
  await engine.release();
  return losses;
}

describe('README example', () => {
  it('trains a tiny DDPM on ONNX Runtime and on tfjs wasm: same first loss, lower at the end', async () => {
    await useBackend('wasm');
    const ort = await readmeExample('onnxruntime');
    const wasm = await readmeExample('wasm');
    expect(Math.abs(ort[0] - wasm[0]) / wasm[0]).toBeLessThan(1e-4);
    for (const l of [ort, wasm]) expect(l[7] + l[6]).toBeLessThan(l[0] + l[1]);
  }, 60_000);
});
