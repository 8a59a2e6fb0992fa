import { describe, expect, it } from 'vitest';
import { AdamF32 } from './adam';

/** PyTorch's Adam/AdamW update, in float64, for one scalar parameter. */
function reference(type: 'adam' | 'adamw', wd: number, grads: number[], p0: number, lr: number) {
  let p = p0;
  let m = 0;
  let v = 0;
  const [b1, b2, eps] = [0.9, 0.999, 1e-8];
  grads.forEach((g0, i) => {
    const t = i + 1;
    let g = g0;
    if (type === 'adamw') p *= 1 - lr * wd;
    else g += wd * p;
    m = b1 * m + (1 - b1) * g;
    v = b2 * v + (1 - b2) * g * g;
    p -= ((lr / (1 - b1 ** t)) * m) / (Math.sqrt(v) / Math.sqrt(1 - b2 ** t) + eps);
  });
  return { p, m, v };
}

describe('AdamF32', () => {
  for (const [type, wd] of [
    ['adam', 0],
    ['adam', 0.1],
    ['adamw', 0.01],
  ] as const)
    it(`${type}, weight decay ${wd}: PyTorch's update, state round trip`, () => {
      const grads = [0.5, -0.25, 1.5, 0.01];
      const params = new Map([['w', { shape: [2], data: Float32Array.from([0.3, -0.7]) }]]);
      const opt = new AdamF32(params, { type, lr: 1e-2, weightDecay: wd });
      for (const g of grads) opt.apply(new Map([['w', Float32Array.from([g, 2 * g])]]));
      const a = reference(type, wd, grads, 0.3, 1e-2);
      const b = reference(
        type,
        wd,
        grads.map((g) => 2 * g),
        -0.7,
        1e-2,
      );
      expect(params.get('w')!.data[0]).toBeCloseTo(a.p, 6);
      expect(params.get('w')!.data[1]).toBeCloseTo(b.p, 6);
      const st = opt.state();
      expect(st.step).toBe(4);
      expect(st.slots.exp_avg.get('w')!.data[0]).toBeCloseTo(a.m, 6);
      expect(st.slots.exp_avg_sq.get('w')!.data[1]).toBeCloseTo(b.v, 6);
      // a restored optimizer continues exactly
      const p2 = new Map([['w', { shape: [2], data: params.get('w')!.data.slice() }]]);
      const opt2 = new AdamF32(p2, { type, lr: 1e-2, weightDecay: wd });
      opt2.load(st);
      opt.apply(new Map([['w', Float32Array.from([0.2, 0.1])]]));
      opt2.apply(new Map([['w', Float32Array.from([0.2, 0.1])]]));
      expect(Array.from(p2.get('w')!.data)).toEqual(Array.from(params.get('w')!.data));
    });

  it('state(): copies by default; { copy: false } hands out the live slots (the checkpoint, no copy)', () => {
    const params = new Map([['w', { shape: [2], data: Float32Array.from([0.3, -0.7]) }]]);
    const opt = new AdamF32(params, { type: 'adam', lr: 1e-2 });
    opt.apply(new Map([['w', Float32Array.from([0.5, 1])]]));
    const copied = opt.state();
    const live = opt.state({ copy: false });
    expect(live.slots.exp_avg.get('w')!.data).toEqual(copied.slots.exp_avg.get('w')!.data);
    expect(live.slots.exp_avg_sq.get('w')!.data).toEqual(copied.slots.exp_avg_sq.get('w')!.data);
    const m1 = copied.slots.exp_avg.get('w')!.data.slice();
    opt.apply(new Map([['w', Float32Array.from([0.5, 1])]]));
    expect(copied.slots.exp_avg.get('w')!.data).toEqual(m1); // a copy: unchanged
    expect(live.slots.exp_avg.get('w')!.data).toEqual(opt.state().slots.exp_avg.get('w')!.data);
    expect(live.slots.exp_avg.get('w')!.data).not.toEqual(m1);
  });
});
