import { describe, expect, it } from 'vitest';
import { GradOps } from '../grad/grad-ops';
import { GraphBuilder } from '../graph';
import { randn } from '../test-utils';
import { ownBuffer, ThreadedTrainSession } from './threaded-session';
import { finishTrainGraph, paramShapes, type TrainGraph } from './train-graph';
import { TrainSession } from './train-session';

/** A small training graph: loss = mean((conv(swish(groupNorm(conv(x)))) - target)^2). */
function smallGraph(): TrainGraph {
  const specs = [
    { name: 'c1.weight', shape: [8, 4, 3, 3] },
    { name: 'c1.bias', shape: [8] },
    { name: 'n.weight', shape: [8] },
    { name: 'n.bias', shape: [8] },
    { name: 'c2.weight', shape: [4, 8, 3, 3] },
  ];
  const g = new GraphBuilder('small_train');
  const ops = new GradOps(g, paramShapes(specs));
  const shape = [2, 4, 16, 16];
  const x = ops.input('x', shape);
  const target = ops.input('target', shape);
  const p = (name: string) => ops.param(name);
  const h = ops.conv2d(x, p('c1.weight'), p('c1.bias'), { padding: 1 });
  const y = ops.conv2d(
    ops.swish(ops.groupNorm(h, 4, p('n.weight'), p('n.bias'))),
    p('c2.weight'),
    null,
    {
      padding: 1,
    },
  );
  const loss = ops.meanAll(ops.square(ops.sub(y, target)));
  const inputs = new Map([
    ['x', shape],
    ['target', shape],
  ]);
  return finishTrainGraph(g, ops, loss, {}, inputs);
}

describe('ThreadedTrainSession (the step on a worker thread)', () => {
  it('gives TrainSession’s loss and gradients bit for bit; the parameters move there and back', async () => {
    const graph = smallGraph();
    const shape = [2, 4, 16, 16];
    const feeds = { x: randn(shape, 1, 0.5), target: randn(shape, 2) };
    const arrays = new Map(graph.params.map((p, i) => [p.name, randn(p.shape, 10 + i, 0.1)]));
    const direct = await TrainSession.open(graph, { threads: 1 });
    const want = await direct.run(arrays, feeds);
    await direct.release();

    const holders = new Map([...arrays].map(([k, v]) => [k, { data: v.slice() }]));
    const before = new Map([...holders].map(([k, h]) => [k, h.data]));
    const threaded = (await ThreadedTrainSession.open(graph, { threads: 1 }))!;
    const got = await threaded.run(holders, feeds);
    expect(got.scalars.loss).toBe(want.scalars.loss);
    for (const [name, g] of want.grads) expect(got.grads.get(name)).toEqual(g);
    for (const [name, h] of holders) {
      expect(h.data).toEqual(arrays.get(name)); // back, unchanged
      expect(before.get(name)!.length).toBe(0); // the array sent was moved (detached), not copied
    }
    // A second step with the returned arrays.
    expect((await threaded.run(holders, feeds)).scalars.loss).toBe(want.scalars.loss);
    await threaded.release();
  }, 60_000);

  it('gradients into the caller’s arrays (moved there and back, the same memory every step), bit for bit', async () => {
    const graph = smallGraph();
    const shape = [2, 4, 16, 16];
    const feeds = { x: randn(shape, 3, 0.5), target: randn(shape, 4) };
    const arrays = new Map(graph.params.map((p, i) => [p.name, randn(p.shape, 30 + i, 0.1)]));
    const direct = await TrainSession.open(graph, { threads: 1 });
    const want = await direct.run(arrays, feeds);
    // TrainSession: ORT writes into the given arrays, which the result holds
    const into = new Map(
      graph.params.map((p) => [p.name, new Float32Array(arrays.get(p.name)!.length)]),
    );
    const same = await direct.run(arrays, feeds, into);
    await direct.release();
    expect(same.scalars).toEqual(want.scalars);
    for (const [name, g] of want.grads) {
      expect(same.grads.get(name)).toBe(into.get(name));
      expect(into.get(name)).toEqual(g);
    }

    const holders = new Map([...arrays].map(([k, v]) => [k, { data: v.slice() }]));
    const grads = new Map(
      graph.params.map((p) => [p.name, { data: new Float32Array(arrays.get(p.name)!.length) }]),
    );
    const threaded = (await ThreadedTrainSession.open(graph, { threads: 1 }))!;
    for (let step = 0; step < 2; step++) {
      const sent = new Map([...grads].map(([k, h]) => [k, h.data]));
      const got = await threaded.run(holders, feeds, 0, grads);
      expect(got.scalars.loss).toBe(want.scalars.loss);
      for (const [name, g] of want.grads) {
        expect(got.grads.get(name)).toBe(grads.get(name)!.data); // the holder's array
        expect(grads.get(name)!.data).toEqual(g);
        expect(sent.get(name)!.length).toBe(0); // moved, not copied
      }
    }
    await threaded.release();
  }, 60_000);

  it('ownBuffer: whole-buffer arrays as they are, views copied into their own buffer', () => {
    const whole = new Float32Array(4);
    expect(ownBuffer(whole)).toBe(whole);
    const file = new Float32Array(8).fill(3);
    const view = file.subarray(2, 5);
    const own = ownBuffer(view);
    expect(own).not.toBe(view);
    expect([...own]).toEqual([3, 3, 3]);
    expect(own.buffer.byteLength).toBe(12);
  });
});
