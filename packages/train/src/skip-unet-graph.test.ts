import { fileURLToPath } from 'node:url';
import { readSafetensors } from '@dif-fusion/io';
import { type TorchWeights, trainableSpecs, updateRunningStats } from '@dif-fusion/nn';
import { TfOps, TfParamStore, takeBatchStats, tfToTorch } from '@dif-fusion/tfjs';
import { SkipUNet } from '@dif-fusion/unet';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { GraphBuilder, OnnxOps, openSession, runFloat } from '@dif-fusion/onnx';
import { GradOps, paramShapes, TrainSession } from '@dif-fusion/onnx/train';
import { describe, expect, it } from 'vitest';
import { randn, relErr } from '../../../test/shared';
import { buildDdpmTrainGraph } from './ddpm-graph';

// The official skip_unet.py's outputs (packages/unet/scripts/make-skip-unet-fixture.py).
const fixture = readSafetensors(
  fileURLToPath(new URL('../../unet/fixtures/skip-unet.safetensors', import.meta.url)),
);
const get = (k: string) => {
  const t = fixture.tensors.get(k);
  if (!t) throw new Error(`fixture lacks ${k}`);
  return { shape: t.shape.slice(), data: Float32Array.from(t.data) };
};

function variant(name: string) {
  const unet = new SkipUNet(JSON.parse(fixture.metadata[`config.${name}`]));
  const weights: TorchWeights = new Map(
    unet.params().map((p) => [p.name, get(`${name}.weights.${p.name}`)]),
  );
  return { unet, weights, x: get(`${name}.x`), level: get(`${name}.level`) };
}

async function run(
  model: Uint8Array,
  feeds: Record<string, { data: Float32Array; dims: number[] }>,
): Promise<Record<string, { data: Float32Array; dims: number[] }>> {
  const { session } = await openSession(model, { device: 'cpu', threads: 1 });
  try {
    return await runFloat(session, feeds);
  } finally {
    await session.release();
  }
}

describe('SkipUNet on ONNX Runtime equals the official skip_unet.py (1e-4 of the largest value)', () => {
  for (const name of ['small', 'affine']) {
    it(`${name}: eval mode (OnnxOps, BatchNormalization with the running statistics)`, async () => {
      const { unet, weights, x, level } = variant(name);
      const g = new GraphBuilder('skip');
      const ops = new OnnxOps(g, weights);
      g.output(unet.forward(ops, g.input('x', x.shape), g.input('level', level.shape)), 'eps');
      const out = await run(g.serialize().model, {
        x: { data: x.data, dims: x.shape },
        level: { data: level.data, dims: level.shape },
      });
      const err = relErr(out.eps.data, get(`${name}.eval`).data);
      if (process.env.DBG) console.log(name, 'OnnxOps eval', err);
      expect(err).toBeLessThan(1e-4);
    });
    it(`${name}: eval mode on GradOps (running statistics as untrained inputs)`, async () => {
      const { unet, weights, x, level } = variant(name);
      const g = new GraphBuilder('skip-eval-grad');
      const buffers = new Set(
        unet
          .params()
          .filter((p) => p.buffer)
          .map((p) => p.name),
      );
      const ops = new GradOps(g, paramShapes(unet.params()), {
        training: false,
        trainable: (n) => !buffers.has(n),
      });
      g.output(unet.forward(ops, ops.input('x', x.shape), ops.input('level', level.shape)), 'y');
      const feeds: Record<string, { data: Float32Array; dims: number[] }> = {
        x: { data: x.data, dims: x.shape },
        level: { data: level.data, dims: level.shape },
      };
      for (const [n, v] of ops.paramInputs) {
        feeds[v] = { data: weights.get(n)!.data, dims: weights.get(n)!.shape };
        expect(ops.requiresGrad(v), n).toBe(!buffers.has(n));
      }
      const out = await run(g.serialize().model, feeds);
      expect(relErr(out.y.data, get(`${name}.eval`).data)).toBeLessThan(1e-4);
    });
    it(`${name}: train mode (GradOps, batch statistics as outputs, PyTorch's running update)`, async () => {
      const { unet, weights, x, level } = variant(name);
      const g = new GraphBuilder('skip-train');
      const ops = new GradOps(g, paramShapes(unet.params()));
      g.output(unet.forward(ops, ops.input('x', x.shape), ops.input('level', level.shape)), 'y');
      for (const s of ops.batchStats) {
        g.output(s.mean, `m.${s.site}`);
        g.output(s.variance, `v.${s.site}`);
      }
      const feeds: Record<string, { data: Float32Array; dims: number[] }> = {
        x: { data: x.data, dims: x.shape },
        level: { data: level.data, dims: level.shape },
      };
      // Only the parameters the training forward reads: the buffers are not inputs.
      for (const [n, v] of ops.paramInputs)
        feeds[v] = { data: weights.get(n)!.data, dims: weights.get(n)!.shape };
      expect([...ops.paramInputs.keys()].some((n) => n.includes('running'))).toBe(false);
      const out = await run(g.serialize().model, feeds);
      const err = relErr(out.y.data, get(`${name}.train`).data);
      if (process.env.DBG) console.log(name, 'GradOps train', err);
      expect(err).toBeLessThan(1e-4);
      const stats = ops.batchStats.map((s) => ({
        site: s.site,
        mean: out[`m.${s.site}`].data,
        variance: out[`v.${s.site}`].data,
        count: s.count,
      }));
      let worst = 0;
      for (const [k, v] of updateRunningStats(weights, stats))
        worst = Math.max(worst, relErr(v.data, get(`${name}.after.${k}`).data));
      if (process.env.DBG) console.log(name, 'GradOps running stats', worst);
      expect(worst).toBeLessThan(1e-5);
    });
  }
});

describe('SkipUNet DDPM training graph equals tfjs (1e-4 relative)', () => {
  it('loss, every gradient and every batch statistic; buffers are neither inputs nor trained', async () => {
    await tf.setBackend('cpu');
    const config = JSON.parse(fixture.metadata['config.affine']);
    const unet = new SkipUNet({ ...config, out_channel: config.in_channel });
    const b = 2;
    const s = 8;
    const c = unet.config.in_channel;
    const shape = [b, c, s, s];
    const x = randn(shape, 1, 0.5);
    const noise = randn(shape, 2);
    const level = Float32Array.from([0.93, 0.41]);
    const specs = unet.params();
    const store = TfParamStore.init(trainableSpecs(specs), 7);
    const weights = store.toTorch();
    const graph = buildDdpmTrainGraph(unet, { batch: b, size: s, loss: 'l2' });
    expect(graph.params.map((p) => p.name).sort()).toEqual(store.names().sort());
    expect(graph.batchStats?.length).toBe(
      specs.filter((p) => p.name.endsWith('running_mean')).length,
    );

    const ops = new TfOps(store, { training: true });
    const vars = store.names().map((n) => store.get(n));
    const { value, grads } = tf.variableGrads(() => {
      const nhwc = (v: Float32Array) => tf.transpose(tf.tensor(v, shape), [0, 2, 3, 1]);
      const lv = tf.tensor2d(level, [b, 1]);
      const l4 = tf.reshape(lv, [b, 1, 1, 1]);
      const nz = nhwc(noise);
      const xn = tf.add(tf.mul(l4, nhwc(x)), tf.mul(tf.sqrt(tf.sub(1, tf.square(l4))), nz));
      return tf.div(
        tf.sum(tf.square(tf.sub(nz, unet.forward(ops, xn, lv)))),
        b * c * s * s,
      ) as tf.Scalar;
    }, vars);
    const tfStats = takeBatchStats(ops);

    const session = await TrainSession.open(graph, { threads: 1 });
    const got = await session.run(new Map([...weights].map(([k, v]) => [k, v.data])), {
      x,
      noise,
      level,
    });
    await session.release();
    expect(Math.abs(got.scalars.loss - value.dataSync()[0]) / value.dataSync()[0]).toBeLessThan(
      1e-5,
    );
    // Biases right before a BatchNorm (through bypass chains too) have gradient 0 up to
    // rounding: those are compared absolutely.
    for (const [i, name] of store.names().entries()) {
      const want = tfToTorch(grads[vars[i].name]).dataSync();
      const scale = Math.max(...Array.from(want, Math.abs));
      const gotG = got.grads.get(name)!;
      if (scale < 1e-6) expect(Math.max(...Array.from(gotG, Math.abs)), name).toBeLessThan(1e-6);
      else expect(relErr(gotG, want), name).toBeLessThan(1e-4);
    }
    for (const st of tfStats) {
      expect(relErr(got.tensors.get(`bn_mean.${st.site}`)!, st.mean)).toBeLessThan(1e-4);
      expect(relErr(got.tensors.get(`bn_var.${st.site}`)!, st.variance)).toBeLessThan(1e-4);
    }
    tf.dispose([value, ...Object.values(grads)]);
    store.dispose();
  });
});
