/**
 * The server's and the queue's dependencies are optional peer dependencies: a plain
 * `npm install @dif-fusion/fuser` (fusion, eval) installs neither fastify nor BullMQ/ioredis.
 * The commands that need them check first and name what to install in one line.
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FuseError } from './errors';

/** The packages each optional command needs, in the order the message names them. */
export const OPTIONAL_DEPENDENCIES = {
  serve: ['fastify', '@fastify/multipart'],
  queue: ['bullmq', 'ioredis'],
  worker: ['bullmq', 'ioredis'],
} as const satisfies Record<string, readonly string[]>;

/** `name@major` of each package from this package's peer ranges (`fastify@5`). */
function installSpec(names: readonly string[]): string {
  let peers: Record<string, string> = {};
  try {
    const here = dirname(fileURLToPath(import.meta.url)); // <package>/dist or <package>/src
    peers = JSON.parse(readFileSync(join(here, '..', 'package.json'), 'utf8')).peerDependencies;
  } catch {}
  return names
    .map((n) => {
      const major = /(\d+)/.exec(peers?.[n] ?? '')?.[1];
      return major ? `${n}@${major}` : n;
    })
    .join(' ');
}

function isMissing(err: unknown, name: string): boolean {
  const e = err as { code?: string; message?: string };
  return (
    (e?.code === 'ERR_MODULE_NOT_FOUND' || e?.code === 'MODULE_NOT_FOUND') &&
    (e.message ?? '').includes(`'${name}'`)
  );
}

/**
 * Throws `dif-fuse serve needs fastify and @fastify/multipart, which are not installed: npm i
 * fastify@5 @fastify/multipart@10` when one is missing. `load` imports a package (a parameter
 * for the tests).
 */
export async function requireOptional(
  command: keyof typeof OPTIONAL_DEPENDENCIES,
  load: (name: string) => Promise<unknown> = (name) => import(name),
): Promise<void> {
  const names = OPTIONAL_DEPENDENCIES[command];
  const missing: string[] = [];
  for (const name of names) {
    try {
      await load(name);
    } catch (err) {
      if (!isMissing(err, name)) throw err;
      missing.push(name);
    }
  }
  if (missing.length === 0) return;
  throw new FuseError(
    `dif-fuse ${command} needs ${missing.join(' and ')}, which ${missing.length > 1 ? 'are' : 'is'} not installed (optional dependencies): npm i ${installSpec(names)}`,
  );
}
