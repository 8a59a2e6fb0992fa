/**
 * The memory a fusion may use, for `--tile auto`: what the machine has available now (Linux's
 * MemAvailable, else os.freemem), capped by the cgroup's limit when the process runs in one
 * (v2 memory.max - memory.current, v1 limit_in_bytes - usage_in_bytes), minus a margin for
 * the image buffers and the runtime itself. `--memory MB` replaces it.
 */
import { readFileSync } from 'node:fs';
import { freemem } from 'node:os';

export interface MemoryBudget {
  /** Bytes one model run may use. */
  bytes: number;
  /** Where the figure comes from, for the progress line ("4.1 GB available (cgroup limit)"). */
  source: string;
}

/** Share of the available memory given to one model run (the rest: images, arena slack). */
export const AVAILABLE_SHARE = 0.75;

const read = (path: string): string | undefined => {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return undefined;
  }
};

/** MemAvailable of /proc/meminfo in bytes (free + reclaimable caches), else os.freemem(). */
export function availableMemory(meminfo = read('/proc/meminfo')): number {
  const m = meminfo?.match(/^MemAvailable:\s+(\d+)\s+kB/m);
  return m ? Number(m[1]) * 1024 : freemem();
}

/**
 * Headroom left under this process's cgroup memory limit in bytes, or undefined without a
 * limit. `files` reads a path (injectable for tests).
 */
export function cgroupHeadroom(
  files: (path: string) => string | undefined = read,
): number | undefined {
  // cgroup v2: the process's group from /proc/self/cgroup ("0::/path").
  const self = files('/proc/self/cgroup');
  const v2 = self?.match(/^0::(.*)$/m)?.[1];
  if (v2 !== undefined) {
    const dir = `/sys/fs/cgroup${v2 === '/' ? '' : v2}`;
    const max = files(`${dir}/memory.max`);
    if (max && max !== 'max') {
      const used = Number(files(`${dir}/memory.current`) ?? 0);
      return Math.max(0, Number(max) - used);
    }
    return undefined;
  }
  const limit = Number(files('/sys/fs/cgroup/memory/memory.limit_in_bytes'));
  // v1 reports "no limit" as a huge number (PAGE_COUNTER_MAX pages).
  if (!Number.isFinite(limit) || limit <= 0 || limit >= 2 ** 60) return undefined;
  const used = Number(files('/sys/fs/cgroup/memory/memory.usage_in_bytes') ?? 0);
  return Math.max(0, limit - used);
}

/** Bytes as "1.2 GB" (the memory figures of the tiling messages). */
export const gb = (b: number) => `${(b / 1e9).toFixed(1)} GB`;

/** The budget of one model run: `--memory` when given, else a share of what is available. */
export function memoryBudget(
  memoryMB?: number,
  probe: { available?: number; cgroup?: number | null } = {},
): MemoryBudget {
  if (memoryMB !== undefined) return { bytes: memoryMB * 1e6, source: `--memory ${memoryMB}` };
  const available = probe.available ?? availableMemory();
  const cgroup = probe.cgroup === null ? undefined : (probe.cgroup ?? cgroupHeadroom());
  const limited = cgroup !== undefined && cgroup < available;
  const free = limited ? cgroup : available;
  return {
    bytes: Math.floor(free * AVAILABLE_SHARE),
    source: `${gb(free)} available${limited ? ' under the cgroup limit' : ''}, ${AVAILABLE_SHARE * 100}% of it`,
  };
}

/**
 * The tiling options of one CLI run (pairs, folders, videos) from its flags: `--tile`,
 * `--overlap`, the memory budget decided once for the run (`--memory`, else a share of what is
 * available now), and the "tiling: why" line, told once per run (a batch of same-size pairs or
 * the frames of a video tile alike).
 */
export function runTiling(
  f: { tile?: number | 'auto' | 'off'; overlap?: number; memory?: number; quiet?: boolean },
  err: (s: string) => void,
): {
  tile?: number | 'auto' | 'off';
  overlap?: number;
  memoryBudget: number;
  memorySource: string;
  onTiling: (why: string) => void;
} {
  const budget = memoryBudget(f.memory);
  let told = false;
  return {
    tile: f.tile,
    overlap: f.overlap,
    memoryBudget: budget.bytes,
    memorySource: budget.source,
    onTiling: (why: string) => {
      if (!f.quiet && !told) err(`tiling: ${why}`);
      told = true;
    },
  };
}
