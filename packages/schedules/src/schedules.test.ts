import { describe, expect, it } from 'vitest';
import { golden, hasGolden, noteSkip } from '../../../test/shared';
import { readSafetensors } from '../../io/src/safetensors';
import {
  BETA_SCHEDULES,
  BUFFER_NAMES,
  type BufferName,
  linspace,
  makeBetaSchedule,
  NoiseSchedule,
  stridedTimesteps,
} from './index';
import { Rng } from './rng';

const cfg = (schedule: (typeof BETA_SCHEDULES)[number], n_timestep: number) => ({
  schedule,
  n_timestep,
  linear_start: 1e-6,
  linear_end: 1e-2,
});

describe('makeBetaSchedule (hand-computed)', () => {
  it('linspace matches numpy', () => {
    expect(Array.from(linspace(0, 1, 5))).toEqual([0, 0.25, 0.5, 0.75, 1]);
    expect(Array.from(linspace(2, 2, 3))).toEqual([2, 2, 2]);
    expect(Array.from(linspace(3, 7, 1))).toEqual([3]);
    expect(linspace(0, 1, 0).length).toBe(0);
  });
  it('linear, quad, const, jsd, warmup', () => {
    expect(Array.from(makeBetaSchedule('linear', 3, 0.1, 0.3))).toEqual([0.1, 0.1 + 0.1, 0.3]);
    const q = makeBetaSchedule('quad', 2, 0.04, 0.09);
    expect(q[0]).toBeCloseTo(0.04, 15);
    expect(q[1]).toBeCloseTo(0.09, 15);
    expect(Array.from(makeBetaSchedule('const', 3, 0.1, 0.5))).toEqual([0.5, 0.5, 0.5]);
    expect(Array.from(makeBetaSchedule('jsd', 4))).toEqual([1 / 4, 1 / 3, 1 / 2, 1]);
    const w = makeBetaSchedule('warmup10', 20, 0.1, 0.5);
    expect(w[0]).toBe(0.1);
    expect(w[1]).toBe(0.5); // int(20 * 0.1) = 2 warmup steps
    expect(w[19]).toBe(0.5);
    const w50 = makeBetaSchedule('warmup50', 4, 0, 1);
    expect(Array.from(w50)).toEqual([0, 1, 1, 1]);
  });
  it('cosine is clamped at 0.999 and increasing', () => {
    const b = makeBetaSchedule('cosine', 1000);
    expect(b[b.length - 1]).toBe(0.999);
    for (let i = 1; i < b.length; i++) expect(b[i]).toBeGreaterThanOrEqual(b[i - 1]);
  });
  it('rejects bad arguments with one line', () => {
    expect(() => makeBetaSchedule('nope' as never, 10)).toThrow(/unknown beta schedule 'nope'/);
    expect(() => makeBetaSchedule('linear', 0)).toThrow(/positive integer/);
  });
});

describe.skipIf(!hasGolden)('NoiseSchedule vs golden schedules.safetensors', () => {
  noteSkip(hasGolden, 'golden');
  const file = hasGolden ? readSafetensors(golden('schedules.safetensors')) : null;
  const get = (key: string) => {
    const t = file!.tensors.get(key);
    if (!t) throw new Error(`golden key ${key} missing`);
    return t;
  };
  const float32Names = Object.keys(BUFFER_NAMES).filter(
    (n) => n !== 'betas' && n !== 'log_one_minus_alphas_cumprod',
  ) as BufferName[];

  for (const schedule of BETA_SCHEDULES) {
    for (const T of [2000, 100]) {
      it(`${schedule} T=${T}`, () => {
        const s = new NoiseSchedule(cfg(schedule, T));
        const prefix = `${schedule}.T${T}`;
        // float64 arrays: 1e-12 relative
        for (const [name, ours] of [
          ['betas', s.betas],
          ['sqrt_alphas_cumprod_prev', s.sqrtAlphasCumprodPrev],
        ] as const) {
          const g = get(`${prefix}.${name}`);
          expect(g.dtype).toBe('F64');
          expect(ours.length).toBe(g.data.length);
          for (let i = 0; i < ours.length; i++) {
            const want = g.data[i];
            if (!Number.isFinite(want)) {
              expect(ours[i], `${name}[${i}]`).toBe(want);
              continue;
            }
            const err = Math.abs(ours[i] - want) / Math.max(Math.abs(want), 1e-300);
            // cosine: beta = 1 - a[t+1]/a[t] cancels catastrophically for the first steps
            // of T=2000 (beta ~2e-5), and PyTorch's vectorised cos (SLEEF) differs from V8's
            // (and glibc's) by an ulp; the two cos values of one beta then move the ratio by
            // up to 2 ulps (2^-51 absolute in beta, ~1e-11 relative for the smallest betas).
            // Every other schedule, and cosine's other entries, are held to 1e-12 relative.
            const ulpOfRatio = schedule === 'cosine' && Math.abs(ours[i] - want) <= 2 ** -51;
            if (err > 1e-12 && !ulpOfRatio) {
              throw new Error(`${prefix}.${name}[${i}]: ${ours[i]} vs ${want}`);
            }
          }
        }
        expect(s.sqrtAlphasCumprodPrev.length).toBe(T + 1);
        expect(s.sqrtAlphasCumprodPrev[0]).toBe(1);
        // float32 arrays: 1e-6 relative, non-finite equal
        for (const name of float32Names) {
          const g = get(`${prefix}.${name}`);
          expect(g.dtype).toBe('F32');
          const ours = s.float32(name);
          expect(ours.length).toBe(g.data.length);
          for (let i = 0; i < ours.length; i++) {
            const want = g.data[i];
            if (!Number.isFinite(want) || !Number.isFinite(ours[i])) {
              if (!Object.is(ours[i], want)) {
                throw new Error(`${prefix}.${name}[${i}]: ${ours[i]} vs ${want}`);
              }
              continue;
            }
            const err = Math.abs(ours[i] - want) / Math.max(Math.abs(want), 1e-30);
            if (err > 1e-6) throw new Error(`${prefix}.${name}[${i}]: ${ours[i]} vs ${want}`);
          }
        }
      });
    }
  }

  it('the golden metadata matches the configs used', () => {
    expect(file!.metadata).toMatchObject({ linear_start: '1e-06', linear_end: '0.01' });
  });
});

describe('NoiseSchedule config and noise levels', () => {
  it('round-trips through JSON', () => {
    const s = new NoiseSchedule(cfg('cosine', 50));
    const text = JSON.stringify(s);
    expect(JSON.parse(text)).toEqual(cfg('cosine', 50));
    const s2 = NoiseSchedule.fromJSON(text);
    expect(Array.from(s2.posteriorMeanCoef2)).toEqual(Array.from(s.posteriorMeanCoef2));
    const withS = NoiseSchedule.fromJSON({ ...cfg('cosine', 50), cosine_s: 0.01 });
    expect(withS.toJSON().cosine_s).toBe(0.01);
    expect(withS.betas[0]).not.toBe(s.betas[0]);
  });
  it('rejects malformed configs with one line', () => {
    expect(() => NoiseSchedule.fromJSON('{"schedule":"x","n_timestep":3}')).toThrow(
      /unknown schedule 'x'/,
    );
    expect(() => NoiseSchedule.fromJSON({ ...cfg('linear', 10), n_timestep: 2.5 })).toThrow(
      /n_timestep must be an integer/,
    );
    expect(() =>
      NoiseSchedule.fromJSON({ ...cfg('linear', 10), linear_end: 'a' as unknown as number }),
    ).toThrow(/linear_end/);
  });
  it('continuous noise levels lie between neighbouring sqrt_alphas_cumprod_prev', () => {
    const s = new NoiseSchedule(cfg('linear', 2000));
    const rng = new Rng(7);
    for (const t of [1, 2, 5, 100, 2000]) {
      const lo = s.sqrtAlphasCumprodPrev[t];
      const hi = s.sqrtAlphasCumprodPrev[t - 1];
      for (let k = 0; k < 50; k++) {
        const v = s.continuousNoiseLevel(t, rng);
        expect(v).toBeGreaterThanOrEqual(lo);
        expect(v).toBeLessThanOrEqual(hi);
      }
      const m = s.midpointNoiseLevel(t);
      expect(m).toBeCloseTo((lo + hi) / 2, 15);
    }
    expect(s.continuousNoiseLevels(3, 4, rng).length).toBe(4);
    expect(() => s.continuousNoiseLevel(0, rng)).toThrow(/outside 1..2000/);
    expect(() => s.midpointNoiseLevel(2001)).toThrow(/outside/);
    expect(s.samplingNoiseLevel(0)).toBe(s.sqrtAlphasCumprodPrev[1]);
    // the same seed gives the same levels
    const a = new NoiseSchedule(cfg('cosine', 100)).continuousNoiseLevels(10, 8, new Rng(3));
    const b = new NoiseSchedule(cfg('cosine', 100)).continuousNoiseLevels(10, 8, new Rng(3));
    expect(Array.from(a)).toEqual(Array.from(b));
  });
  it('midpoint matches the golden diffusion_feats levels', () => {
    if (!hasGolden) return;
    const feats = readSafetensors(golden('diffusion_feats.safetensors'));
    const s = new NoiseSchedule(cfg('linear', 2000));
    for (const t of [5, 50, 100]) {
      const want = feats.tensors.get(`t${t}.level`)!.data[0];
      expect(Math.fround(s.midpointNoiseLevel(t))).toBe(want);
    }
  });
  it('sampleTimestep draws 1..T', () => {
    const s = new NoiseSchedule(cfg('linear', 3));
    const rng = new Rng(1);
    const seen = new Set<number>();
    for (let i = 0; i < 200; i++) seen.add(s.sampleTimestep(rng));
    expect([...seen].sort()).toEqual([1, 2, 3]);
  });
  it('respaced betas keep alphas_cumprod at the kept steps', () => {
    const s = new NoiseSchedule(cfg('linear', 1000));
    const ts = stridedTimesteps(1000, 50);
    const b = s.respacedBetas(ts);
    let cum = 1;
    for (let i = 0; i < ts.length; i++) {
      cum *= 1 - b[i];
      expect(cum / s.alphasCumprod[ts[i]]).toBeCloseTo(1, 12);
    }
    expect(() => s.respacedBetas([3, 2])).toThrow(/strictly increasing/);
  });
});

describe('stridedTimesteps', () => {
  it('hand-computed subsequences', () => {
    expect(stridedTimesteps(10, 4)).toEqual([0, 3, 6, 9]);
    expect(stridedTimesteps(10, 4, 'leading')).toEqual([0, 2, 4, 6]);
    expect(stridedTimesteps(10, 4, 'trailing')).toEqual([1, 4, 7, 9]); // diffusers: [9, 7, 4, 1]
    expect(stridedTimesteps(10, 1)).toEqual([9]);
    expect(stridedTimesteps(5, 5)).toEqual([0, 1, 2, 3, 4]);
  });
  it('is strictly increasing within range for every method and size', () => {
    for (const m of ['linspace', 'leading', 'trailing', 'quad'] as const) {
      for (const T of [1, 7, 100, 2000]) {
        for (const n of [1, 2, 3, 10, 50, T]) {
          if (n > T) continue;
          const s = stridedTimesteps(T, n, m);
          expect(s.length).toBe(n);
          expect(s[0]).toBeGreaterThanOrEqual(0);
          expect(s[n - 1]).toBeLessThanOrEqual(T - 1);
          for (let i = 1; i < n; i++) expect(s[i]).toBeGreaterThan(s[i - 1]);
        }
      }
    }
    expect(() => stridedTimesteps(10, 11)).toThrow(/1..10/);
  });
});
