import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { createProgram } from './program';

const root = mkdtempSync(join(tmpdir(), 'dif-train-cli-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** Run `dif-train ...args` in-process; returns the exit code and stderr. */
async function cli(args: string[]): Promise<{ code: number; err: string }> {
  const program = createProgram().exitOverride();
  for (const c of program.commands) c.exitOverride();
  let err = '';
  const spy = vi.spyOn(process.stderr, 'write').mockImplementation((s) => {
    err += String(s);
    return true;
  });
  const before = process.exitCode;
  process.exitCode = 0;
  let code = 0;
  try {
    await program.parseAsync(['node', 'dif-train', ...args]);
    code = Number(process.exitCode ?? 0);
  } catch (e) {
    code = (e as { exitCode?: number }).exitCode ?? 1;
  } finally {
    spy.mockRestore();
    process.exitCode = before;
  }
  return { code, err };
}

describe('dif-train CLI', () => {
  it('has the ddpm, head, export and import-torch subcommands', () => {
    expect(createProgram().commands.map((c) => c.name())).toEqual([
      'ddpm',
      'head',
      'export',
      'import-torch',
    ]);
  });

  it('a missing data folder is one line, exit code 1', async () => {
    const r = await cli([
      'ddpm',
      '--data',
      join(root, 'missing'),
      '-o',
      join(root, 'run'),
      '--iters',
      '1',
    ]);
    expect(r.code).toBe(1);
    const errors = r.err.split('\n').filter((l) => l.startsWith('error: '));
    expect(errors).toEqual([`error: ${join(root, 'missing')}: no such folder`]);
  });

  it('a bad config file is one line', async () => {
    const r = await cli(['ddpm', '-c', join(root, 'none.json'), '-o', join(root, 'run2')]);
    expect(r.code).toBe(1);
    expect(r.err.trim().split('\n').at(-1)).toBe(
      `error: cannot read config file ${join(root, 'none.json')}`,
    );
  });

  it('rejects an unknown backend', async () => {
    const r = await cli(['ddpm', '-o', join(root, 'run3'), '--backend', 'metal']);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/--backend <name>' argument 'metal' is invalid/);
  });
});
