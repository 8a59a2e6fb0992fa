import { describe, expect, it } from 'vitest';
import { clock } from './run';

describe('clock (the video ETA)', () => {
  it('prints h:mm:ss', () => {
    expect([clock(0), clock(59.6), clock(61), clock(3600 + 120 + 5), clock(-3)]).toEqual([
      '0:00:00',
      '0:01:00',
      '0:01:01',
      '1:02:05',
      '0:00:00',
    ]);
  });
});
