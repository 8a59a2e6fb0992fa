import { describe, expect, it } from 'vitest';
import { FlopOps } from './flops';

describe('FLOP counting', () => {
  it('conv2d, linear and attention by hand', () => {
    const ops = new FlopOps(
      new Map([
        ['c.weight', { shape: [5, 8, 3, 3] }],
        ['c.bias', { shape: [5] }],
        ['l.weight', { shape: [6, 7] }],
      ]),
    );
    // 3x3 pad 1 stride 1 on [1,8,6,10]: 2 * 5*6*10 outputs * 8*9 MACs each; bias adds 300.
    expect(
      ops.conv2d([1, 8, 6, 10], ops.param('c.weight'), ops.param('c.bias'), { padding: 1 }),
    ).toEqual([1, 5, 6, 10]);
    expect(ops.count).toEqual({ matmul: 43200, elementwise: 300 });
    // stride 2: 3x5 outputs
    expect(
      ops.conv2d([1, 8, 6, 10], ops.param('c.weight'), null, { stride: 2, padding: 1 }),
    ).toEqual([1, 5, 3, 5]);
    expect(ops.count.matmul).toBe(43200 + 2 * 5 * 15 * 72);
    ops.count.matmul = 0;
    ops.linear([3, 7], ops.param('l.weight'), null);
    expect(ops.count.matmul).toBe(2 * 3 * 6 * 7);
    ops.count.matmul = 0;
    // attention on C=4 channels, HW=6: QK^T and AV, each 2 * HW*HW*C
    expect(ops.selfAttention([2, 12, 2, 3])).toEqual([2, 4, 2, 3]);
    expect(ops.count.matmul).toBe(2 * 2 * (2 * 36 * 4));
  });
  it('concatBatch and splitBatch: shapes only, no arithmetic', () => {
    const ops = new FlopOps(new Map());
    expect(
      ops.concatBatch([
        [2, 4, 8, 8],
        [3, 4, 8, 8],
      ]),
    ).toEqual([5, 4, 8, 8]);
    expect(ops.splitBatch([6, 4, 8, 8], 3)).toEqual([
      [2, 4, 8, 8],
      [2, 4, 8, 8],
      [2, 4, 8, 8],
    ]);
    expect(ops.count).toEqual({ matmul: 0, elementwise: 0 });
  });
});
