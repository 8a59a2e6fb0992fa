import { describe, expect, it } from 'vitest';
import { formatSeconds, Progress } from './progress';

function sink(isTTY = false) {
  const lines: string[] = [];
  return { lines, stream: { isTTY, write: (s: string) => lines.push(s) } };
}

describe('Progress without a terminal: plain periodic lines', () => {
  it('prints done/total, rate, ETA and extra every tenth of the total and at the end', () => {
    const { lines, stream } = sink();
    const p = new Progress({ label: 'fuse', unit: 'pairs', stream });
    p.start(20);
    for (let i = 1; i <= 20; i++) p.update(i, { rate: 4, extra: `img${i}` });
    p.stop();
    // every ceil(20 / 10) = 2 items; rate 4 pairs/s -> ETA (20 - done) / 4 s
    expect(lines).toHaveLength(10);
    expect(lines[0]).toBe('fuse 2/20 | 4.00 pairs/s | ETA 5s | img2\n');
    expect(lines[4]).toBe('fuse 10/20 | 4.00 pairs/s | ETA 3s | img10\n');
    expect(lines[9]).toBe('fuse 20/20 | 4.00 pairs/s | ETA 0s | img20\n');
  });

  it('honours a fixed every, increment, quiet, and prints nothing before start', () => {
    const { lines, stream } = sink();
    const p = new Progress({ label: 'step', stream, every: 3 });
    p.update(1);
    p.start(7, 1);
    for (let i = 0; i < 6; i++) p.increment(1, { rate: 1 });
    expect(lines.map((l) => l.split(' |')[0])).toEqual(['step 3/7', 'step 6/7', 'step 7/7']);
    const q = sink();
    const quiet = new Progress({ stream: q.stream, quiet: true });
    quiet.start(2);
    quiet.update(2);
    quiet.log('hello');
    expect(q.lines).toEqual([]);
  });

  it('prints a line once intervalMs passed even between periodic lines', () => {
    const { lines, stream } = sink();
    const p = new Progress({ label: 'eval', unit: 'images', stream, every: 100, intervalMs: 0 });
    p.start(300);
    p.update(1, { rate: 2 });
    expect(lines).toEqual(['eval 1/300 | 2.00 images/s | ETA 2m30s\n']);
  });

  it('formats seconds', () => {
    expect([5, 185, 3725, Number.NaN].map(formatSeconds)).toEqual(['5s', '3m05s', '1h02m', '?']);
  });
});
