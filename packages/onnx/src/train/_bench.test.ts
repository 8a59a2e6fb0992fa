import { UNet } from '@dif-fusion/unet';
import { buildDdpmTrainGraph } from './ddpm-graph';
import { TrainSession } from './train-session';
import { Rng } from '@dif-fusion/schedules';
import { it } from 'vitest';
it('bench', async () => {
  const inner = Number(process.env.INNER ?? 16);
  const threads = Number(process.env.THREADS ?? 2);
  const unet = new UNet({
    in_channel: 4,
    out_channel: 4,
    inner_channel: inner,
    norm_groups: 16,
    channel_mults: [1, 2, 4, 8, 8],
    attn_res: [16],
    res_blocks: 2,
    dropout: 0.2,
    image_size: 64,
  });
  let t0 = performance.now();
  const graph = buildDdpmTrainGraph(unet, { batch: 4, size: 64, loss: 'l2' });
  console.log(
    'graph build',
    (performance.now() - t0).toFixed(0),
    'ms',
    graph.model.length / 1e6,
    'MB',
    'params',
    graph.params.length,
    'dropout',
    graph.dropout.length,
  );
  t0 = performance.now();
  const s = await TrainSession.open(graph, { device: 'cpu', threads });
  console.log('session', (performance.now() - t0).toFixed(0), 'ms');
  const rng = new Rng(1);
  const params = new Map<string, Float32Array>();
  for (const p of graph.params) {
    const n = p.shape.reduce((a, b) => a * b, 1);
    const a = new Float32Array(n);
    for (let i = 0; i < n; i++) a[i] = rng.normal() * 0.05;
    params.set(p.name, a);
  }
  const feeds: Record<string, Float32Array> = {};
  for (const [name, shape] of graph.inputs) {
    const n = shape.reduce((a, b) => a * b, 1);
    const a = new Float32Array(n);
    for (let i = 0; i < n; i++)
      a[i] = name.startsWith('dropout')
        ? rng.uniform() < 0.2
          ? 0
          : 1.25
        : name === 'level'
          ? 0.5
          : rng.normal();
    feeds[name] = a;
  }
  for (let i = 0; i < 6; i++) {
    const c0 = process.cpuUsage();
    t0 = performance.now();
    const r = await s.run(params, feeds);
    const c = process.cpuUsage(c0);
    console.log(
      'step',
      i,
      ((performance.now() - t0) / 1000).toFixed(3),
      's wall',
      ((c.user + c.system) / 1e6).toFixed(2),
      'cpu-s loss',
      r.scalars.loss.toFixed(4),
    );
  }
  console.log('rss', (process.memoryUsage().rss / 1e9).toFixed(2), 'GB');
});
