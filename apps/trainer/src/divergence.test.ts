import { describe, expect, it } from 'vitest';
import { DivergenceGuard, SPIKE_FACTOR, SPIKE_WINDOW, weightsFinite } from './divergence';

describe('DivergenceGuard', () => {
  it('flags losses above SPIKE_FACTOR x the recent median, and is calm SPIKE_WINDOW steps later', () => {
    const g = new DivergenceGuard();
    // the first steps are not judged (no history yet), however large
    expect(g.observe(1, 100)).toBe(false);
    for (let s = 2; s <= 20; s++) expect(g.observe(s, 1)).toBe(false);
    expect(g.observe(21, SPIKE_FACTOR * 1 - 0.01)).toBe(false); // median 1: just below
    expect(g.observe(22, SPIKE_FACTOR * 1 + 0.01)).toBe(true);
    // a spike does not enter the median: a run that stays diverged keeps being flagged
    for (let s = 23; s <= 30; s++) expect(g.observe(s, 50)).toBe(true);
    expect(g.calmAt(30)).toBe(false);
    expect(g.calmAt(30 + SPIKE_WINDOW - 1)).toBe(false);
    expect(g.calmAt(30 + SPIKE_WINDOW)).toBe(true);
  });

  it('weightsFinite spots one NaN or Inf', () => {
    const w = new Map([['a', { shape: [2], data: Float32Array.from([1, 2]) }]]);
    expect(weightsFinite(w)).toBe(true);
    w.set('b', { shape: [1], data: Float32Array.from([Number.NEGATIVE_INFINITY]) });
    expect(weightsFinite(w)).toBe(false);
  });
});
