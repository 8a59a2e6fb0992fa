import { homedir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { sessionCacheDir } from './fuse';

describe('sessionCacheDir: where the optimised session graphs are kept', () => {
  it('follows DIF_FUSION_CACHE, then XDG_CACHE_HOME, then ~/.cache; off turns it off', () => {
    expect(sessionCacheDir({ DIF_FUSION_CACHE: '/data/c' })).toBe(join('/data/c', 'ort'));
    expect(sessionCacheDir({ DIF_FUSION_CACHE: 'off' })).toBeNull();
    expect(sessionCacheDir({ DIF_FUSION_CACHE: '0' })).toBeNull();
    expect(sessionCacheDir({ XDG_CACHE_HOME: '/x' })).toBe(join('/x', 'dif-fusion', 'ort'));
    expect(sessionCacheDir({})).toBe(join(homedir(), '.cache', 'dif-fusion', 'ort'));
  });
});
