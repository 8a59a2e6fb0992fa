/**
 * The seven beta schedules of SR3 / Dif-Fusion (`make_beta_schedule` in
 * models/sr3_modules/diffusion.py of the reference), computed in float64 with the same
 * order of operations as numpy/torch so the values agree to the last few ulps.
 */

export const BETA_SCHEDULES = [
  'quad',
  'linear',
  'warmup10',
  'warmup50',
  'const',
  'jsd',
  'cosine',
] as const;

export type BetaScheduleName = (typeof BETA_SCHEDULES)[number];

export function isBetaScheduleName(name: unknown): name is BetaScheduleName {
  return typeof name === 'string' && (BETA_SCHEDULES as readonly string[]).includes(name);
}

/** numpy.linspace(start, stop, num) in float64 (same formula: i * step + start, last = stop). */
export function linspace(start: number, stop: number, num: number): Float64Array {
  const out = new Float64Array(num);
  if (num === 0) return out;
  if (num === 1) {
    out[0] = start;
    return out;
  }
  const div = num - 1;
  const delta = stop - start;
  const step = delta / div;
  for (let i = 0; i < num; i++) out[i] = step === 0 ? (i / div) * delta + start : i * step + start;
  out[num - 1] = stop;
  return out;
}

function warmupBeta(
  linearStart: number,
  linearEnd: number,
  nTimestep: number,
  warmupFrac: number,
): Float64Array {
  const betas = new Float64Array(nTimestep).fill(linearEnd);
  const warmupTime = Math.trunc(nTimestep * warmupFrac);
  betas.set(linspace(linearStart, linearEnd, warmupTime), 0);
  return betas;
}

/**
 * Betas of length `nTimestep` for one of the reference's schedules:
 * - `quad`: linspace(sqrt(start), sqrt(end))^2
 * - `linear`: linspace(start, end)
 * - `warmup10` / `warmup50`: linear over the first 10% / 50% of steps, then `end`
 * - `const`: `end` everywhere
 * - `jsd`: 1/T, 1/(T-1), ..., 1 (the last beta is 1, so alphas_cumprod ends at 0)
 * - `cosine`: Nichol & Dhariwal's cosine schedule with offset `cosineS`, betas clamped at 0.999
 */
export function makeBetaSchedule(
  schedule: BetaScheduleName,
  nTimestep: number,
  linearStart = 1e-4,
  linearEnd = 2e-2,
  cosineS = 8e-3,
): Float64Array {
  if (!Number.isInteger(nTimestep) || nTimestep < 1) {
    throw new RangeError(`n_timestep must be a positive integer, got ${nTimestep}`);
  }
  switch (schedule) {
    case 'quad': {
      const b = linspace(linearStart ** 0.5, linearEnd ** 0.5, nTimestep);
      for (let i = 0; i < b.length; i++) b[i] = b[i] * b[i];
      return b;
    }
    case 'linear':
      return linspace(linearStart, linearEnd, nTimestep);
    case 'warmup10':
      return warmupBeta(linearStart, linearEnd, nTimestep, 0.1);
    case 'warmup50':
      return warmupBeta(linearStart, linearEnd, nTimestep, 0.5);
    case 'const':
      return new Float64Array(nTimestep).fill(linearEnd);
    case 'jsd': {
      const d = linspace(nTimestep, 1, nTimestep);
      for (let i = 0; i < d.length; i++) d[i] = 1 / d[i];
      return d;
    }
    case 'cosine': {
      const alphas = new Float64Array(nTimestep + 1);
      for (let i = 0; i <= nTimestep; i++) {
        const ts = i / nTimestep + cosineS;
        const c = Math.cos(((ts / (1 + cosineS)) * Math.PI) / 2);
        alphas[i] = c * c;
      }
      const a0 = alphas[0];
      for (let i = 0; i <= nTimestep; i++) alphas[i] = alphas[i] / a0;
      const betas = new Float64Array(nTimestep);
      for (let i = 0; i < nTimestep; i++) {
        betas[i] = Math.min(1 - alphas[i + 1] / alphas[i], 0.999);
      }
      return betas;
    }
    default:
      throw new RangeError(
        `unknown beta schedule '${String(schedule)}' (expected one of ${BETA_SCHEDULES.join(', ')})`,
      );
  }
}
