/**
 * A one-at-a-time FIFO lane: `dif-fuse serve` gives every opened method (one ONNX Runtime
 * session for the model) one lane, so a session runs one fusion at a time and later requests
 * wait their turn. The page shows a job's place: 0 running, 1 next, ...
 */

/** A task's ticket: its place in the lane while it waits. */
export interface Ticket {
  /** 0 while running (or done), n >= 1 while n - 1 tasks wait before it plus the running one. */
  place(): number;
}

interface Entry {
  task: () => Promise<unknown>;
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
  ticket: Ticket;
}

export class Lane {
  private readonly waiting: Entry[] = [];
  private running = false;
  private refusing: (() => Error) | undefined;
  private readonly idle: (() => void)[] = [];

  /** Tasks waiting (not counting the running one). */
  get length(): number {
    return this.waiting.length;
  }

  get busy(): boolean {
    return this.running;
  }

  /** Queues `task`; `onTicket` receives its ticket at once (place 0 when the lane was idle). */
  run<T>(task: () => Promise<T>, onTicket?: (t: Ticket) => void): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      if (this.refusing) {
        reject(this.refusing());
        return;
      }
      const entry: Entry = {
        task,
        resolve: resolve as (v: unknown) => void,
        reject,
        ticket: { place: () => this.waiting.indexOf(entry) + 1 },
      };
      this.waiting.push(entry);
      this.pump();
      onTicket?.(entry.ticket);
    });
  }

  /**
   * Refuses every waiting task (its promise rejects with `reason()`), takes no more (later
   * `run` calls reject at once) and resolves once the running task, if any, has finished.
   */
  drain(reason: () => Error): Promise<void> {
    this.refusing = reason;
    for (const e of this.waiting.splice(0)) e.reject(reason());
    return this.running ? new Promise<void>((r) => this.idle.push(r)) : Promise.resolve();
  }

  private pump(): void {
    if (this.running) return;
    const next = this.waiting.shift();
    if (!next) {
      for (const r of this.idle.splice(0)) r();
      return;
    }
    this.running = true;
    // Started on a later tick, so a caller that queues several tasks sees them all waiting.
    Promise.resolve()
      .then(next.task)
      .then(next.resolve, next.reject)
      .finally(() => {
        this.running = false;
        this.pump();
      });
  }
}
