import { describe, expect, it } from 'vitest';
import { PAPER_UNET_CONFIG, parseUNetConfig, unetConfigProblems, unetConfigToJSON } from './config';

describe('the one UNet config block (official model.unet keys)', () => {
  const reference = {
    in_channel: 4,
    out_channel: 4,
    inner_channel: 128,
    channel_multiplier: [1, 2, 4, 8, 8],
    attn_res: [16],
    res_blocks: 2,
    dropout: 0.2,
  };
  it('fills the reference defaults and image_size, and round-trips through JSON', () => {
    const c = parseUNetConfig(reference, { image_size: 160 });
    expect(c).toEqual({
      ...PAPER_UNET_CONFIG,
      with_noise_level_emb: true,
      use_affine_level: false,
    });
    expect(parseUNetConfig(JSON.parse(JSON.stringify(unetConfigToJSON(c))))).toEqual(c);
    // The block's own image_size wins over the one given for a block without it.
    expect(parseUNetConfig({ ...c }, { image_size: 64 }).image_size).toBe(160);
    // use_affine_level travels, and the later options only when set.
    const affine = parseUNetConfig({ ...reference, use_affine_level: true }, { image_size: 160 });
    expect(unetConfigToJSON(affine)).toEqual({
      ...reference,
      norm_groups: 32,
      image_size: 160,
      with_noise_level_emb: true,
      use_affine_level: true,
    });
    expect(() => parseUNetConfig(reference)).toThrow(/image_size is missing/);
    expect(() => parseUNetConfig({ ...reference, inner_channel: 12 }, { image_size: 64 })).toThrow(
      'UNet config: norm_groups 32 must divide inner_channel x every channel_multiplier',
    );
  });
  it('reads a block written before the rename (channel_mults) as channel_multiplier', () => {
    const { channel_multiplier, ...rest } = reference;
    const old = parseUNetConfig({ ...rest, channel_mults: channel_multiplier, image_size: 160 });
    expect(old).toEqual(parseUNetConfig(reference, { image_size: 160 }));
    expect(old).not.toHaveProperty('channel_mults');
  });
  it('has one home for the rules between keys, per network', () => {
    const c = { ...reference, image_size: 64, res_blocks: 1, skip_range: 0.5 };
    expect(unetConfigProblems(c)).toEqual([
      { key: 'skip_range', message: 'applies to which_model_G skip_unet only' },
    ]);
    expect(unetConfigProblems(c, 'skip_unet')).toEqual([
      { key: 'res_blocks', message: 'must be at least 2 with which_model_G skip_unet' },
    ]);
  });
});
