/** A port that was free a moment ago on 127.0.0.1. */
export function freePort(): Promise<number>;

export interface TestRedis {
  /** `redis://127.0.0.1:<port>` */
  url: string;
  /** Ends the server and removes its folder. */
  stop(): Promise<void>;
}

/** Starts a throw-away redis-server (loopback, free port, temp folder, no persistence). */
export function startRedis(): Promise<TestRedis>;
