/**
 * GradOps gradients of the networks' blocks (the UNet's scale-shift ResnetBlock, skip_unet's
 * ResBlockDown/ResBlockUp) equal tfjs gradients and finite differences: the checks of
 * @dif-fusion/onnx's grad-ops.test.ts, on blocks that package does not know.
 */
import { trainableSpecs } from '@dif-fusion/nn';
import { ResBlockDown, ResBlockUp, ResnetBlock } from '@dif-fusion/unet';
import { describe, it } from 'vitest';
// The GradOps test harness (ORT vs tfjs gradients, finite differences) is the backend's.
import { check, img } from '../../onnx/src/grad/grad-test-utils';

const X = () => img('x', [2, 8, 6, 10], 1);

describe('GradOps gradients of network blocks equal tfjs gradients (1e-4 relative) and finite differences', () => {
  it('ResnetBlock with scale-shift norm: GN(h) (1 + scale) + shift, then Swish, conv', async () => {
    const block = new ResnetBlock('r', 8, 4, {
      embDim: 6,
      groups: 2,
      dropout: 0,
      affine: false,
      scaleShift: true,
    });
    const shapes = Object.fromEntries(block.params().map((p) => [p.name, p.shape]));
    await check(
      (ops, [x, emb]) => block.forward(ops, x, emb),
      [X(), img('emb', [2, 6], 14)],
      shapes,
    );
  });
  it('skip_unet ResBlockDown (AvgPool) and ResBlockUp (BatchNorm on batch statistics, nearest x2)', async () => {
    const o = { stride: 2 as const, dropout: 0, affine: true };
    const down = new ResBlockDown('d', 8, 4, 6, o);
    const up = new ResBlockUp('u', 8, 4, 6, o);
    // ResBlockUp: tfjs only. Its BatchNorm-standardised pre-activations put ReLU kinks within
    // any finite-difference step float32 resolves (batchNorm2d alone is checked above).
    for (const [block, fd] of [
      [down, true],
      [up, false],
    ] as const) {
      const shapes = Object.fromEntries(
        trainableSpecs(block.params()).map((p) => [p.name, p.shape]),
      );
      await check(
        (ops, [x, emb]) => block.forward(ops, x, emb),
        [img('x', [2, 8, 6, 10], 16), img('emb', [2, 6], 17)],
        shapes,
        { training: true, h: 1e-3, fd },
      );
    }
  });
});
