/**
 * The project's one seeded random number generator: xoshiro128** (Blackman & Vigna, 2018),
 * seeded through SplitMix32. Small, fast, well studied and identical on every platform,
 * so a seed reproduces the same noise, crops and noise levels everywhere.
 * Written here rather than imported because we need a stable, serialisable state
 * (for exact training resume), which the common npm generators do not expose.
 */
/** The whole state of an Rng (JSON): xoshiro128** words and the spare normal. */
export interface RngState {
  s: number[];
  spare: number | null;
}

export class Rng {
  private s: Uint32Array;
  // The spare normal of the polar method as a double and a flag: a `number | null` field that
  // switches between null and a double made normal() ~1.3x slower in V8 (measured).
  private spareValue = 0;
  private hasSpare = false;

  constructor(seed: number | Uint32Array = 0) {
    if (seed instanceof Uint32Array) {
      this.s = Uint32Array.from(seed.subarray(0, 4));
      return;
    }
    // SplitMix32 expands one 32-bit seed into 128 bits of state.
    let x = seed >>> 0;
    this.s = new Uint32Array(4);
    for (let i = 0; i < 4; i++) {
      x = (x + 0x9e3779b9) >>> 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
      this.s[i] = (z ^ (z >>> 16)) >>> 0;
    }
  }

  /** Next 32-bit unsigned integer. */
  nextUint32(): number {
    const s = this.s;
    const result = Math.imul(rotl(Math.imul(s[1], 5) >>> 0, 7), 9) >>> 0;
    const t = (s[1] << 9) >>> 0;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 11);
    return result;
  }

  /** Uniform double in [0, 1) with 53 bits of randomness. */
  uniform(): number {
    const hi = this.nextUint32() >>> 5; // 27 bits
    const lo = this.nextUint32() >>> 6; // 26 bits
    return (hi * 67108864 + lo) / 9007199254740992;
  }

  /** Uniform double in [lo, hi). */
  uniformRange(lo: number, hi: number): number {
    return lo + (hi - lo) * this.uniform();
  }

  /** Uniform integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.uniform() * n);
  }

  /** Standard normal deviate (Marsaglia polar method). */
  normal(): number {
    if (this.hasSpare) {
      this.hasSpare = false;
      return this.spareValue;
    }
    let u: number;
    let v: number;
    let s: number;
    do {
      u = 2 * this.uniform() - 1;
      v = 2 * this.uniform() - 1;
      s = u * u + v * v;
    } while (s >= 1 || s === 0);
    const m = Math.sqrt((-2 * Math.log(s)) / s);
    this.spareValue = v * m;
    this.hasSpare = true;
    return u * m;
  }

  /** Fill a Float32Array with standard normal deviates. */
  normalArray(n: number): Float32Array {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = this.normal();
    return out;
  }

  /** A uniformly random permutation of 0..n-1 (Fisher–Yates, from the last index down). */
  permutation(n: number): number[] {
    const order = Array.from({ length: n }, (_, i) => i);
    for (let i = n - 1; i > 0; i--) {
      const j = this.int(i + 1);
      [order[i], order[j]] = [order[j], order[i]];
    }
    return order;
  }

  /** Serialisable state (for exact resume). */
  getState(): RngState {
    return { s: Array.from(this.s), spare: this.hasSpare ? this.spareValue : null };
  }

  static fromState(state: RngState): Rng {
    const r = new Rng(Uint32Array.from(state.s));
    r.hasSpare = state.spare !== null;
    r.spareValue = state.spare ?? 0;
    return r;
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}
