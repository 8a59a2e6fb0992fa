import { initParam, type ParamSpec } from '@dif-fusion/nn';
import { describe, expect, it } from 'vitest';
import { InitStopped, initWeightsFast, usesFastPath } from './fast-init';

const spec = (name: string, shape: number[]): ParamSpec => ({
  name,
  shape,
  init: { kind: 'orthogonal' },
});

/** Largest |Q·Qᵀ - I| over the n vectors (rows when wide, else columns) of a rows x cols matrix. */
function orthoError(q: Float32Array, rows: number, cols: number): number {
  const wide = rows < cols;
  const n = wide ? rows : cols;
  const m = wide ? cols : rows;
  const at = (v: number, k: number) => (wide ? q[v * cols + k] : q[k * cols + v]);
  let worst = 0;
  for (let i = 0; i < n; i += 37)
    for (let j = 0; j < n; j += 41) {
      let d = 0;
      for (let k = 0; k < m; k++) d += at(i, k) * at(j, k);
      worst = Math.max(worst, Math.abs(d - (i === j ? 1 : 0)));
    }
  return worst;
}

describe('initWeightsFast: the orthogonal init of large UNets by Cholesky QR on ONNX Runtime', () => {
  it('gives initParam values (to float32 rounding) for a 512x4608 conv weight, orthonormal rows', async () => {
    const s = spec('downs.9.res_block.block1.block.3.weight', [512, 512, 3, 3]);
    expect(usesFastPath(s)).toBe(true);
    const fast = (await initWeightsFast([s], 7)).get(s.name)!.data;
    const slow = initParam(s, 7);
    let diff = 0;
    for (let i = 0; i < slow.length; i++) diff = Math.max(diff, Math.abs(fast[i] - slow[i]));
    expect(diff).toBeLessThan(2e-5);
    expect(orthoError(fast, 512, 4608)).toBeLessThan(1e-4);
  }, 120_000);

  it('tall matrices (rows > cols): orthonormal columns; small and square ones are initParam bit for bit', async () => {
    const tall = spec('mid.1.weight', [4608, 512]);
    const small = spec('downs.0.weight', [32, 4, 3, 3]);
    const square = spec('ups.0.weight', [64, 64]);
    expect([usesFastPath(tall), usesFastPath(small), usesFastPath(square)]).toEqual([
      true,
      false,
      false,
    ]);
    const w = await initWeightsFast([tall, small, square], 3);
    expect(orthoError(w.get(tall.name)!.data, 4608, 512)).toBeLessThan(1e-4);
    for (const s of [small, square])
      expect(
        Buffer.from(w.get(s.name)!.data.buffer).equals(Buffer.from(initParam(s, 3).buffer)),
      ).toBe(true);
  }, 120_000);

  it('a large model: the other orthogonal matrices (square ones too) by CholeskyQR2 in float64, initParam to rounding', async () => {
    const square = spec('mid.0.attn.out.weight', [256, 256]);
    const wide = spec('downs.3.res_block.block1.block.3.weight', [64, 64, 3, 3]);
    const tall = spec('mid.0.attn.qkv.weight', [384, 128]);
    const bias = { name: 'x.bias', shape: [64], init: { kind: 'zeros' } } as ParamSpec;
    const specs = [square, wide, tall, bias];
    expect(specs.map(usesFastPath)).toEqual([false, false, false, false]);
    // As a small model: initParam bit for bit; as a large one (threshold lowered): float64 QR.
    const asSmall = await initWeightsFast(specs, 5);
    const asLarge = await initWeightsFast(specs, 5, { largeModelWork: 1 });
    for (const [s, rows, cols] of [
      [square, 256, 256],
      [wide, 64, 576],
      [tall, 384, 128],
    ] as const) {
      const ref = initParam(s, 5);
      expect(Buffer.from(asSmall.get(s.name)!.data.buffer).equals(Buffer.from(ref.buffer))).toBe(
        true,
      );
      const got = asLarge.get(s.name)!.data;
      let diff = 0;
      for (let i = 0; i < ref.length; i++) diff = Math.max(diff, Math.abs(got[i] - ref[i]));
      expect(diff).toBeLessThan(1e-6);
      expect(orthoError(got, rows, cols)).toBeLessThan(1e-5);
    }
    expect([...asLarge.get(bias.name)!.data]).toEqual(new Array(64).fill(0));
  }, 120_000);

  it('stops between parameters once asked (Ctrl-C / SIGTERM during the init)', async () => {
    let asked = 0;
    const specs = [spec('a.weight', [8, 8]), spec('b.weight', [8, 8]), spec('c.weight', [8, 8])];
    await expect(
      initWeightsFast(specs, 1, { shouldStop: () => ++asked > 1 }),
    ).rejects.toBeInstanceOf(InitStopped);
    expect(asked).toBe(2);
  });
});
