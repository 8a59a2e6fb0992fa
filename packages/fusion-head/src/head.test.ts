import { readFileSync } from 'node:fs';
import { Rng } from '@dif-fusion/schedules';
import { TfOps, TfParamStore } from '@dif-fusion/tfjs';
import * as tf from '@tensorflow/tfjs-core';
// gradients (vitest resolves this ESM file; plain Node cannot, see README)
import '@tensorflow/tfjs-core/dist/register_all_gradients.js';
import '@tensorflow/tfjs-backend-cpu';
import { beforeAll, describe, expect, it } from 'vitest';
import { golden, hasGolden } from '../../../test/shared';
import { headConfigFromReference, normalizeHeadConfig, parseJsonWithComments } from './config';
import { FusionHead } from './head';

const TINY = {
  feat_scales: [1, 4],
  time_steps: [5, 50],
};
/** The decoder keys of the UNet the tiny head reads. */
const TINY_UNET = { inner_channel: 4, channel_multiplier: [1, 2], res_blocks: 2 };
const PAPER_UNET = { inner_channel: 128, channel_multiplier: [1, 2, 4, 8, 8], res_blocks: 2 };

/** Random NHWC features for a config: fd[i] at level floor(i/3). */
function randomFeats(
  head: FusionHead,
  n: number,
  size: number,
  seed: number,
): (tf.Tensor | null)[][] {
  const rng = new Rng(seed);
  const maxScale = 3 * head.unet.channel_multiplier.length;
  return head.config.time_steps.map(() =>
    Array.from({ length: maxScale }, (_, i) => {
      const s = size >> Math.floor(i / 3);
      const c = head.featureChannels(i);
      const data = new Float32Array(n * s * s * c).map(() => rng.normal());
      return tf.tensor4d(data, [n, s, s, c]);
    }),
  );
}

describe('FusionHead', () => {
  beforeAll(async () => {
    await tf.setBackend('cpu');
  });

  it.skipIf(!hasGolden)(
    'has the official state_dict keys and shapes at the paper configuration',
    () => {
      const layout = JSON.parse(readFileSync(golden('official_state_dict_layout.json'), 'utf8'))
        .fusion_head_gen_pth.keys as Record<string, number[]>;
      const head = new FusionHead(
        { feat_scales: [2, 5, 8, 11, 14], time_steps: [5, 50, 100] },
        PAPER_UNET,
      );
      const mine = Object.fromEntries(head.params().map((p) => [p.name, p.shape]));
      expect(mine).toEqual(layout);
      expect(Object.keys(mine)).toEqual(Object.keys(layout)); // state_dict order too
    },
    30_000,
  );

  it('the reference fusion_train.json (text, // comments) builds the paper head; round-trips', () => {
    // The blocks of the reference's config/fusion_train.json that the head reads, in its
    // format (line comments included); the other blocks are ignored.
    const text = `{
      "name": "ddpm-FSHead",
      "model_df": {
        "feat_scales": [2, 5, 8, 11, 14],
        "out_channels": 4,
        "loss_type": "ce",
        "output_cm_size": 160,
        "psp": true,
        "feat_type": "dec",
        "t": [5, 50, 100]
      },
      "model": {
        "which_model_G": "sr3",
        "unet": { "in_channel": 4, "out_channel": 4, "inner_channel": 128,
                  "channel_multiplier": [1, 2, 4, 8, 8], "attn_res": [16], "res_blocks": 2, "dropout": 0.2 }
      },
      "train": {
        "n_epoch": 300,
        "optimizer": { "type": "adam", "lr": 1e-4 },
        "sheduler": {
          "lr_policy": "linear",  // options: linear, poly, step
          "gamma": 0.1            // not a "string // inside"
        }
      }
    }`;
    const want = {
      feat_scales: [14, 11, 8, 5, 2],
      time_steps: [5, 50, 100],
      out_channels: 3,
      mode: 'reference',
    };
    const cfg = headConfigFromReference(text, PAPER_UNET);
    expect(cfg).toEqual(want);
    expect(headConfigFromReference(parseJsonWithComments(text), PAPER_UNET)).toEqual(want);
    // the channels are the UNet's (the DDPM checkpoint's); mode is an option
    const small = headConfigFromReference(
      text,
      { ...PAPER_UNET, inner_channel: 16 },
      { mode: 'full' },
    );
    expect(small.mode).toBe('full');
    expect(new FusionHead(small, { ...PAPER_UNET, inner_channel: 16 }).featureChannels(2)).toBe(16);
    // JSON round trip: what checkpoints store rebuilds the same head with its UNet's config
    const head = new FusionHead(cfg, PAPER_UNET);
    const again = FusionHead.fromJSON(JSON.parse(JSON.stringify(head)), PAPER_UNET);
    expect(again.toJSON()).toEqual(want);
    expect(again.params()).toEqual(head.params());
    expect(parseJsonWithComments('{"a": "x // y,]", "b": [1, 2,], // c\n}')).toEqual({
      a: 'x // y,]',
      b: [1, 2],
    });
    expect(() =>
      headConfigFromReference(
        { model_df: { feat_type: 'enc' } },
        { inner_channel: 8, channel_multiplier: [1], res_blocks: 2 },
      ),
    ).toThrow(/feat_type 'enc'/);
  });

  it('config round-trips through JSON', () => {
    const head = new FusionHead({ ...TINY, mode: 'full', out_channels: 3 }, TINY_UNET);
    const again = FusionHead.fromJSON(JSON.stringify(head), TINY_UNET);
    expect(again.toJSON()).toEqual(head.toJSON());
    expect(again.params()).toEqual(head.params());
    // the official name `t` is accepted too
    expect(
      FusionHead.fromJSON({ ...TINY, time_steps: undefined, t: [7] }, TINY_UNET).config.time_steps,
    ).toEqual([7]);
  });

  it('rejects bad configs with a clear message', () => {
    expect(() => normalizeHeadConfig({ ...TINY, feat_scales: [1, 2] }, TINY_UNET)).toThrow(
      /consecutive resolution levels/,
    );
    expect(() => normalizeHeadConfig({ ...TINY, feat_scales: [9] }, TINY_UNET)).toThrow(
      /out of range/,
    );
    expect(() => normalizeHeadConfig({ ...TINY, feat_scales: [4] }, TINY_UNET)).toThrow(
      /mode 'full'/,
    );
    expect(() =>
      normalizeHeadConfig({ ...TINY, feat_scales: [4], mode: 'full' }, TINY_UNET),
    ).not.toThrow();
  });

  it('reads a config written with a copy of the UNet keys; the copy must match the UNet', () => {
    const old = { ...TINY, inner_channel: 4, channel_multiplier: [1, 2], res_blocks: 2 };
    expect(normalizeHeadConfig(old, TINY_UNET)).toEqual(normalizeHeadConfig(TINY, TINY_UNET));
    expect(normalizeHeadConfig(old, TINY_UNET)).not.toHaveProperty('inner_channel');
    expect(() => normalizeHeadConfig({ ...old, inner_channel: 8 }, TINY_UNET)).toThrow(
      "fusion head config: inner_channel 8 differs from the UNet's 4 (the head was made for another UNet)",
    );
  });

  it('requiredFeatureIndices: reference skips the finest scale, full needs it', () => {
    const paper = { feat_scales: [2, 5, 8, 11, 14] };
    const unet = { ...PAPER_UNET, inner_channel: 8 };
    expect(new FusionHead(paper, unet).requiredFeatureIndices()).toEqual([5, 8, 11, 14]);
    expect(new FusionHead({ ...paper, mode: 'full' }, unet).requiredFeatureIndices()).toEqual([
      2, 5, 8, 11, 14,
    ]);
  });

  it('reference mode reads neither the finest features nor the finest Block', () => {
    const head = new FusionHead(TINY, TINY_UNET);
    const store = TfParamStore.init(head.params(), 3);
    const ops = new TfOps(store);
    const feats = randomFeats(head, 1, 8, 1);
    const full = tf.tidy(() => head.forward(ops, feats as tf.Tensor[][]));
    for (const f of feats) {
      f[1]?.dispose();
      f[1] = null;
    }
    const pruned = tf.tidy(() => head.forward(ops, feats as tf.Tensor[][]));
    expect(pruned.shape).toEqual([1, 8, 8, 3]);
    expect(Array.from(pruned.dataSync())).toEqual(Array.from(full.dataSync()));
    const used = new Set(head.usedParams().map((p) => p.name));
    expect(used.has('decoder.2.block.0.weight')).toBe(false); // finest Block
    expect(used.has('decoder.0.block.0.weight')).toBe(true);
    expect(head.params().length - used.size).toBe(4);
    tf.dispose([full, pruned, ...feats.flat().filter((t): t is tf.Tensor => t !== null)]);
    store.dispose();
  });

  it('full mode: output shape, finest features matter, every parameter used', () => {
    const head = new FusionHead({ ...TINY, mode: 'full', out_channels: 3 }, TINY_UNET);
    expect(head.usedParams()).toEqual(head.params());
    const store = TfParamStore.init(head.params(), 4);
    const ops = new TfOps(store);
    const feats = randomFeats(head, 2, 16, 2);
    const a = tf.tidy(() => head.forward(ops, feats as tf.Tensor[][]));
    expect(a.shape).toEqual([2, 16, 16, 3]);
    const v = a.dataSync();
    expect(Math.max(...v.map(Math.abs))).toBeLessThan(1);
    // changing the finest features changes the output
    const old = feats[0][1]!;
    feats[0][1] = tf.mul(old, -1);
    const b = tf.tidy(() => head.forward(ops, feats as tf.Tensor[][]));
    expect(tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]).toBeGreaterThan(1e-4);
    tf.dispose([a, b, old, ...feats.flat().filter((t): t is tf.Tensor => t !== null)]);
    store.dispose();
  });

  it('single time step: reference skips the Blocks like the official forward, full applies them', () => {
    const ref = new FusionHead({ ...TINY, time_steps: [5] }, TINY_UNET);
    expect(ref.params().some((p) => p.name === 'decoder.0.block.2.weight')).toBe(true);
    expect(ref.params().some((p) => p.name === 'decoder.0.block.0.weight')).toBe(false);
    expect(ref.usedParams().some((p) => p.name.startsWith('decoder.0.'))).toBe(false);
    const full = new FusionHead({ ...TINY, time_steps: [5], mode: 'full' }, TINY_UNET);
    expect(full.usedParams().some((p) => p.name === 'decoder.0.block.2.weight')).toBe(true);
    const store = TfParamStore.init(full.params(), 5);
    const feats = randomFeats(full, 1, 8, 3);
    const y = tf.tidy(() => full.forward(new TfOps(store), feats as tf.Tensor[][]));
    expect(y.shape).toEqual([1, 8, 8, 3]);
    tf.dispose([y, ...feats.flat().filter((t): t is tf.Tensor => t !== null)]);
    store.dispose();
  });

  it('merge: a one-step head with the merge weights summed over the steps equals the two-step head fed the same features twice', () => {
    const two = new FusionHead(
      { ...TINY, mode: 'full', output: 'luma', source_skip: true },
      TINY_UNET,
    );
    const one = new FusionHead(
      { ...TINY, time_steps: [5], mode: 'full', output: 'luma', source_skip: true, merge: true },
      TINY_UNET,
    );
    expect(one.toJSON().merge).toBe(true);
    expect(new FusionHead(JSON.parse(JSON.stringify(one.toJSON())), TINY_UNET).params()).toEqual(
      one.params(),
    );
    const dims = Object.fromEntries(one.params().map((p) => [p.name, p.shape]));
    expect(dims['decoder.0.block.0.weight']).toEqual([8, 8, 1, 1]);
    const store2 = TfParamStore.init(two.params(), 11);
    // the one-step weights: block.0 [dim, 2 dim, 1, 1] summed over its two input halves
    const torch2 = store2.toTorch();
    const torch1 = new Map(
      [...torch2].map(([name, t]) => {
        // the Blocks' merge convs (decoder.{2i}; the attention blocks' block.0 is a 3x3 conv)
        const merge = /^decoder\.\d+\.block\.0\.weight$/.test(name) && t.shape[2] === 1;
        if (!merge) return [name, t];
        const [o, i2] = t.shape;
        const i = i2 / 2;
        const data = new Float32Array(o * i);
        for (let a = 0; a < o; a++)
          for (let b = 0; b < i; b++) data[a * i + b] = t.data[a * i2 + b] + t.data[a * i2 + i + b];
        return [name, { ...t, shape: [o, i, 1, 1], data }];
      }),
    );
    const store1 = TfParamStore.fromTorch(one.params(), torch1);
    const feats1 = randomFeats(one, 2, 8, 12);
    const feats2 = [feats1[0], feats1[0]];
    const rng = new Rng(13);
    const vis = tf.tensor4d(
      new Float32Array(2 * 64 * 3).map(() => rng.normal() * 0.5),
      [2, 8, 8, 3],
    );
    const ir = tf.tensor4d(
      new Float32Array(2 * 64).map(() => rng.normal() * 0.5),
      [2, 8, 8, 1],
    );
    const y1 = tf.tidy(() => one.forward(new TfOps(store1), feats1 as tf.Tensor[][], { vis, ir }));
    const y2 = tf.tidy(() => two.forward(new TfOps(store2), feats2 as tf.Tensor[][], { vis, ir }));
    const d = tf.tidy(() => tf.max(tf.abs(tf.sub(y1, y2))).dataSync()[0]);
    expect(d).toBeLessThan(1e-5);
    tf.dispose([y1, y2, vis, ir, ...feats1.flat().filter((t): t is tf.Tensor => t !== null)]);
    store1.dispose();
    store2.dispose();
  });

  it('full mode gradients match central differences (tiny config)', () => {
    const head = new FusionHead({ ...TINY, mode: 'full' }, TINY_UNET);
    const store = TfParamStore.init(head.params(), 6);
    const ops = new TfOps(store);
    const feats = randomFeats(head, 1, 8, 7);
    const proj = tf.randomNormal([1, 8, 8, 3], 0, 1, 'float32', 9);
    const f = () => tf.sum(tf.mul(head.forward(ops, feats as tf.Tensor[][]), proj)) as tf.Scalar;
    const vars = store.variables();
    const { grads } = tf.variableGrads(f, vars);
    // ReLU kinks and float32 rounding make single finite differences noisy: take the better
    // of two step sizes, and require nearly all coordinates to agree closely, all loosely.
    const rng = new Rng(11);
    const errors: number[] = [];
    let checked = 0;
    for (const v of vars) {
      const g = grads[v.name];
      expect(g, v.name).toBeDefined();
      const gv = g.dataSync();
      const base = v.dataSync().slice();
      for (let rep = 0; rep < 3; rep++) {
        const idx = rng.int(v.size);
        const at = (delta: number) => {
          const d = base.slice();
          d[idx] += delta;
          v.assign(tf.tensor(d, v.shape));
          return tf.tidy(() => f().dataSync()[0]);
        };
        const err = Math.min(
          ...[3e-3, 1e-3].map((eps) => Math.abs((at(eps) - at(-eps)) / (2 * eps) - gv[idx])),
        );
        v.assign(tf.tensor(base, v.shape));
        errors.push(err / Math.max(1, Math.abs(gv[idx])));
      }
      checked++;
    }
    errors.sort((a, b) => a - b);
    expect(errors[Math.floor(errors.length * 0.9)]).toBeLessThan(5e-3);
    expect(errors[errors.length - 1]).toBeLessThan(5e-2);
    expect(checked).toBe(head.params().length);
    tf.dispose([
      proj,
      ...Object.values(grads),
      ...feats.flat().filter((t): t is tf.Tensor => t !== null),
    ]);
    store.dispose();
  });
});
