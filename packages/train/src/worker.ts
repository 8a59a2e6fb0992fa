/** Worker thread of the data-parallel DDPM trainer (see workers.ts). */
import { parentPort } from 'node:worker_threads';
import { GaussianDiffusion } from '@dif-fusion/diffusion/tfjs';
import { NoiseSchedule } from '@dif-fusion/schedules';
import { Adam, type Conv2dFn, conv2dFor, TfParamStore, useBackend } from '@dif-fusion/tfjs';
import * as tf from '@tensorflow/tfjs-core';
import { buildDenoiser } from './denoiser';
import { shardLossAndGrads } from './tfjs-ddpm';
import { flatten, unflatten, type WorkerInit } from './workers';

let diffusion: GaussianDiffusion;
let store: TfParamStore;
let optimizer: Adam;
let conv2d: Conv2dFn | undefined;
let crop = 0;
let names: string[] = [];
let shapes: number[][] = [];

const port = parentPort!;
port.on('message', async (m: any) => {
  try {
    if (m.type === 'init') {
      const init = m.init as WorkerInit;
      const backend = await useBackend(init.backend);
      const denoiser = buildDenoiser(init.unet, init.crop, { varType: init.diffusion?.var_type });
      diffusion = new GaussianDiffusion(denoiser.unet, NoiseSchedule.fromJSON(init.schedule), {
        ...init.diffusion,
        loss: init.lossType,
      });
      store = TfParamStore.fromTorch(denoiser.params, init.weights);
      names = store.names();
      shapes = names.map((n) => store.get(n).shape.slice());
      optimizer = new Adam(new Map(names.map((n) => [n, store.get(n)])), init.optimizer);
      optimizer.load(init.optimizer);
      conv2d = conv2dFor(backend);
      crop = init.crop;
      port.postMessage({ type: 'ready' });
    } else if (m.type === 'step') {
      const r = shardLossAndGrads(diffusion, store, conv2d, { ...m, crop });
      const flat = flatten(names.map((n) => r.grads.get(n)!));
      tf.dispose([...r.grads.values()]);
      port.postMessage({ type: 'grads', loss: r.loss, vb: r.vb, grads: flat }, [
        flat.buffer as ArrayBuffer,
      ]);
    } else if (m.type === 'apply') {
      const grads = unflatten(m.grads as Float32Array, names, shapes);
      optimizer.apply(grads);
      tf.dispose([...grads.values()]);
    }
  } catch (err) {
    port.postMessage({ type: 'error', error: (err as Error).message });
  }
});
