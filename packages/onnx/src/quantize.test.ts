import { describe, expect, it } from 'vitest';
import { attr, convAttrs, GraphBuilder } from './graph';
import { decodeModel } from './proto';
import { calibrationTensors, quantizeConvs, RangeRecorder, uint8Params } from './quantize';
import { openSession, runFloat } from './session';
import { randn } from './test-utils';

/** fused = tanh(Conv2(Relu(Conv1([ir, vis])))) + 0 * mean(noise): two convs, fusion interface. */
function convModel() {
  const g = new GraphBuilder('q');
  const ir = g.input('ir', ['N', 1, 'H', 'W']);
  const vis = g.input('vis', ['N', 3, 'H', 'W']);
  const noise = g.input('noise', ['K', 'N', 4, 'H', 'W']);
  const x = g.node('Concat', [ir, vis], { axis: attr.int(1) });
  const w1 = g.initializer('c1.weight', [8, 4, 3, 3], randn([8 * 4 * 9], 11, 0.3));
  const b1 = g.initializer('c1.bias', [8], randn([8], 12, 0.1));
  const h = g.node('Relu', [g.node('Conv', [x, w1, b1], convAttrs(1, 1))]);
  const w2 = g.initializer('c2.weight', [3, 8, 3, 3], randn([3 * 8 * 9], 13, 0.2));
  const b2 = g.initializer('c2.bias', [3], randn([3], 14, 0.1));
  const y = g.node('Conv', [h, w2, b2], convAttrs(1, 1));
  const zero = g.node('Mul', [
    g.node('ReduceMean', [noise], { keepdims: attr.int(0) }),
    g.constF32([0], []),
  ]);
  g.output(g.node('Tanh', [g.node('Add', [y, zero])]), 'fused', ['N', 3, 'H', 'W']);
  return g.serialize({ externalData: 'never' });
}

describe('uint8Params', () => {
  it('maps the range onto 0..255 with 0 exact (hand-computed)', () => {
    // [-1, 3]: step 4/255, zero at round(255/4) = 64
    expect(uint8Params({ min: -1, max: 3 })).toEqual({ scale: 4 / 255, zeroPoint: 64 });
    // [0.5, 2] is widened to [0, 2]: zero at 0
    expect(uint8Params({ min: 0.5, max: 2 })).toEqual({ scale: 2 / 255, zeroPoint: 0 });
    // all negative: zero at the top
    expect(uint8Params({ min: -2, max: -1 })).toEqual({ scale: 2 / 255, zeroPoint: 255 });
  });
});

describe('RangeRecorder', () => {
  it('keeps the min and max over runs; a percentile clips the extremes of each run', () => {
    const r = new RangeRecorder();
    r.add('a', new Float32Array([0, 2, -1]));
    r.add('a', new Float32Array([5, 1]));
    expect(r.ranges.get('a')).toEqual({ min: -1, max: 5 });
    const p = new RangeRecorder(99);
    const v = Float32Array.from({ length: 101 }, (_, i) => i); // 0..100
    p.add('b', v);
    // 1% of 100 gaps = 1 value cut at each end
    expect(p.ranges.get('b')).toEqual({ min: 1, max: 99 });
  });
});

describe('quantizeConvs', () => {
  it('wraps each conv in QDQ: int8 weights per channel, int32 bias at input x weight scale', () => {
    const model = decodeModel(convModel().model);
    const names = calibrationTensors(model);
    expect(names).toHaveLength(4); // two convs: input and output each
    const ranges = new Map(names.map((n) => [n, { min: -2, max: 2 }]));
    const { model: q, report } = quantizeConvs(model, ranges);
    expect(report).toEqual({ convs: 2, skipped: [] });
    const ops = q.graph.node.map((n) => n.opType);
    expect(ops.filter((o) => o === 'Conv')).toHaveLength(2);
    // per conv: Q+DQ of the input, DQ of weight and bias, Q+DQ of the output
    expect(ops.filter((o) => o === 'QuantizeLinear')).toHaveLength(4);
    expect(ops.filter((o) => o === 'DequantizeLinear')).toHaveLength(8);
    const init = new Map(q.graph.initializer.map((t) => [t.name, t]));
    expect(init.has('c1.weight')).toBe(false); // replaced by its int8 form
    const w = init.get('c1.weight__int8')!;
    expect(w.dataType).toBe(3);
    const wq = new Int8Array(new Uint8Array(w.rawData!).buffer);
    for (let c = 0; c < 8; c++) {
      const ch = Array.from(wq.subarray(c * 36, (c + 1) * 36), Math.abs);
      expect(Math.max(...ch)).toBe(127); // symmetric: each channel's largest weight at 127
    }
    const bScale = new Float32Array(new Uint8Array(init.get('c1.bias__scale')!.rawData!).buffer);
    const wScale = new Float32Array(new Uint8Array(init.get('c1.weight__scale')!.rawData!).buffer);
    for (let c = 0; c < 8; c++)
      expect(Math.abs(bScale[c] / ((4 / 255) * wScale[c]) - 1)).toBeLessThan(1e-6);
  });

  it('reduceRange: weights in 7 bits (±63), so AVX2 kernels cannot saturate', () => {
    const model = decodeModel(convModel().model);
    const ranges = new Map(calibrationTensors(model).map((n) => [n, { min: -2, max: 2 }]));
    const { model: q } = quantizeConvs(model, ranges, { reduceRange: true });
    const w = q.graph.initializer.find((t) => t.name === 'c2.weight__int8')!;
    const wq = new Int8Array(new Uint8Array(w.rawData!).buffer);
    for (let c = 0; c < 3; c++)
      expect(Math.max(...Array.from(wq.subarray(c * 72, (c + 1) * 72), Math.abs))).toBe(63);
    // keepFloat: that conv stays as it was
    const y1 = calibrationTensors(model)[1];
    const { report } = quantizeConvs(model, ranges, { keepFloat: new Set([y1]) });
    expect(report).toEqual({ convs: 1, skipped: [y1] });
  });

  it('runs on ONNX Runtime as QLinearConv within a few quantization steps of the float graph', async () => {
    const fp = convModel();
    const model = decodeModel(fp.model);
    const h = 16;
    const w = 16;
    const feeds = {
      ir: { data: randn([h * w], 1, 0.5), dims: [1, 1, h, w] },
      vis: { data: randn([3 * h * w], 2, 0.5), dims: [1, 3, h, w] },
      noise: { data: randn([4 * h * w], 3), dims: [1, 1, 4, h, w] },
    };
    // calibrate on the input itself
    const { calibrationGraph } = await import('./quantize');
    const cal = calibrationGraph(model);
    const { encodeModel } = await import('./proto');
    const cs = (await openSession(encodeModel(cal.model), { device: 'cpu', threads: 1 })).session;
    const rec = new RangeRecorder();
    const out = await runFloat(cs, feeds);
    for (const n of cal.outputs) rec.add(n, out[n].data);
    const { model: q } = quantizeConvs(model, rec.ranges);
    const qs = (await openSession(encodeModel(q), { device: 'cpu', threads: 1 })).session;
    const a = out.fused.data;
    const b = (await runFloat(qs, feeds)).fused.data;
    let maxErr = 0;
    for (let i = 0; i < a.length; i++) maxErr = Math.max(maxErr, Math.abs(a[i] - b[i]));
    const yRange = rec.ranges.get(calibrationTensors(model)[3])!;
    const yStep = (Math.max(0, yRange.max) - Math.min(0, yRange.min)) / 255;
    expect(maxErr).toBeGreaterThan(0); // it did quantize
    expect(maxErr).toBeLessThan(4 * yStep);
  });
});
