import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { randomWeights } from '@dif-fusion/export';
import { FusionHead } from '@dif-fusion/fusion-head';
import { readSafetensors, writeImage } from '@dif-fusion/io';
import type { TorchWeights } from '@dif-fusion/nn';
import { loadFusionModel, readModelConfig } from '@dif-fusion/onnx';
import { parseUNetConfig, UNet } from '@dif-fusion/unet';
import { afterAll, describe, expect, it } from 'vitest';
import { golden, hasGolden, noteSkip } from '../../../../test/shared';
import { saveCheckpoint } from '../checkpoint';
import { runCli } from '../test-utils';
import { runExport } from './export';

noteSkip(hasGolden, 'golden');
const root = mkdtempSync(join(tmpdir(), 'dif-train-export-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
const quiet = () => {};

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

const schedule = { schedule: 'linear', n_timestep: 2000, linear_start: 1e-6, linear_end: 1e-2 };

/** A reference-format fusion config with a tiny UNet (2 levels of 8 channels). */
const tinyConfig = {
  model_df: { feat_scales: [2, 5], t: [5, 50], feat_type: 'dec' },
  model: {
    unet: {
      in_channel: 4,
      out_channel: 4,
      inner_channel: 8,
      norm_groups: 8,
      channel_multiplier: [1, 2],
      attn_res: [8],
      res_blocks: 2,
      dropout: 0.2,
    },
    beta_schedule: { train: schedule },
    diffusion: { image_size: 16 },
  },
};

const cli = (args: string[]) => runCli(['export', ...args]);

describe.skipIf(!hasGolden)('dif-train export --ddpm --head', () => {
  it('exports golden-weight checkpoints; ORT output equals the golden fused image', async () => {
    const u = readSafetensors(golden('unet_5level.safetensors'));
    const h = readSafetensors(golden('fusion_head.safetensors'));
    const f = readSafetensors(golden('diffusion_feats.safetensors'));
    const unetCfg = JSON.parse(u.metadata.config);
    const ddpmDir = join(root, 'ddpm-run', 'checkpoints');
    const ddpmPath = saveCheckpoint(ddpmDir, {
      kind: 'ddpm',
      step: 7,
      epoch: 0,
      config: { model: { unet: { ...unetCfg, channel_multiplier: unetCfg.channel_mults } } },
      model: { ...unetCfg, channel_multiplier: unetCfg.channel_mults, channel_mults: undefined },
      weights: strip(u.tensors, 'weights.'),
      optimizer: null,
      rng: null,
      sampler: null,
      extra: {},
    });
    const headCfg = {
      feat_scales: [2, 5, 8, 11, 14],
      time_steps: [5, 50, 100],
      inner_channel: 16,
      channel_multiplier: [1, 2, 4, 8, 8],
      out_channels: 3,
      mode: 'reference',
      res_blocks: 2,
    };
    saveCheckpoint(join(root, 'head-run', 'checkpoints'), {
      kind: 'head',
      step: 3,
      epoch: 1,
      config: { model: { beta_schedule: { train: schedule } } },
      model: headCfg,
      weights: strip(h.tensors, 'weights.'),
      optimizer: null,
      rng: null,
      sampler: null,
      extra: { ddpm: ddpmPath, ddpm_step: 7, schedule },
    });
    const out = join(root, 'model');
    const lines: string[] = [];
    const res = await runExport({
      ddpm: join(root, 'ddpm-run'),
      head: join(root, 'head-run'),
      out,
      log: (l) => lines.push(l),
    });
    expect(lines.at(-1)).toMatch(
      /^wrote .*model\.onnx \(\d+\.\d MB, [\d,]+ weights, \d+ nodes, opset 17\)/,
    );
    const cfg = readModelConfig(out);
    expect(cfg).toEqual(res.config);
    expect(cfg.provenance).toMatchObject({
      source: 'checkpoints',
      ddpm_step: 7,
      head_step: 3,
      // relative to the model folder (no absolute path of this machine), plus the file hash
      ddpm_checkpoint: relative(out, ddpmPath),
      ddpm_sha256: createHash('sha256').update(readFileSync(ddpmPath)).digest('hex'),
    });
    expect(JSON.stringify(cfg.provenance)).not.toContain(tmpdir());
    expect(cfg.beta_schedule).toEqual(schedule);
    expect(cfg.noise_level_rule).toBe('midpoint');
    // the checkpoints were written before the rename (the DDPM's model block with
    // channel_multiplier, the head's with a copy of the UNet keys): the folder holds the one block
    expect(cfg.unet).toMatchObject({
      inner_channel: 16,
      channel_multiplier: [1, 2, 4, 8, 8],
      image_size: 32,
    });
    expect(cfg.unet).not.toHaveProperty('channel_mults');
    expect(cfg.head).not.toHaveProperty('inner_channel');

    const model = await loadFusionModel(out, { device: 'cpu', threads: 1 });
    const x = Float32Array.from(f.tensors.get('input.x_start')!.data);
    const px = 32 * 32;
    const noise = new Float32Array(3 * 4 * px);
    for (const [k, t] of [5, 50, 100].entries())
      noise.set(Float32Array.from(f.tensors.get(`t${t}.noise`)!.data), k * 4 * px);
    const fused = await model.fuse({
      vis: x.slice(0, 3 * px),
      ir: x.slice(3 * px),
      noise,
      n: 1,
      height: 32,
      width: 32,
    });
    await model.release();
    const want = h.tensors.get('output.rgb')!.data;
    let num = 0;
    let den = 0;
    for (let i = 0; i < want.length; i++) {
      num = Math.max(num, Math.abs(fused[i] - want[i]));
      den = Math.max(den, Math.abs(want[i]));
    }
    expect(num / den).toBeLessThan(1e-4);
  });
});

describe('dif-train export --config --random-init', () => {
  it('writes a runnable model folder, deterministic per seed', async () => {
    const file = join(root, 'fusion_train.json');
    writeFileSync(
      file,
      `// reference format, comments allowed\n${JSON.stringify(tinyConfig, null, 2)}\n`,
    );
    const a = join(root, 'rand-a');
    const b = join(root, 'rand-b');
    const r = await cli([
      '--config',
      file,
      '--random-init',
      '-o',
      a,
      '--seed',
      '5',
      '--mode',
      'reference',
    ]);
    expect(r.code).toBe(0);
    expect(r.err).toMatch(/random weights \(seed 5\)/);
    await runExport({
      config: file,
      randomInit: true,
      out: b,
      seed: 5,
      mode: 'reference',
      log: quiet,
    });
    expect(readFileSync(join(a, 'model.onnx')).equals(readFileSync(join(b, 'model.onnx')))).toBe(
      true,
    );
    const cfg = readModelConfig(a);
    expect(cfg).toMatchObject({
      seed: 5,
      head: { mode: 'reference', time_steps: [5, 50] },
      size_multiple: 2,
      feature_indices: [5],
      provenance: { source: 'random-init' },
    });
    expect(cfg.unet).toMatchObject({
      inner_channel: 8,
      channel_multiplier: [1, 2],
      image_size: 16,
      dropout: 0.2,
    });
    const model = await loadFusionModel(a, { device: 'cpu', threads: 1 });
    const fused = await model.fuse({
      ir: new Float32Array(16 * 24).fill(0.5),
      vis: new Float32Array(3 * 16 * 24).fill(-0.25),
      seed: 1,
      n: 1,
      height: 16,
      width: 24,
    });
    await model.release();
    expect(fused.length).toBe(3 * 16 * 24);
    expect(fused.every((v) => Number.isFinite(v) && v > -1 && v < 1)).toBe(true);
    // default mode: as dif-train head (full), which needs fd[2] too
    await runExport({ config: file, randomInit: true, out: join(root, 'rand-full'), log: quiet });
    expect(readModelConfig(join(root, 'rand-full')).feature_indices).toEqual([2, 5]);
  });

  it('--precision int8: QDQ convolutions calibrated on a pairs folder, close to the float model', async () => {
    const file = join(root, 'fusion_train.json');
    const cal = join(root, 'calibration');
    // three 20x18 pairs (cropped to the size multiple, 2): smooth gradients with a bright square
    for (let k = 0; k < 3; k++) {
      const img = (channels: 1 | 3, shift: number) => {
        const data = new Uint8Array(20 * 18 * channels);
        for (let y = 0; y < 18; y++)
          for (let x = 0; x < 20; x++)
            for (let c = 0; c < channels; c++)
              data[(y * 20 + x) * channels + c] =
                (x > 6 && x < 12 && y > 5 && y < 11 ? 230 : 20 + 8 * x + 3 * y + 10 * c) +
                shift * k;
        return { width: 20, height: 18, channels, bitDepth: 8 as const, data };
      };
      await writeImage(join(cal, 'ir', `p${k}.png`), img(1, 5));
      await writeImage(join(cal, 'vi', `p${k}.png`), img(3, 3));
    }
    const fp = join(root, 'q-fp32');
    const q = join(root, 'q-int8');
    const float = await runExport({ config: file, randomInit: true, out: fp, seed: 3, log: quiet });
    const r = await cli([
      '--config',
      file,
      '--random-init',
      '-o',
      q,
      '--seed',
      '3',
      '--precision',
      'int8',
      '--calibration',
      cal,
    ]);
    expect(r.code).toBe(0);
    expect(r.err).toMatch(/int8: calibrating on 3 pairs of .*calibration\n/);
    const cfg = readModelConfig(q);
    expect(cfg.precision).toBe('int8');
    expect(cfg.quantization).toMatchObject({
      format: 'QDQ',
      calibration: { inputs: 3, range: 'min-max', source: relative(q, cal) },
    });
    expect(cfg.quantization!.convs).toBeGreaterThan(10);
    expect(cfg.quantization!.float_convs).toBe(3); // the default: the first conv, the last two
    // the summary line describes the written int8 file (its size and its QDQ nodes)
    const m = r.err.match(/wrote .*model\.onnx \((\d+\.\d) MB, [\d,]+ weights, (\d+) nodes/)!;
    expect(Number(m[1])).toBe(Number((statSync(join(q, 'model.onnx')).size / 1e6).toFixed(1)));
    expect(Number(m[2])).toBeGreaterThan(float.nodes); // Quantize/DequantizeLinear pairs
    const input = {
      ir: Float32Array.from({ length: 16 * 24 }, (_, i) => Math.sin(i / 7) * 0.8),
      vis: Float32Array.from({ length: 3 * 16 * 24 }, (_, i) => Math.cos(i / 9) * 0.6),
      seed: 1,
      n: 1,
      height: 16,
      width: 24,
    };
    const fuse = async (dir: string) => {
      const m = await loadFusionModel(dir, { device: 'cpu', threads: 1 });
      const out = await m.fuse(input);
      await m.release();
      return out;
    };
    const [a, b] = [await fuse(fp), await fuse(q)];
    let err = 0;
    for (let i = 0; i < a.length; i++) err = Math.max(err, Math.abs(a[i] - b[i]));
    expect(err).toBeGreaterThan(0);
    expect(err).toBeLessThan(0.1); // outputs in [-1, 1]: within a few 8-bit steps
  });

  it('--precision int8 needs --calibration, and --calibration needs int8', async () => {
    const file = join(root, 'fusion_train.json');
    const a = await cli([
      '--config',
      file,
      '--random-init',
      '-o',
      join(root, 'z'),
      '--precision',
      'int8',
    ]);
    expect(a.code).toBe(1);
    expect(a.err).toMatch(/^error: --precision int8 needs --calibration DIR/);
    const b = await cli([
      '--config',
      file,
      '--random-init',
      '-o',
      join(root, 'z'),
      '--calibration',
      root,
    ]);
    expect(b.code).toBe(1);
    expect(b.err).toMatch(/^error: --calibration and --float-convs are for --precision int8\n$/);
    const c = await cli([
      '--config',
      file,
      '--random-init',
      '-o',
      join(root, 'z'),
      '--precision',
      'int8',
      '--calibration',
      join(root, 'nothing'),
    ]);
    expect(c.code).toBe(1);
    expect(c.err.trim().split('\n')).toHaveLength(1);
    expect(c.err).toMatch(/nothing/);
  });

  it('one-line errors, non-zero exit', async () => {
    const file = join(root, 'bad.json');
    writeFileSync(file, JSON.stringify({ model: { unet: tinyConfig.model.unet } }));
    const cases: Array<[string[], RegExp]> = [
      [
        ['-o', join(root, 'x')],
        /^error: pass --ddpm CKPT and --head CKPT, or --config FILE --random-init\n$/,
      ],
      [['--random-init', '-o', join(root, 'x')], /^error: --random-init needs --config FILE/],
      [
        ['--config', file, '--random-init', '-o', join(root, 'x')],
        /^error: .*bad\.json: model\.beta_schedule\.train is missing\n$/,
      ],
      [
        ['--config', join(root, 'nope.json'), '--random-init', '-o', join(root, 'x')],
        /^error: .*nope\.json: file not found\n$/,
      ],
      [
        ['--ddpm', join(root, 'none'), '--head', join(root, 'none'), '-o', join(root, 'x')],
        /^error: checkpoint not found: .*none\n$/,
      ],
      [
        ['--config', file, '--random-init', '--ddpm', 'a', '-o', join(root, 'x')],
        /^error: --random-init cannot be combined/,
      ],
      [
        ['--config', file, '--random-init', '-o', file],
        /^error: .*bad\.json: exists and is not a folder\n$/,
      ],
    ];
    for (const [args, re] of cases) {
      const r = await cli(args);
      expect(r.code).toBe(1);
      expect(r.err).toMatch(re);
      expect(r.err.trim().split('\n')).toHaveLength(1);
    }
    const incompatible = join(root, 'incompat.json');
    writeFileSync(
      incompatible,
      JSON.stringify({ ...tinyConfig, model_df: { feat_scales: [2, 5, 8], t: [5] } }),
    );
    const r = await cli(['--config', incompatible, '--random-init', '-o', join(root, 'y')]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(
      /^error: .*incompat\.json: fusion head config: feat_scale 8 out of range 0\.\.5/,
    );
  });
});

describe('dif-train export: the error names the checkpoint at fault', () => {
  const unetRef = { ...tinyConfig.model.unet, image_size: 16 };
  const headCfg = {
    feat_scales: [2, 5],
    time_steps: [5, 50],
    inner_channel: 8,
    channel_multiplier: [1, 2],
    out_channels: 3,
    mode: 'reference',
    res_blocks: 2,
  };
  const ckpt = (
    name: string,
    kind: 'ddpm' | 'head',
    weights: TorchWeights,
    edit?: (w: TorchWeights) => void,
  ) => {
    const w: TorchWeights = new Map(
      [...weights].map(([k, v]) => [k, { shape: v.shape.slice(), data: v.data.slice() }]),
    );
    edit?.(w);
    return saveCheckpoint(join(root, name), {
      kind,
      step: 1,
      epoch: 0,
      config: { model: { unet: unetRef, beta_schedule: { train: schedule } } },
      model: kind === 'ddpm' ? unetRef : headCfg,
      weights: w,
      optimizer: null,
      rng: null,
      sampler: null,
      extra: kind === 'head' ? { schedule } : {},
    });
  };
  const unetW = randomWeights(new UNet(parseUNetConfig(unetRef)).params(), 0);
  const headW = randomWeights(new FusionHead(headCfg as any, unetRef).usedParams(), 0, {
    orthogonal: 'uniform',
  });
  const first = (m: TorchWeights) => [...m.keys()][0];

  it('a good pair exports; a bad DDPM is blamed on the DDPM file, a bad head on the head file', async () => {
    const okDdpm = ckpt('ok-ddpm', 'ddpm', unetW);
    const okHead = ckpt('ok-head', 'head', headW);
    expect((await cli(['--ddpm', okDdpm, '--head', okHead, '-o', join(root, 'ok')])).code).toBe(0);
    const k = first(unetW);
    const cases: Array<[string, string, RegExp]> = [
      [
        ckpt('nan-ddpm', 'ddpm', unetW, (w) => {
          w.get(k)!.data[3] = Number.NaN;
        }),
        okHead,
        new RegExp(
          `nan-ddpm/ddpm-00000001\\.safetensors: tensor 'denoise_fn\\.${k}' holds 1 non-finite value`,
        ),
      ],
      [
        ckpt('missing-ddpm', 'ddpm', unetW, (w) => w.delete(k)),
        okHead,
        new RegExp(`missing-ddpm/ddpm-00000001\\.safetensors: .*missing ${k}`),
      ],
      [
        ckpt('shape-ddpm', 'ddpm', unetW, (w) => {
          w.set(k, { shape: [1, 2], data: new Float32Array(2) });
        }),
        okHead,
        new RegExp(`shape-ddpm/ddpm-00000001\\.safetensors: .*${k} has shape \\[1,2\\]`),
      ],
      [
        okDdpm,
        ckpt('shape-head', 'head', headW, (w) => {
          w.set(first(headW), { shape: [3], data: new Float32Array(3) });
        }),
        /shape-head\/head-00000001\.safetensors: .* has shape \[3\]/,
      ],
    ];
    for (const [ddpm, head, re] of cases) {
      const r = await cli(['--ddpm', ddpm, '--head', head, '-o', join(root, 'bad')]);
      expect(r.code, r.err).toBe(1);
      expect(r.err.trim().split('\n')).toHaveLength(1);
      expect(r.err).toMatch(re);
    }
  });
});
