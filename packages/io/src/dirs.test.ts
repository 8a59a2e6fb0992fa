import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { makeDirs, makeDirsSync } from './dirs';

describe('makeDirs: mkdir -p that ends', () => {
  it('creates missing parents, and is a no-op on an existing folder', async () => {
    const root = mkdtempSync(join(tmpdir(), 'dif-dirs-'));
    makeDirsSync(join(root, 'a', 'b', 'c'));
    expect(statSync(join(root, 'a', 'b', 'c')).isDirectory()).toBe(true);
    makeDirsSync(join(root, 'a', 'b', 'c'));
    await makeDirs(join(root, 'x', 'y'));
    expect(statSync(join(root, 'x', 'y')).isDirectory()).toBe(true);
  });

  it('a file in the way, or a parent that cannot hold folders (/proc): one error, at once', async () => {
    const root = mkdtempSync(join(tmpdir(), 'dif-dirs-'));
    writeFileSync(join(root, 'f'), 'x');
    expect(() => makeDirsSync(join(root, 'f', 'g'))).toThrow(
      `${join(root, 'f')}: not a folder (a file is in the way)`,
    );
    if (!existsSync('/proc/self')) return;
    expect(() => makeDirsSync('/proc/forbidden/x')).toThrow(
      '/proc/forbidden: cannot create the folder (ENOENT)',
    );
    await expect(makeDirs('/proc/forbidden/x')).rejects.toThrow(
      '/proc/forbidden: cannot create the folder (ENOENT)',
    );
  });

  it("(why) Node's own recursive mkdir does not return on /proc/forbidden/x", () => {
    if (!existsSync('/proc/self')) return;
    const r = spawnSync(
      process.execPath,
      ['-e', "require('fs').mkdirSync('/proc/forbidden/x', { recursive: true })"],
      { timeout: 3000 },
    );
    // Killed by the time-out; if a Node release fixes it, makeDirs is merely redundant.
    expect(r.signal === 'SIGTERM' || r.status !== 0).toBe(true);
  });
});
