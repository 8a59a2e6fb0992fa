import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { removeStaleTempFiles, writeFileAtomic } from './atomic';

const root = mkdtempSync(join(tmpdir(), 'dif-io-atomic-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** The PID of a process that has exited (so no process has it, barring reuse). */
function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], {
    encoding: 'utf8',
  });
  return Number(r.stdout);
}

describe('stale temporary files of killed atomic writes', () => {
  it('removes those of dead processes, keeps live ones and everything else', async () => {
    const dir = join(root, 'out');
    await writeFileAtomic(join(dir, 'a.png'), 'done');
    const dead = deadPid();
    const stale = [`.a.png.${dead}.0badf00d.tmp`, `.b.safetensors.${dead}.12345678.tmp`];
    const keep = [
      `.c.png.${process.pid}.deadbeef.tmp`, // this process: a write in flight
      '.d.png.1.cafebabe.tmp', // PID 1 is alive
      '.notes.tmp', // not an atomic-write name
      'e.png',
    ];
    for (const n of [...stale, ...keep]) writeFileSync(join(dir, n), 'x');
    const removed = removeStaleTempFiles(dir);
    expect(removed.sort()).toEqual(stale.map((n) => join(dir, n)).sort());
    expect(readdirSync(dir).sort()).toEqual([...keep, 'a.png'].sort());
    expect(removeStaleTempFiles(join(root, 'missing'))).toEqual([]);
    expect(existsSync(join(dir, 'a.png'))).toBe(true);
  });
});
