/** Redis connections for the BullMQ queue and workers (ioredis, as BullMQ expects). */
import { Redis } from 'ioredis';
import { FuseError } from '../errors';

export const DEFAULT_QUEUE = 'dif-fuse';

/** `--redis` default: $DIF_FUSE_REDIS, else a local server. */
export function defaultRedisUrl(): string {
  return process.env.DIF_FUSE_REDIS ?? 'redis://127.0.0.1:6379';
}

/** The URL fit for a message: the password (and a user-less secret) replaced by ***. */
export function redactUrl(url: string): string {
  return url.replace(
    /^([a-z][a-z0-9+.-]*:\/\/)([^@/?#]*)@/i,
    (_m, scheme: string, cred: string) => {
      const colon = cred.indexOf(':');
      return `${scheme}${colon >= 0 ? `${cred.slice(0, colon)}:***` : '***'}@`;
    },
  );
}

function checkUrl(url: string): void {
  if (!/^rediss?:\/\//.test(url))
    throw new FuseError(
      `--redis ${redactUrl(url)}: expected a URL such as redis://host:6379 or rediss://...`,
      2,
    );
}

/**
 * A connection for short commands (`queue add`, `queue status`): a few connection attempts,
 * then a one-line error, instead of retrying forever.
 */
export async function connectOnce(url: string): Promise<Redis> {
  checkUrl(url);
  const client = new Redis(url, {
    lazyConnect: true,
    maxRetriesPerRequest: null,
    retryStrategy: (times) => (times > 3 ? null : 200 * times),
  });
  // The socket's error (ECONNREFUSED, ENOTFOUND, ...) says more than connect()'s rejection.
  let cause: Error | undefined;
  client.on('error', (e: Error) => {
    cause = e;
  });
  try {
    await client.connect();
  } catch (err) {
    client.disconnect();
    const msg = (cause ?? (err as Error)).message.split('\n')[0];
    throw new FuseError(`${redactUrl(url)}: cannot reach Redis (${msg})`);
  }
  return client;
}

/** Delay before the n-th reconnection attempt of a worker (ms): 0.5 s more each time, at most 5 s. */
export const reconnectDelay = (times: number) => Math.min(500 * times, 5000);

/**
 * A worker's connection: retries for ever (a worker outlives a Redis restart) every
 * `reconnectDelay`, printing one line per outage (its first error), never a stack trace.
 */
export function connectWorker(url: string, warn: (s: string) => void): Redis {
  checkUrl(url);
  const client = new Redis(url, { maxRetriesPerRequest: null, retryStrategy: reconnectDelay });
  let down = false;
  client.on('error', (err) => {
    if (!down)
      warn(
        `warning: ${redactUrl(url)}: ${err.message.split('\n')[0]}; retrying every few seconds (Ctrl-C stops)`,
      );
    down = true;
  });
  client.on('ready', () => {
    down = false;
  });
  return client;
}
