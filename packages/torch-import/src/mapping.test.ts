import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { FusionHead } from '@dif-fusion/fusion-head';
import { parseUNetConfig, UNet } from '@dif-fusion/unet';
import { describe, expect, it } from 'vitest';
import { GOLDEN_DIR, golden, hasGolden, noteSkip } from '../../../test/shared';
import {
  checkShapes,
  findStateDict,
  importDifFusion,
  inferHeadConfig,
  inferUnetConfig,
  PickledTensor,
  PyDict,
  splitDdpmStateDict,
} from './index';

const FIX = join(__dirname, '..', 'fixtures');
const fixture = (name: string) => join(FIX, name);
const fixtureConfig = () => {
  const ref = readFileSync(fixture('reference.safetensors'));
  const n = Number(ref.readBigUInt64LE(0));
  const meta = JSON.parse(ref.subarray(8, 8 + n).toString()).__metadata__;
  // the fixtures hold the official constructor's arguments (channel_mults): read as the block
  return { unet: parseUNetConfig(JSON.parse(meta.unet)), head: JSON.parse(meta.head) };
};

describe('importDifFusion on the fixtures', () => {
  it('infers the UNet and head configs the fixtures were made with', async () => {
    const want = fixtureConfig();
    const r = await importDifFusion(
      { ddpm: fixture('ddpm_gen.pth'), head: fixture('df_head_gen.pth') },
      { normGroups: 2 },
    );
    expect(r.unet.config).toEqual(want.unet);
    expect(r.head!.config).toEqual({
      feat_scales: [14, 11, 8, 5, 2],
      time_steps: [5, 50, 100],
      out_channels: 3,
      mode: 'reference',
    });
    expect([...r.unet.weights.keys()].every((k) => !k.startsWith('denoise_fn.'))).toBe(true);
    expect(r.unet.weights.has('betas')).toBe(false);
    expect(r.head!.weights.size).toBe(
      new FusionHead(r.head!.config, r.unet.config).params().length,
    );
  });

  it('says when the DDPM and head files are swapped', async () => {
    const swapped = { ddpm: fixture('df_head_gen.pth'), head: fixture('ddpm_gen.pth') };
    await expect(importDifFusion(swapped, { normGroups: 2 })).rejects.toThrow(
      /df_head_gen\.pth: this is a fusion head checkpoint, not a DDPM \(pass it as the head: --head\)/,
    );
    const both = { ddpm: fixture('ddpm_gen.pth'), head: fixture('ddpm_gen.pth') };
    await expect(importDifFusion(both, { normGroups: 2 })).rejects.toThrow(
      /ddpm_gen\.pth: this is a DDPM \(UNet\) checkpoint, not a fusion head \(pass it as --ddpm\)/,
    );
  });

  it('explains what to pass when the GroupNorm groups do not fit', async () => {
    await expect(importDifFusion({ ddpm: fixture('ddpm_gen.pth') })).rejects.toThrow(
      /norm_groups 32 does not divide .*--norm-groups/,
    );
  });

  it('checks --time-steps and --feat-scales against the head', async () => {
    const paths = { ddpm: fixture('ddpm_gen.pth'), head: fixture('df_head_gen.pth') };
    await expect(importDifFusion(paths, { normGroups: 2, timeSteps: [5, 50] })).rejects.toThrow(
      /stacks features of 3 time steps, --time-steps lists 2/,
    );
    const r = await importDifFusion(paths, {
      normGroups: 2,
      timeSteps: [10, 20, 30],
      featScales: [1, 4, 7, 10, 13],
    });
    expect(r.head!.config.time_steps).toEqual([10, 20, 30]);
    expect(r.head!.config.feat_scales).toEqual([13, 10, 7, 4, 1]);
    await expect(
      importDifFusion(paths, { normGroups: 2, featScales: [4, 7, 10, 13] }),
    ).rejects.toThrow();
  });
});

describe.skipIf(!hasGolden)('the official checkpoint layout (../shared/golden)', () => {
  noteSkip(hasGolden, 'golden');
  const layout = hasGolden
    ? JSON.parse(readFileSync(golden('official_state_dict_layout.json'), 'utf8'))
    : null;

  it('maps the paper-size DDPM and head layouts onto the official configs', () => {
    const ddpm = new Map<string, number[]>(Object.entries(layout.ddpm_gen_pth.keys));
    const unetShapes = splitDdpmStateDict(ddpm, 'official DDPM');
    const cfg = inferUnetConfig(unetShapes);
    const official = parseUNetConfig(layout.ddpm_gen_pth.config);
    expect(cfg).toEqual(official);
    const nUnet = [...unetShapes.values()].reduce((a, s) => a + s.reduce((x, y) => x * y, 1), 0);
    expect(nUnet).toBe(layout.params.ddpm_unet);
    // our UNet built from the inferred config has exactly these parameters (370 M)
    const count = (ps: ReadonlyArray<{ shape: readonly number[] }>) =>
      ps.reduce((a, p) => a + p.shape.reduce((x, y) => x * y, 1), 0);
    const unetParams = new UNet(cfg).params();
    checkShapes(unetShapes, unetParams, 'official DDPM');
    expect(count(unetParams)).toBe(370_063_492);

    const headShapes = new Map<string, number[]>(Object.entries(layout.fusion_head_gen_pth.keys));
    const head = inferHeadConfig(headShapes, cfg);
    expect(head.feat_scales).toEqual([14, 11, 8, 5, 2]);
    expect(head.time_steps).toEqual([5, 50, 100]);
    checkShapes(headShapes, new FusionHead(head, cfg).params(), 'official head');
    const nHead = [...headShapes.values()].reduce((a, s) => a + s.reduce((x, y) => x * y, 1), 0);
    expect(nHead).toBe(layout.params.fusion_head);
    expect(count(new FusionHead(head, cfg).params())).toBe(46_405_703);
  });

  it(`infers the configs of the golden UNets (${GOLDEN_DIR})`, () => {
    for (const name of ['unet_small.safetensors', 'unet_5level.safetensors']) {
      const buf = readFileSync(golden(name));
      const n = Number(buf.readBigUInt64LE(0));
      const header = JSON.parse(buf.subarray(8, 8 + n).toString());
      const config = parseUNetConfig(JSON.parse(header.__metadata__.config));
      const shapes = new Map<string, number[]>(
        Object.entries(header)
          .filter(([k]) => k.startsWith('weights.'))
          .map(([k, v]) => [k.slice('weights.'.length), (v as { shape: number[] }).shape]),
      );
      const got = inferUnetConfig(shapes, { normGroups: config.norm_groups, dropout: 0 });
      for (const k of [
        'in_channel',
        'out_channel',
        'inner_channel',
        'norm_groups',
        'channel_multiplier',
        'res_blocks',
      ])
        expect(got[k as keyof typeof got], `${name} ${k}`).toEqual(
          config[k as keyof typeof config],
        );
      // attention at the same levels (image_size may differ, the levels with attention may not)
      const levels = (c: {
        image_size: number;
        attn_res: number[];
        channel_multiplier: number[];
      }) => c.channel_multiplier.map((_, l) => c.attn_res.includes(c.image_size / 2 ** l));
      expect(levels(got), name).toEqual(levels(config));
    }
  });
});

describe('state_dict lookup and key mapping', () => {
  const tensor = (shape: number[]) =>
    new PickledTensor(
      { key: '0', dtype: 'float32', numel: shape.reduce((a, b) => a * b, 1), location: 'cpu' },
      0,
      shape,
      shape.map((_, d) => shape.slice(d + 1).reduce((a, b) => a * b, 1)),
      false,
    );
  const dict = (entries: Array<[string, unknown]>) => {
    const d = new PyDict(true);
    for (const [k, v] of entries) d.set(k, v);
    return d;
  };

  it('finds a nested state_dict and strips a DataParallel module. prefix', () => {
    const sd = dict([
      ['module.denoise_fn.init_conv.weight', tensor([8, 4, 3, 3])],
      ['module.betas', tensor([10])],
    ]);
    const root = dict([
      ['epoch', 3],
      ['state_dict', sd],
    ]);
    const found = findStateDict(root, 'x.pth');
    expect([...found.keys()]).toEqual(['denoise_fn.init_conv.weight', 'betas']);
    expect([...splitDdpmStateDict(found, 'x.pth').keys()]).toEqual(['init_conv.weight']);
    expect(() => findStateDict(dict([['epoch', 3]]), 'y.pth')).toThrow(
      'y.pth: no state_dict (a dict of tensors) found; top-level keys: epoch',
    );
    const opt = dict([
      ['epoch', 3],
      ['iter', 10],
      ['scheduler', null],
      ['optimizer', dict([['state', dict([])]])],
    ]);
    expect(() => findStateDict(opt, 'I10_E3_opt.pth')).toThrow(
      'I10_E3_opt.pth: no state_dict (a dict of tensors) found; top-level keys: epoch, iter, scheduler, optimizer (an optimizer checkpoint, *_opt.pth? pass the weights, *_gen.pth)',
    );
  });

  it('refuses unknown keys beside denoise_fn.* and the schedule buffers', () => {
    const sd = new Map([
      ['denoise_fn.init_conv.weight', [8, 4, 3, 3]],
      ['ema.init_conv.weight', [8, 4, 3, 3]],
    ]);
    expect(() => splitDdpmStateDict(sd, 'z.pth')).toThrow(
      'z.pth: unexpected keys beside denoise_fn.* and the schedule buffers: ema.init_conv.weight',
    );
  });

  it.skipIf(!hasGolden)('infers use_affine_level and with_noise_level_emb from shapes', () => {
    const layout = JSON.parse(readFileSync(golden('official_state_dict_layout.json'), 'utf8'));
    const base = splitDdpmStateDict(
      new Map<string, number[]>(Object.entries(layout.ddpm_gen_pth.keys)),
      'official',
    );
    // use_affine_level: every FeatureWiseAffine gives scale and shift (2 x channels)
    const affine = new Map(
      [...base].map(([k, s]) => [
        k,
        /noise_func\.noise_func\.0\./.test(k) ? [2 * s[0], ...s.slice(1)] : s,
      ]),
    );
    const a = inferUnetConfig(affine);
    expect(a.use_affine_level).toBe(true);
    checkShapes(affine, new UNet(a).params(), 'affine');
    // without noise-level conditioning: no MLP, no noise_func
    const plain = new Map([...base].filter(([k]) => !/noise_level_mlp|noise_func/.test(k)));
    const p = inferUnetConfig(plain);
    expect(p.with_noise_level_emb).toBe(false);
    checkShapes(plain, new UNet(p).params(), 'plain');
  });
});
