import { FusionHead } from '@dif-fusion/fusion-head';
import { UNet } from '@dif-fusion/unet';
import { describe, expect, it } from 'vitest';
import { fusionFlops } from './fusion-flops';

describe('FLOP counting of the fusion graph', () => {
  it('fusion graph: K pruned passes cost less than K full passes; batch scales linearly', () => {
    const unet = new UNet({
      in_channel: 4,
      out_channel: 4,
      inner_channel: 16,
      norm_groups: 16,
      channel_multiplier: [1, 2, 4, 8, 8],
      attn_res: [16],
      res_blocks: 2,
      dropout: 0,
      image_size: 160,
    });
    const head = new FusionHead(
      { feat_scales: [2, 5, 8, 11, 14], time_steps: [5, 50, 100], mode: 'reference' },
      unet.config,
    );
    const f = fusionFlops(unet, head, { height: 64, width: 96 });
    expect(f.unet.matmul).toBeLessThan(3 * f.fullPass.matmul);
    // reference mode drops ups.13..18 and the final conv: a large share of a pass.
    const saved = 1 - f.unet.matmul / 3 / f.fullPass.matmul;
    expect(saved).toBeGreaterThan(0.2);
    expect(saved).toBeLessThan(0.5);
    const f2 = fusionFlops(unet, head, { n: 2, height: 64, width: 96 });
    expect(f2.total.matmul).toBe(2 * f.total.matmul);
    expect(f.total.matmul).toBe(f.unet.matmul + f.head.matmul);
  });
});
