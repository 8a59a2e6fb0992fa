/**
 * Bulk draws from the project generator (@dif-fusion/schedules `Rng`: SplitMix32 seeding,
 * xoshiro128**, 53-bit uniforms, Marsaglia polar normals) with the state in local
 * variables instead of a Uint32Array: the same numbers, bit for bit (tests compare with
 * `Rng`), several times faster. Used for the fusion noise (`fusionNoise`: 3.7 M normals for a
 * 640x480 pair with 3 time steps) and random-init weights (hundreds of millions).
 */

function seedState(seed: number): [number, number, number, number] {
  let x = seed >>> 0;
  const s: number[] = [];
  for (let i = 0; i < 4; i++) {
    x = (x + 0x9e3779b9) >>> 0;
    let z = x;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    s.push((z ^ (z >>> 16)) >>> 0);
  }
  return s as [number, number, number, number];
}

/**
 * `out[i] = lo + (hi - lo) * rng.uniform()` for a fresh `new Rng(seed)`, i.e. what
 * `Rng.uniformRange` gives, element by element.
 */
export function fillUniform(seed: number, out: Float32Array, lo: number, hi: number): Float32Array {
  let [s0, s1, s2, s3] = seedState(seed);
  const span = hi - lo;
  for (let i = 0; i < out.length; i++) {
    // two xoshiro128** outputs -> 27 + 26 bits
    let r = Math.imul(s1, 5);
    r = Math.imul((r << 7) | (r >>> 25), 9);
    let t = s1 << 9;
    s2 ^= s0;
    s3 ^= s1;
    s1 ^= s2;
    s0 ^= s3;
    s2 ^= t;
    s3 = (s3 << 11) | (s3 >>> 21);
    const a = r >>> 5;
    r = Math.imul(s1, 5);
    r = Math.imul((r << 7) | (r >>> 25), 9);
    t = s1 << 9;
    s2 ^= s0;
    s3 ^= s1;
    s1 ^= s2;
    s0 ^= s3;
    s2 ^= t;
    s3 = (s3 << 11) | (s3 >>> 21);
    const b = r >>> 6;
    out[i] = lo + span * ((a * 67108864 + b) / 9007199254740992);
  }
  return out;
}

/** `new Rng(seed).normalArray(n)`, bit for bit. */
export function normalArray(seed: number, n: number): Float32Array {
  return fillNormal(seed, new Float32Array(n));
}

/**
 * `out[i] = rng.normal()` for a fresh `new Rng(seed)`, bit for bit: into a Float64Array the
 * doubles themselves (as initParam's orthogonal draws), into a Float32Array rounded.
 */
export function fillNormal<T extends Float32Array | Float64Array>(seed: number, out: T): T {
  const n = out.length;
  let [s0, s1, s2, s3] = seedState(seed);
  let i = 0;
  while (i < n) {
    let u: number;
    let v: number;
    let s: number;
    do {
      // four xoshiro128** outputs -> two 53-bit uniforms (inlined: no closure, no state array)
      let r = Math.imul(s1, 5);
      r = Math.imul((r << 7) | (r >>> 25), 9);
      let t = s1 << 9;
      s2 ^= s0;
      s3 ^= s1;
      s1 ^= s2;
      s0 ^= s3;
      s2 ^= t;
      s3 = (s3 << 11) | (s3 >>> 21);
      const a = r >>> 5;
      r = Math.imul(s1, 5);
      r = Math.imul((r << 7) | (r >>> 25), 9);
      t = s1 << 9;
      s2 ^= s0;
      s3 ^= s1;
      s1 ^= s2;
      s0 ^= s3;
      s2 ^= t;
      s3 = (s3 << 11) | (s3 >>> 21);
      u = (2 * (a * 67108864 + (r >>> 6))) / 9007199254740992 - 1;
      r = Math.imul(s1, 5);
      r = Math.imul((r << 7) | (r >>> 25), 9);
      t = s1 << 9;
      s2 ^= s0;
      s3 ^= s1;
      s1 ^= s2;
      s0 ^= s3;
      s2 ^= t;
      s3 = (s3 << 11) | (s3 >>> 21);
      const c = r >>> 5;
      r = Math.imul(s1, 5);
      r = Math.imul((r << 7) | (r >>> 25), 9);
      t = s1 << 9;
      s2 ^= s0;
      s3 ^= s1;
      s1 ^= s2;
      s0 ^= s3;
      s2 ^= t;
      s3 = (s3 << 11) | (s3 >>> 21);
      v = (2 * (c * 67108864 + (r >>> 6))) / 9007199254740992 - 1;
      s = u * u + v * v;
    } while (s >= 1 || s === 0);
    const m = Math.sqrt((-2 * Math.log(s)) / s);
    out[i++] = u * m;
    if (i < n) out[i++] = v * m;
  }
  return out;
}
