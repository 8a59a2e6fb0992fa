import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createProgram } from './program';
import { writeSyntheticPairs } from './synthetic';
import { runCli, tinyDdpm } from './test-utils';

const root = mkdtempSync(join(tmpdir(), 'dif-train-cli-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const cli = (args: string[]) => runCli(args);

describe('dif-train CLI', () => {
  it('has the ddpm, head, export, sample and import-torch subcommands', () => {
    expect(createProgram().commands.map((c) => c.name())).toEqual([
      'ddpm',
      'head',
      'export',
      'sample',
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

  it('rejects an unknown backend as a usage error, exit code 2', async () => {
    const r = await cli(['ddpm', '-o', join(root, 'run3'), '--backend', 'metal']);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/--backend <name>' argument 'metal' is invalid/);
  });
});

describe('dif-train --version', () => {
  it('prints the package version and exits 0', async () => {
    const { version } = JSON.parse(
      (await import('node:fs')).readFileSync(join(__dirname, '..', 'package.json'), 'utf8'),
    );
    for (const flag of ['--version', '-V']) {
      const r = await runCli([flag]);
      expect(r.code).toBe(0);
      expect(r.out.trim()).toBe(version);
    }
  });
});

describe('dif-train help and pipes', () => {
  it('dif-train help export prints the export help, exit 0', async () => {
    const r = await cli(['help', 'export']);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^Usage: dif-train export \[options\]/);
    expect(r.out).toBe((await cli(['export', '--help'])).out);
  });

  it('a reader that closes the pipe early (| head) is not an error: no EPIPE stack trace', async () => {
    const { spawn } = await import('node:child_process');
    const { existsSync } = await import('node:fs');
    const cliJs = new URL('../dist/cli.js', import.meta.url).pathname;
    if (!existsSync(cliJs)) return void console.warn('[skip] dist/cli.js not built');
    const child = spawn(process.execPath, [cliJs, 'help', 'ddpm'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout.destroy(); // the reader is gone before anything is written
    let stderr = '';
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    const code = await new Promise((res) => child.on('close', res));
    expect(stderr).not.toMatch(/EPIPE|Unhandled/);
    expect(code).toBe(0);
  });
});

describe('dif-train -q and examples', () => {
  it('the top-level help has examples: the ddpm -> head -> export -> dif-fuse path, sample, -q', async () => {
    const r = await cli(['--help']);
    expect(r.code).toBe(0);
    expect(r.out).toContain('Examples:');
    for (const line of [
      /dif-train ddpm --data \S+ -o runs\/ddpm/,
      /dif-train head --ddpm runs\/ddpm/,
      /dif-train export --ddpm runs\/ddpm --head runs\/head -o models\/mine/,
      /dif-fuse --ir .* --model models\/mine/,
      /dif-train sample --ddpm runs\/ddpm/,
      /dif-train ddpm .* -q /,
    ])
      expect(r.out).toMatch(line);
  });

  it('every subcommand takes -q, --quiet (as dif-fuse -q)', async () => {
    for (const c of ['ddpm', 'head', 'export', 'sample', 'import-torch']) {
      const r = await cli([c, '--help']);
      expect(r.out, c).toMatch(/-q, --quiet +no progress bar/);
    }
  });

  it('ddpm -q writes nothing on stderr and trains as without it; sample -q too', async () => {
    const data = await writeSyntheticPairs(join(root, 'q-data'), {
      count: 2,
      width: 20,
      height: 20,
    });
    const config = join(root, 'tiny.json');
    writeFileSync(config, JSON.stringify(tinyDdpm({ dropout: 0, iters: 2 })));
    const base = ['ddpm', '-c', config, '--data', data, '--backend', 'wasm', '--workers', '1'];
    const loud = await cli([...base, '-o', join(root, 'q-loud')]);
    expect(loud.code, loud.err).toBe(0);
    expect(loud.err).toMatch(/done: step 2/);
    const quiet = await cli([...base, '-o', join(root, 'q-quiet'), '-q']);
    expect(quiet.code, quiet.err).toBe(0);
    expect(quiet.err).toBe('');
    expect(existsSync(join(root, 'q-quiet', 'checkpoints'))).toBe(true);
    const grid = join(root, 'q-grid.png');
    const sample = ['sample', '--ddpm', join(root, 'q-quiet'), '-n', '1', '--steps', '2'];
    const ex = await cli([...sample, '-o', grid, '-q']);
    expect(ex.code, ex.err).toBe(0);
    expect(ex.err + ex.out).toBe('');
    expect(existsSync(grid)).toBe(true);
    expect((await cli([...sample, '-o', join(root, 'q-grid2.png')])).err).toMatch(/wrote /);
  }, 120_000);
});
