import { describe, expect, it } from 'vitest';
import { PAPER_UNET_CONFIG, unetConfigFromReference, unetConfigToReference } from './config';

describe('UNet config <-> reference model.unet block', () => {
  it('translates channel_multiplier, fills the reference defaults and round-trips', () => {
    const reference = {
      in_channel: 4,
      out_channel: 4,
      inner_channel: 128,
      channel_multiplier: [1, 2, 4, 8, 8],
      attn_res: [16],
      res_blocks: 2,
      dropout: 0.2,
    };
    const c = unetConfigFromReference(reference, 160);
    expect(c).toEqual({
      ...PAPER_UNET_CONFIG,
      with_noise_level_emb: true,
      use_affine_level: false,
    });
    expect(unetConfigToReference(c)).toEqual({ ...reference, norm_groups: 32 });
    // Our own JSON (channel_mults, image_size) is accepted as it is.
    expect(unetConfigFromReference({ ...c })).toEqual(c);
    // use_affine_level travels both ways, and only when true.
    const affine = unetConfigFromReference({ ...reference, use_affine_level: true }, 160);
    expect(affine.use_affine_level).toBe(true);
    expect(unetConfigToReference(affine)).toEqual({
      ...reference,
      norm_groups: 32,
      use_affine_level: true,
    });
    expect(() => unetConfigFromReference({ ...reference, inner_channel: 12 }, 64)).toThrow(
      /not divisible by norm_groups 32/,
    );
  });
});
