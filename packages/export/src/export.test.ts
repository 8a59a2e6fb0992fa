import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FusionHead, type FusionHeadConfig, type FusionHeadMode } from '@dif-fusion/fusion-head';
import { readSafetensors } from '@dif-fusion/io';
import { initParam, type TorchWeights } from '@dif-fusion/nn';
import { nchwToNhwc, nhwcToNchw, TfOps, TfParamStore } from '@dif-fusion/tfjs';
import { UNet, type UNetConfig } from '@dif-fusion/unet';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import {
  decodeModel,
  loadFusionModel,
  openSession,
  readModelConfig,
  runFloat,
} from '@dif-fusion/onnx';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { golden, hasGolden, noteSkip, randn, relErr } from '../../../test/shared';
import {
  buildFusionGraph,
  ExportError,
  exportFusionModel,
  exportUNetEps,
  midpointLevels,
  randomWeights,
} from './export';

noteSkip(hasGolden, 'golden');

const root = mkdtempSync(join(tmpdir(), 'dif-onnx-export-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
beforeAll(async () => {
  await tf.setBackend('cpu');
});

/** Tensors under `prefix`, with the prefix removed. */
function strip(
  tensors: Map<string, { shape: number[]; data: ArrayLike<number> }>,
  prefix: string,
): TorchWeights {
  const w: TorchWeights = new Map();
  for (const [k, v] of tensors)
    if (k.startsWith(prefix))
      w.set(k.slice(prefix.length), { shape: v.shape.slice(), data: Float32Array.from(v.data) });
  return w;
}

function f32(t: { data: ArrayLike<number> } | undefined): Float32Array {
  if (!t) throw new Error('missing golden tensor');
  return Float32Array.from(t.data);
}

/**
 * The pipeline on TfOps, one time step at a time (no batching): the reference the batched
 * ONNX graph must reproduce.
 */
function tfFusion(
  unet: UNet,
  unetWeights: TorchWeights,
  head: FusionHead,
  headWeights: TorchWeights,
  x: Float32Array,
  shape: number[],
  noise: Float32Array[],
  levels: number[],
): Float32Array {
  const us = TfParamStore.fromTorch(unet.params(), unetWeights);
  const hs = TfParamStore.fromTorch(head.usedParams(), headWeights, { strict: false });
  try {
    const out = tf.tidy(() => {
      const uops = new TfOps(us);
      const hops = new TfOps(hs);
      const xs = nchwToNhwc(tf.tensor(x, shape));
      const min = Math.min(...head.requiredFeatureIndices());
      const feats = levels.map((l, k) => {
        const xn = uops.axpby(l, xs, Math.sqrt(1 - l * l), nchwToNhwc(tf.tensor(noise[k], shape)));
        return unet.features(uops, xn, tf.fill([shape[0], 1], l), { minDecoderIndex: min }).fd;
      });
      const [n, , h, w] = shape;
      const src = tf.tensor(x, shape);
      const sources = {
        vis: nchwToNhwc(tf.slice(src, [0, 0, 0, 0], [n, 3, h, w])),
        ir: nchwToNhwc(tf.slice(src, [0, 3, 0, 0], [n, 1, h, w])),
      };
      return nhwcToNchw(head.forward(hops, feats, sources));
    });
    const d = out.dataSync() as Float32Array;
    out.dispose();
    return Float32Array.from(d);
  } finally {
    us.dispose();
    hs.dispose();
  }
}

describe.skipIf(!hasGolden)('eps-only UNet export equals golden eps (ORT CPU)', () => {
  for (const name of ['unet_small', 'unet_5level']) {
    it(`${name}`, async () => {
      const file = readSafetensors(golden(`${name}.safetensors`));
      const unet = new UNet(JSON.parse(file.metadata.config));
      const path = join(root, `${name}.onnx`);
      exportUNetEps(path, unet, strip(file.tensors, 'weights.'));
      const x = file.tensors.get('input.x')!;
      const level = file.tensors.get('input.noise_level')!;
      const { session } = await openSession(path, { device: 'cpu', threads: 1 });
      const out = await runFloat(session, {
        x: { data: f32(x), dims: x.shape },
        level: { data: f32(level), dims: level.shape },
      });
      await session.release();
      const want = file.tensors.get('output.eps')!;
      expect(out.eps.dims).toEqual(want.shape);
      const err = relErr(out.eps.data, f32(want));
      console.log(`[onnx] ${name} eps rel err ${err.toExponential(2)}`);
      expect(err).toBeLessThan(1e-4);
    });
  }
});

describe.skipIf(!hasGolden)(
  'fusion model export: ORT equals the TfOps forward (golden weights)',
  () => {
    const load = () => {
      const u = readSafetensors(golden('unet_5level.safetensors'));
      const h = readSafetensors(golden('fusion_head.safetensors'));
      const f = readSafetensors(golden('diffusion_feats.safetensors'));
      const unet = new UNet(JSON.parse(u.metadata.config));
      const headCfg = {
        feat_scales: JSON.parse(h.metadata.feat_scales),
        time_steps: JSON.parse(h.metadata.time_steps) as number[],
      };
      // the golden head was made for this UNet (its metadata names the same channels)
      expect(unet.config).toMatchObject({
        inner_channel: Number(h.metadata.inner_channel),
        channel_multiplier: JSON.parse(h.metadata.channel_multiplier),
      });
      const xStart = f.tensors.get('input.x_start')!;
      const shape = xStart.shape; // [1, 4, 32, 32]
      const [n, , hh, ww] = shape;
      const px = hh * ww;
      const x = f32(xStart);
      // x = concat(vis, ir): the graph takes them apart.
      const vis = x.slice(0, n * 3 * px);
      const ir = x.slice(3 * px, 4 * px);
      const steps = headCfg.time_steps;
      const noise = steps.map((t) => f32(f.tensors.get(`t${t}.noise`)));
      const levels = steps.map((t) => f32(f.tensors.get(`t${t}.level`))[0]);
      const noiseAll = new Float32Array(steps.length * n * 4 * px);
      for (const [k, z] of noise.entries()) noiseAll.set(z, k * n * 4 * px);
      return {
        unet,
        unetWeights: strip(u.tensors, 'weights.'),
        headCfg,
        headWeights: strip(h.tensors, 'weights.'),
        rgb: f32(h.tensors.get('output.rgb')),
        x,
        shape,
        vis,
        ir,
        noise,
        noiseAll,
        levels,
        schedule: {
          schedule: f.metadata.schedule as 'linear',
          n_timestep: Number(f.metadata.n_timestep),
          linear_start: 1e-6,
          linear_end: 1e-2,
        },
      };
    };

    it('midpoint levels from the schedule are the golden levels', () => {
      const g = load();
      const levels = midpointLevels(g.schedule, g.headCfg.time_steps);
      expect(levels.map((l) => Math.fround(l))).toEqual(g.levels);
    });

    for (const mode of ['reference', 'full'] as FusionHeadMode[]) {
      it(`${mode} head: model folder on ORT = TfOps forward within 1e-4${mode === 'reference' ? ' = golden output.rgb' : ''}`, async () => {
        const g = load();
        const head = new FusionHead({ ...g.headCfg, mode }, g.unet.config);
        const dir = join(root, `fusion-${mode}`);
        const res = exportFusionModel(dir, {
          unet: g.unet,
          unetWeights: g.unetWeights,
          head,
          headWeights: g.headWeights,
          schedule: g.schedule,
          provenance: { source: 'golden' },
        });
        // config.json records what the runtime and a user need.
        const cfg = readModelConfig(dir);
        expect(cfg.head.time_steps).toEqual([5, 50, 100]);
        expect(cfg.noise_levels.map((l) => Math.fround(l))).toEqual(g.levels);
        expect(cfg.head.mode).toBe(mode);
        // the head block is the one source: no top-level copies (format_version 2)
        expect(cfg.format_version).toBe(2);
        const raw = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
        expect([raw.time_steps, raw.head_mode]).toEqual([undefined, undefined]);
        expect(cfg.size_multiple).toBe(16);
        expect(cfg.feature_indices).toEqual(
          mode === 'reference' ? [5, 8, 11, 14] : [2, 5, 8, 11, 14],
        );
        expect(cfg.unet).toMatchObject({ inner_channel: 16, channel_multiplier: [1, 2, 4, 8, 8] });
        expect(cfg.head).toMatchObject({ feat_scales: [14, 11, 8, 5, 2], mode });
        expect(res.config.external_data).toBe(false);
        // The graph holds only the UNet layers the head needs: no final conv, no up blocks
        // after the head's finest feature.
        const m = decodeModel(readFileSync(join(dir, 'model.onnx')));
        const names = new Set(m.graph.initializer.map((t) => t.name));
        expect(names.has('unet.final_conv.block.3.weight')).toBe(false);
        // ups: 15 ResnetBlocWithAttn + 4 Upsample; fd[5] = ups.12, fd[2] = ups.16.
        const [last, dead] = mode === 'reference' ? [12, 13] : [16, 17];
        expect(names.has(`unet.ups.${last}.res_block.block1.block.3.weight`)).toBe(true);
        expect(names.has(`unet.ups.${dead}.res_block.block1.block.3.weight`)).toBe(false);
        expect(names.has('head.decoder.8.block.0.weight')).toBe(mode === 'full');
        expect(m.opsetImport[0].version).toBeGreaterThanOrEqual(17);

        const model = await loadFusionModel(dir, { device: 'cpu', threads: 1 });
        const [n, , h, w] = g.shape;
        const fused = await model.fuse({
          ir: g.ir,
          vis: g.vis,
          noise: g.noiseAll,
          n,
          height: h,
          width: w,
        });
        await model.release();
        const want = tfFusion(
          g.unet,
          g.unetWeights,
          head,
          g.headWeights,
          g.x,
          g.shape,
          g.noise,
          g.levels,
        );
        const err = relErr(fused, want);
        console.log(`[onnx] fusion ${mode}: ORT vs TfOps rel err ${err.toExponential(2)}`);
        expect(err).toBeLessThan(1e-4);
        if (mode === 'reference') {
          const errG = relErr(fused, g.rgb);
          console.log(
            `[onnx] fusion reference: ORT vs golden output.rgb rel err ${errG.toExponential(2)}`,
          );
          expect(errG).toBeLessThan(1e-4);
        }
      });
    }

    it('batch of 2 and a non-square size (dynamic N, H, W) match per-image TfOps', async () => {
      const g = load();
      const head = new FusionHead({ ...g.headCfg, mode: 'reference' }, g.unet.config);
      const dir = join(root, 'fusion-dyn');
      exportFusionModel(dir, {
        unet: g.unet,
        unetWeights: g.unetWeights,
        head,
        headWeights: g.headWeights,
        noiseLevels: g.levels,
      });
      const model = await loadFusionModel(dir, { device: 'cpu', threads: 1 });
      const [n, h, w] = [2, 16, 48];
      const px = h * w;
      const vis = randn([n * 3 * px], 1, 0.5);
      const ir = randn([n * px], 2, 0.5);
      const noise = randn([3 * n * 4 * px], 3);
      const fused = await model.fuse({ ir, vis, noise, n, height: h, width: w });
      await model.release();
      for (let b = 0; b < n; b++) {
        const x = new Float32Array(4 * px);
        x.set(vis.subarray(b * 3 * px, (b + 1) * 3 * px));
        x.set(ir.subarray(b * px, (b + 1) * px), 3 * px);
        const nz = [0, 1, 2].map((k) =>
          noise.slice((k * n + b) * 4 * px, (k * n + b + 1) * 4 * px),
        );
        const want = tfFusion(
          g.unet,
          g.unetWeights,
          head,
          g.headWeights,
          x,
          [1, 4, h, w],
          nz,
          g.levels,
        );
        const err = relErr(fused.subarray(b * 3 * px, (b + 1) * 3 * px), want);
        expect(err).toBeLessThan(1e-4);
      }
    });

    it('external data (forced) loads and gives the same output', async () => {
      const g = load();
      const head = new FusionHead({ ...g.headCfg, mode: 'reference' }, g.unet.config);
      const dir = join(root, 'fusion-ext');
      const res = exportFusionModel(dir, {
        unet: g.unet,
        unetWeights: g.unetWeights,
        head,
        headWeights: g.headWeights,
        noiseLevels: g.levels,
        externalData: 'always',
      });
      expect(res.config.external_data).toBe(true);
      expect(readFileSync(join(dir, 'model.onnx')).byteLength).toBeLessThan(200_000);
      const model = await loadFusionModel(dir, { device: 'cpu', threads: 1 });
      const [n, , h, w] = g.shape;
      const fused = await model.fuse({
        ir: g.ir,
        vis: g.vis,
        noise: g.noiseAll,
        n,
        height: h,
        width: w,
      });
      await model.release();
      expect(relErr(fused, g.rgb)).toBeLessThan(1e-4);
    });

    it('one-line errors for a head that does not fit the UNet and for missing weights', () => {
      const g = load();
      const bad = new FusionHead(g.headCfg, { ...g.unet.config, inner_channel: 32 });
      expect(() =>
        buildFusionGraph({
          unet: g.unet,
          unetWeights: g.unetWeights,
          head: bad,
          headWeights: g.headWeights,
          noiseLevels: g.levels,
        }),
      ).toThrow(/^head expects 256 channels at feat_scale 14, the UNet gives 128 \(/);
      const partial = new Map(g.unetWeights);
      partial.delete('init_conv.weight');
      let err: Error | null = null;
      try {
        buildFusionGraph({
          unet: g.unet,
          unetWeights: partial,
          head: g.headCfg,
          headWeights: g.headWeights,
          noiseLevels: g.levels,
        });
      } catch (e) {
        err = e as Error;
      }
      expect(err).toBeInstanceOf(ExportError);
      expect(err!.message).toBe('UNet weights: missing init_conv.weight');
      expect(() =>
        buildFusionGraph({
          unet: g.unet,
          unetWeights: g.unetWeights,
          head: g.headCfg,
          headWeights: g.headWeights,
          noiseLevels: [0.5],
        }),
      ).toThrow(/1 noise levels for 3 time steps/);
    });
  },
);

describe('random-init export', () => {
  const tinyUNet = (options: Partial<UNetConfig> = {}) =>
    new UNet({
      in_channel: 4,
      out_channel: 4,
      inner_channel: 8,
      norm_groups: 4,
      channel_multiplier: [1, 2],
      attn_res: [8],
      res_blocks: 1,
      dropout: 0,
      image_size: 16,
      ...options,
    });
  for (const [steps, mode, opset, variant, unetOptions = {}] of [
    [[20], 'full', 17, {}],
    [[20, 300], 'reference', 18, {}],
    [[7, 70, 700], 'full', 20, {}],
    [[20, 300], 'full', 17, { output: 'luma' }],
    [[20, 300], 'reference', 17, { output: 'weight', source_skip: true }],
    [[20], 'full', 17, {}, { use_affine_level: true }],
    [[20], 'full', 17, {}, { use_scale_shift_norm: true, num_heads: 2 }],
  ] as Array<[number[], FusionHeadMode, number, Partial<FusionHeadConfig>, Partial<UNetConfig>?]>) {
    const label = [variant, unetOptions]
      .filter((v) => Object.keys(v).length)
      .map((v) => ` ${JSON.stringify(v)}`)
      .join('');
    it(`${steps.length} time step(s), ${mode} head${label}, opset ${opset}: ORT = TfOps`, async () => {
      const unet = tinyUNet(unetOptions);
      // res_blocks 1: 2 decoder features per level; scales 0 (full res) and 2 (1/2).
      const head = new FusionHead(
        { feat_scales: [0, 2], time_steps: steps, mode, ...variant },
        unet.config,
      );
      const uw = randomWeights(unet.params(), 11);
      const hw = randomWeights(head.params(), 12);
      const schedule = {
        schedule: 'cosine' as const,
        n_timestep: 1000,
        linear_start: 1e-6,
        linear_end: 1e-2,
      };
      const dir = join(root, `tiny-${steps.length}-${mode}${label.replace(/\W/g, '')}`);
      const res = exportFusionModel(dir, {
        unet,
        unetWeights: uw,
        head,
        headWeights: hw,
        schedule,
        opset,
        seed: 3,
      });
      expect(res.config.opset).toBe(opset);
      const m = decodeModel(readFileSync(join(dir, 'model.onnx')));
      expect(m.opsetImport[0].version).toBe(opset);
      const model = await loadFusionModel(dir, { device: 'cpu', threads: 1 });
      const [n, h, w] = [1, 8, 12];
      const px = h * w;
      const vis = randn([3 * px], 21, 0.5);
      const ir = randn([px], 22, 0.5);
      const noise = randn([steps.length * 4 * px], 23);
      const fused = await model.fuse({ ir, vis, noise, n, height: h, width: w });
      await model.release();
      const x = new Float32Array(4 * px);
      x.set(vis);
      x.set(ir, 3 * px);
      const nz = steps.map((_, k) => noise.slice(k * 4 * px, (k + 1) * 4 * px));
      const levels = midpointLevels(schedule, steps);
      const want = tfFusion(unet, uw, head, hw, x, [1, 4, h, w], nz, levels);
      expect(relErr(fused, want)).toBeLessThan(1e-4);
    });
  }

  it('random weights are deterministic per seed and name', () => {
    const unet = new UNet({
      in_channel: 4,
      out_channel: 4,
      inner_channel: 8,
      norm_groups: 8,
      channel_multiplier: [1, 2],
      attn_res: [],
      res_blocks: 1,
      dropout: 0,
      image_size: 16,
    });
    const a = randomWeights(unet.params(), 3);
    const b = randomWeights(unet.params(), 3);
    const c = randomWeights(unet.params(), 4);
    const k = 'init_conv.weight';
    expect(Array.from(a.get(k)!.data)).toEqual(Array.from(b.get(k)!.data));
    expect(Array.from(a.get(k)!.data)).not.toEqual(Array.from(c.get(k)!.data));
    expect(a.size).toBe(unet.params().length);
    // orthogonal: 'uniform' only changes orthogonal-init parameters, to uniform(±1/sqrt(fan_in))
    const spec = { name: 'o.weight', shape: [4, 2, 3, 3], init: { kind: 'orthogonal' as const } };
    const fast = randomWeights([spec], 3, { orthogonal: 'uniform' }).get('o.weight')!.data;
    const bound = 1 / Math.sqrt(18);
    expect(Array.from(fast).every((v) => Math.abs(v) <= bound)).toBe(true);
    expect(Math.max(...Array.from(fast, Math.abs))).toBeGreaterThan(bound / 2);
    const exact = randomWeights([spec], 3).get('o.weight')!.data;
    expect(Array.from(exact)).toEqual(Array.from(initParam(spec, 3)));
    // the same values as initParam (TfParamStore.init), every init kind
    for (const p of unet.params()) {
      const want = initParam(p, 3);
      expect(Buffer.from(a.get(p.name)!.data.buffer).equals(Buffer.from(want.buffer))).toBe(true);
    }
  });
});
