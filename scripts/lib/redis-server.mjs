/**
 * A throw-away redis-server for the job-queue tests and benchmarks: loopback, a random free
 * port, its own temp folder, no persistence. Plain ESM so that both the fuser's tests
 * (TypeScript, types in redis-server.d.mts) and scripts/bench (plain Node) import it.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A port that was free a moment ago on 127.0.0.1. */
export function freePort() {
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.on('error', rej);
    srv.listen(0, '127.0.0.1', () => {
      const port = srv.address().port;
      srv.close(() => res(port));
    });
  });
}

/**
 * Starts redis-server and resolves once it accepts connections (a few tries, in case the
 * free port was taken in between); `stop()` ends it and removes its folder.
 */
export async function startRedis() {
  for (let attempt = 0; ; attempt++) {
    const port = await freePort();
    const dir = mkdtempSync(join(tmpdir(), 'dif-redis-'));
    const args = [
      '--port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--save',
      '',
      '--appendonly',
      'no',
      '--dir',
      dir,
    ];
    const child = spawn('redis-server', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const ok = await new Promise((res) => {
      let log = '';
      child.stdout.on('data', (d) => {
        log += d.toString();
        if (/Ready to accept connections/.test(log)) res(true);
      });
      child.on('error', () => res(false));
      child.on('exit', () => res(false));
    });
    const remove = () => rmSync(dir, { recursive: true, force: true });
    if (ok)
      return {
        url: `redis://127.0.0.1:${port}`,
        stop: () =>
          new Promise((res) => {
            child.on('exit', () => {
              remove();
              res();
            });
            child.kill('SIGTERM');
          }),
      };
    remove();
    if (attempt >= 3) throw new Error('redis-server did not start');
  }
}
