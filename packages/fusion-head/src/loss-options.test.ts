import { describe, expect, it } from 'vitest';
import { FUSION_LOSS_DEFAULTS, fusionLossOptions, fusionLossProblem } from './loss-options';

describe('the fusion loss settings, defined once', () => {
  it('fills every default from one place (the official loss)', () => {
    expect(FUSION_LOSS_DEFAULTS).toEqual({
      alpha: 1,
      color_weight: 0,
      space: 'rgb',
      target: 'max',
    });
    expect(fusionLossOptions()).toEqual({
      alpha: 1,
      colorWeight: 0,
      space: 'rgb',
      target: 'max',
      targetOptions: undefined,
    });
    expect(
      fusionLossOptions({
        alpha: 2,
        color_weight: 0.5,
        space: 'luma',
        target: 'salient',
        target_options: { ir_floor: 0.8 },
      }),
    ).toEqual({
      alpha: 2,
      colorWeight: 0.5,
      space: 'luma',
      target: 'salient',
      targetOptions: { ir_floor: 0.8 },
    });
  });

  it('checks across fields: the salient target compares luma, its ramps rise', () => {
    expect(fusionLossProblem({})).toBeNull();
    expect(fusionLossProblem({ target: 'salient', space: 'luma' })).toBeNull();
    expect(fusionLossProblem({ target: 'salient' })).toMatch(/set space 'luma'/);
    expect(
      fusionLossProblem({
        target: 'salient',
        space: 'luma',
        target_options: { edge_low: 0.5, edge_high: 0.5 },
      }),
    ).toBe('target_options: edge_low (0.5) must be below edge_high (0.5)');
    expect(
      fusionLossProblem({
        target: 'salient',
        space: 'luma',
        target_options: { salient_high: 0.01 },
      }),
    ).toMatch(/salient_low \(0.04\) must be below salient_high \(0.01\)/);
  });
});
