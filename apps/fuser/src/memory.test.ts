import { describe, expect, it } from 'vitest';
import { AVAILABLE_SHARE, availableMemory, cgroupHeadroom, memoryBudget } from './memory';
import { autoTile, planTiles } from './pipeline';

describe('--tile auto: the memory available', () => {
  it('reads MemAvailable from /proc/meminfo', () => {
    expect(availableMemory('MemTotal: 100 kB\nMemFree: 10 kB\nMemAvailable:   2048 kB\n')).toBe(
      2048 * 1024,
    );
  });

  it('cgroup v2 and v1 limits, and none', () => {
    const v2 = (files: Record<string, string>) => (p: string) => files[p];
    expect(
      cgroupHeadroom(
        v2({
          '/proc/self/cgroup': '0::/job',
          '/sys/fs/cgroup/job/memory.max': '4000000000',
          '/sys/fs/cgroup/job/memory.current': '1000000000',
        }),
      ),
    ).toBe(3e9);
    expect(
      cgroupHeadroom(v2({ '/proc/self/cgroup': '0::/', '/sys/fs/cgroup/memory.max': 'max' })),
    ).toBeUndefined();
    expect(
      cgroupHeadroom(
        v2({
          '/proc/self/cgroup': '4:memory:/docker/x\n1:cpu:/docker/x',
          '/sys/fs/cgroup/memory/memory.limit_in_bytes': '2000000000',
          '/sys/fs/cgroup/memory/memory.usage_in_bytes': '500000000',
        }),
      ),
    ).toBe(1.5e9);
    expect(
      cgroupHeadroom(
        v2({
          '/proc/self/cgroup': '4:memory:/',
          '/sys/fs/cgroup/memory/memory.limit_in_bytes': '9223372036854771712',
        }),
      ),
    ).toBeUndefined();
  });

  it('--memory wins; else a share of the smaller of free memory and the cgroup headroom', () => {
    expect(memoryBudget(1500)).toEqual({ bytes: 1.5e9, source: '--memory 1500' });
    expect(memoryBudget(undefined, { available: 8e9, cgroup: null }).bytes).toBe(
      8e9 * AVAILABLE_SHARE,
    );
    const capped = memoryBudget(undefined, { available: 8e9, cgroup: 2e9 });
    expect(capped.bytes).toBe(2e9 * AVAILABLE_SHARE);
    expect(capped.source).toMatch(/cgroup limit/);
  });

  it('a machine that holds the whole image fuses it whole, and says why it tiles', () => {
    const quad = (h: number, w: number) => (h * w) ** 2 / 256;
    const whys: string[] = [];
    // 640x480 needs 3.8e8 of this toy estimate: whole under a 1 GB budget...
    expect(autoTile(480, 640, 16, quad, { memoryBudget: 1e9 })).toBe('off');
    const whole = planTiles(
      480,
      640,
      16,
      { memoryBudget: 1e9, onTiling: (w) => whys.push(w) },
      quad,
    );
    expect(whole).toHaveLength(1);
    expect(whys).toEqual([]);
    // ...tiled under 100 MB, with the reason given once.
    const tiled = planTiles(
      480,
      640,
      16,
      { memoryBudget: 1e8, memorySource: '--memory 100', onTiling: (w) => whys.push(w) },
      quad,
    );
    expect(tiled.length).toBeGreaterThan(1);
    expect(whys).toEqual([
      `the whole 640x480 image needs ~0.4 GB, more than 0.1 GB (--memory 100): ${tiled[0].width} px tiles`,
    ]);
  });
});
