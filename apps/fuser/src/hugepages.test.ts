import { tmpdir } from 'node:os';
import { describe, expect, it } from 'vitest';
import { hugePagesEnv, runsModelFusion } from './hugepages';

describe('huge pages for a one-shot fusion', () => {
  it('only model fusions restart with the tunable', () => {
    expect(runsModelFusion(['--ir', 'a.png', '--vis', 'b.png', '-o', 'f.png'])).toBe(true);
    // many runs of one session (the first run's cost is spread): not restarted
    expect(runsModelFusion(['--pairs', 'd', '-o', 'o', '--method', 'model'])).toBe(false);
    expect(runsModelFusion(['--ir', 'a.mp4', '--vis', 'b.MOV', '-o', 'f.mp4'])).toBe(false);
    expect(runsModelFusion(['--ir=a.mkv', '--vis=b.mkv', '-o', 'f.mkv'])).toBe(false);
    expect(runsModelFusion(['--ir', tmpdir(), '--vis', tmpdir(), '-o', 'out'])).toBe(false);
    expect(runsModelFusion(['--ir', '-', '--vis', 'b.png', '-o', 'f.png'])).toBe(true);
    expect(runsModelFusion([])).toBe(false);
    expect(runsModelFusion(['--help'])).toBe(false);
    expect(runsModelFusion(['--ir', 'a', '-h'])).toBe(false);
    expect(runsModelFusion(['-V'])).toBe(false);
    expect(runsModelFusion(['--pairs', 'd', '-o', 'o', '--method', 'ycbcr-max'])).toBe(false);
    expect(runsModelFusion(['--pairs', 'd', '--method=max'])).toBe(false);
    for (const c of ['help', 'eval', 'queue', 'worker', 'serve'])
      expect(runsModelFusion([c, '--model', 'm'])).toBe(false);
  });

  it('on unless DIF_FUSE_HUGEPAGES=0, never twice', () => {
    const argv = ['--ir', 'a.png', '--vis', 'b.png', '-o', 'f.png'];
    expect(hugePagesEnv(argv, { DIF_FUSE_HUGEPAGES: '0' })).toBeUndefined();
    expect(hugePagesEnv(argv, { GLIBC_TUNABLES: 'glibc.malloc.hugetlb=1' })).toBeUndefined();
    expect(hugePagesEnv(['--help'], {})).toBeUndefined();
    const env = hugePagesEnv(argv, { GLIBC_TUNABLES: 'glibc.malloc.arena_max=2' });
    // Where THP is in madvise mode on glibc 2.35+ (Linux), the tunable is appended.
    if (env) expect(env.GLIBC_TUNABLES).toBe('glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1');
    const plain = hugePagesEnv(argv, {});
    if (plain) expect(plain.GLIBC_TUNABLES).toBe('glibc.malloc.hugetlb=1');
  });
});
