import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  attr,
  convAttrs,
  GraphBuilder,
  loadFusionModel,
  MODEL_FORMAT,
  readModelConfig,
  writeModelFolder,
} from '@dif-fusion/onnx';
import { afterAll, describe, expect, it } from 'vitest';
import { randn } from '../../../test/shared';
import { quantizeModelFolder } from './quantize-folder';

const root = mkdtempSync(join(tmpdir(), 'dif-onnx-q-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

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

const config = {
  format: MODEL_FORMAT,
  format_version: 1,
  unet: {
    in_channel: 4,
    out_channel: 4,
    inner_channel: 4,
    norm_groups: 2,
    channel_multiplier: [1, 2],
    attn_res: [],
    res_blocks: 1,
    dropout: 0,
    image_size: 16,
  },
  head: { feat_scales: [2, 0], time_steps: [5], out_channels: 3, mode: 'full' },
  time_steps: [5],
  noise_levels: [0.99],
  noise_level_rule: 'midpoint',
  beta_schedule: null,
  head_mode: 'full',
  seed: null,
  size_multiple: 16,
  feature_indices: [],
  inputs: { ir: '[N,1,H,W]', vis: '[N,3,H,W]', noise: '[K,N,4,H,W]' },
  output: '[N,3,H,W]',
  opset: 17,
  external_data: false,
  provenance: { source: 'test' },
  created: new Date(0).toISOString(),
};

describe('quantizeModelFolder', () => {
  it('writes an int8 folder that records how it was made and loads for fusion', async () => {
    const src = join(root, 'fp32');
    writeModelFolder(src, convModel(), config);
    const out = join(root, 'int8');
    const h = 32;
    const w = 16;
    const inputs = [1, 2].map((s) => ({
      ir: randn([h * w], s, 0.5),
      vis: randn([3 * h * w], s + 10, 0.5),
      noise: randn([4 * h * w], s + 20),
      height: h,
      width: w,
    }));
    const { record } = await quantizeModelFolder(src, out, inputs, { source: 'test pairs' });
    expect(record).toEqual({
      format: 'QDQ',
      activations: 'uint8 per tensor (asymmetric)',
      weights: 'int8 per output channel (symmetric)',
      convs: 2,
      float_convs: 0,
      calibration: { inputs: 2, range: 'min-max', source: 'test pairs' },
    });
    const cfg = readModelConfig(out);
    expect(cfg.precision).toBe('int8');
    expect(cfg.quantization).toEqual(record);
    const m = await loadFusionModel(out, { device: 'cpu', threads: 1 });
    const f = await m.fuse({ ...inputs[0], n: 1 });
    await m.release();
    const ref = await loadFusionModel(src, { device: 'cpu', threads: 1 });
    const g = await ref.fuse({ ...inputs[0], n: 1 });
    await ref.release();
    let maxErr = 0;
    for (let i = 0; i < f.length; i++) maxErr = Math.max(maxErr, Math.abs(f[i] - g[i]));
    expect(maxErr).toBeGreaterThan(0);
    // the plumbing, not the precision (tested above): a few 8-bit steps of conv outputs of ±5
    expect(maxErr).toBeLessThan(0.1);
    await expect(quantizeModelFolder(out, join(root, 'again'), inputs)).rejects.toThrow(
      /is int8 already/,
    );
  });
});
