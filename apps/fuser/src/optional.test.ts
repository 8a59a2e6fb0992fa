import { describe, expect, it } from 'vitest';
import { FuseError } from './errors';
import { OPTIONAL_DEPENDENCIES, requireOptional } from './optional';

const missing = (name: string) =>
  Object.assign(new Error(`Cannot find package '${name}' imported from /x/dist/cli.js`), {
    code: 'ERR_MODULE_NOT_FOUND',
  });

describe('optional dependencies of serve, queue and worker', () => {
  it('names every package of the command and the npm line with the peer majors', async () => {
    const err = await requireOptional('serve', async (n) => {
      if (n === '@fastify/multipart') throw missing(n);
    }).catch((e) => e);
    expect(err).toBeInstanceOf(FuseError);
    expect(err.message).toBe(
      'dif-fuse serve needs @fastify/multipart, which is not installed (optional dependencies): npm i fastify@5 @fastify/multipart@10',
    );
    const both = await requireOptional('worker', async (n) => {
      throw missing(n);
    }).catch((e) => e);
    expect(both.message).toBe(
      'dif-fuse worker needs bullmq and ioredis, which are not installed (optional dependencies): npm i bullmq@6 ioredis@6',
    );
  });

  it('passes when all load, and rethrows an error that is not a missing package', async () => {
    await expect(requireOptional('queue', async () => {})).resolves.toBeUndefined();
    const broken = new Error('SyntaxError in fastify');
    await expect(
      requireOptional('serve', async () => {
        throw broken;
      }),
    ).rejects.toBe(broken);
  });

  it('the packages are optional peers (and dev dependencies for the tests), not dependencies', async () => {
    const pkg = (await import('../package.json')).default as unknown as Record<
      string,
      Record<string, unknown>
    >;
    for (const name of new Set(Object.values(OPTIONAL_DEPENDENCIES).flat())) {
      expect(pkg.dependencies[name], name).toBeUndefined();
      expect(pkg.peerDependencies[name], name).toBeDefined();
      expect(pkg.peerDependenciesMeta[name], name).toEqual({ optional: true });
      expect(pkg.devDependencies[name], name).toBe(pkg.peerDependencies[name]);
    }
  });

  it('the real packages load in this workspace (nothing thrown)', async () => {
    for (const command of ['serve', 'queue'] as const)
      await expect(requireOptional(command)).resolves.toBeUndefined();
  });
});
