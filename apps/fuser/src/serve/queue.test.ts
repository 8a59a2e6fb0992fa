import { describe, expect, it } from 'vitest';
import { Lane, type Ticket } from './queue';

const tick = () => new Promise((r) => setTimeout(r, 5));

describe('Lane: one task at a time, first in first out, with places', () => {
  it('runs 5 tasks one at a time in order and reports places 0,1,2,3,4 at queueing', async () => {
    const lane = new Lane();
    let active = 0;
    let maxActive = 0;
    const order: number[] = [];
    const places: number[] = [];
    const tickets: Ticket[] = [];
    const results = await Promise.all(
      [0, 1, 2, 3, 4].map((i) =>
        lane.run(
          async () => {
            active++;
            maxActive = Math.max(maxActive, active);
            order.push(i);
            await tick();
            active--;
            return i * 10;
          },
          (t) => {
            tickets.push(t);
            places.push(t.place());
          },
        ),
      ),
    );
    expect(results).toEqual([0, 10, 20, 30, 40]);
    expect(order).toEqual([0, 1, 2, 3, 4]);
    expect(maxActive).toBe(1);
    expect(places).toEqual([0, 1, 2, 3, 4]);
    expect(tickets.map((t) => t.place())).toEqual([0, 0, 0, 0, 0]);
  });

  it('places move up as tasks finish; a failing task rejects only its own promise', async () => {
    const lane = new Lane();
    const releases: (() => void)[] = [];
    const tickets: Ticket[] = [];
    const gate = () => new Promise<void>((r) => releases.push(r));
    const p0 = lane.run(gate, (t) => tickets.push(t));
    const p1 = lane.run(
      async () => {
        throw new Error('boom');
      },
      (t) => tickets.push(t),
    );
    const p2 = lane.run(gate, (t) => tickets.push(t));
    await tick();
    expect(tickets.map((t) => t.place())).toEqual([0, 1, 2]);
    expect(lane.length).toBe(2);
    releases[0]();
    await expect(p1).rejects.toThrow('boom');
    await tick();
    expect(tickets.map((t) => t.place())).toEqual([0, 0, 0]);
    expect(lane.busy).toBe(true);
    releases[1]();
    await Promise.all([p0, p2]);
    expect(lane.busy).toBe(false);
    expect(lane.length).toBe(0);
  });
});
