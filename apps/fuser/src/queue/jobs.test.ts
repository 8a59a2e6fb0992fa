import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { jobId, listPairs, makeJobs, type PairJob } from './jobs';

const job: PairJob = {
  name: 'a',
  ir: '/d/ir/a.png',
  vis: '/d/vi/a.png',
  out: '/o/a.png',
  method: 'model',
  seed: 0,
  tile: 'auto',
};

describe('queue jobs', () => {
  it('job ids depend on everything that changes the output, not on key order', () => {
    const id = jobId(job);
    expect(id).toMatch(/^pair-[0-9a-f]{32}$/);
    const reordered = Object.fromEntries(Object.entries(job).reverse()) as unknown as PairJob;
    expect(jobId(reordered)).toBe(id);
    // an absent optional setting and an explicit undefined are the same job
    expect(jobId({ ...job, model: undefined })).toBe(id);
    for (const change of [
      { seed: 1 },
      { out: '/o/a.jpg' },
      { tile: 256 },
      { method: 'max' },
    ] as const)
      expect(jobId({ ...job, ...change } as PairJob)).not.toBe(id);
  });

  it('reads a list file of IR VIS lines relative to the list, tabs or spaces', async () => {
    const d = mkdtempSync(join(tmpdir(), 'dif-list-'));
    mkdirSync(join(d, 'sub'));
    writeFileSync(
      join(d, 'sub', 'pairs.txt'),
      '# thermal\tcolour\n\nir/0001.png\tvi/0001.jpg\n  /abs/ir 2.png\t/abs/vi 2.png\n../x/3.tif ../y/3.tif\n',
    );
    const l = await listPairs(join(d, 'sub', 'pairs.txt'));
    expect(l.pairs).toEqual([
      { name: '0001', ir: join(d, 'sub/ir/0001.png'), vis: join(d, 'sub/vi/0001.jpg') },
      { name: 'ir 2', ir: '/abs/ir 2.png', vis: '/abs/vi 2.png' },
      { name: '3', ir: join(d, 'x/3.tif'), vis: join(d, 'y/3.tif') },
    ]);
    const jobs = makeJobs(l, join(d, 'out'), 'jpg', { method: 'max', seed: 2, tile: 'off' });
    expect(jobs[1]).toEqual({
      name: 'ir 2',
      ir: '/abs/ir 2.png',
      vis: '/abs/vi 2.png',
      out: join(d, 'out', 'ir 2.jpg'),
      method: 'max',
      seed: 2,
      tile: 'off',
    });
    writeFileSync(join(d, 'dup.txt'), 'a/1.png b/1.png\nc/1.png d/1.png\n');
    await expect(listPairs(join(d, 'dup.txt'))).rejects.toThrow(
      /dup\.txt:2: two pairs would write the output '1' \(also line 1\)$/,
    );
    writeFileSync(join(d, 'empty.txt'), '# nothing\n');
    await expect(listPairs(join(d, 'empty.txt'))).rejects.toThrow(
      /empty\.txt: the list holds no pairs$/,
    );
    await expect(listPairs(join(d, 'missing'))).rejects.toThrow(
      /missing: no such folder or list file \(--pairs\)$/,
    );
  });
});
