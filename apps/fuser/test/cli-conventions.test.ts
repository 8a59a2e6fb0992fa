/**
 * CLI conventions of the BUILT `dif-fuse`: `-` for stdin/stdout, batch flags
 * (--skip-existing, glob patterns, --recursive) and plain progress lines when stderr is not a
 * terminal.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, statSync, utimesSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';
import { CLI, dif, expectOneLineError, readRgb, tmp, writeTestImage } from './helpers';

/** Runs the built CLI with bytes on stdin; stdout comes back as bytes. */
function difBytes(args: string[], input?: Buffer) {
  const r = spawnSync(process.execPath, [CLI, ...args], {
    input,
    env: { ...process.env, DIF_FUSION_DEBUG: '' },
    timeout: 120_000,
  });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr.toString('utf8') };
}

/** difBytes with stdout as text, for expectOneLineError. */
function textOf(args: string[], input?: Buffer) {
  const r = difBytes(args, input);
  return { ...r, stdout: r.stdout.toString('utf8') };
}

let dir: string;
let ir: string;
let vis: string;

async function makePairs(root: string, names: string[], seed = 1): Promise<void> {
  mkdirSync(join(root, 'ir'), { recursive: true });
  mkdirSync(join(root, 'vi'), { recursive: true });
  for (const [k, n] of names.entries()) {
    await writeTestImage(join(root, 'ir', `${n}.png`), 20 + k, 12, 1, seed + k);
    await writeTestImage(join(root, 'vi', `${n}.png`), 20 + k, 12, 3, seed + 50 + k);
  }
}

beforeAll(async () => {
  dir = tmp('dif-conv-');
  ir = join(dir, 'ir.png');
  vis = join(dir, 'vi.png');
  await writeTestImage(ir, 33, 21, 1, 3);
  await writeTestImage(vis, 33, 21, 3, 4);
});

describe('- for stdin and stdout', () => {
  it('-o - --format png writes the same PNG to stdout as -o FILE, messages on stderr', async () => {
    const ref = join(dir, 'ref.png');
    expect(dif(['--ir', ir, '--vis', vis, '-o', ref, '--method', 'max']).code).toBe(0);
    const r = difBytes(['--ir', ir, '--vis', vis, '-o', '-', '--format', 'png', '--method', 'max']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.subarray(0, 8)).toEqual(Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]));
    const a = await sharp(r.stdout).raw().toBuffer();
    const b = await sharp(ref).raw().toBuffer();
    expect(a.equals(b)).toBe(true);
    expect(r.stderr).toMatch(/fused 1 image .* -> stdout/);
  });

  it('--ir - and --vis - read the image from stdin', async () => {
    const ref = await readRgb(join(dir, 'ref.png'));
    for (const [flag, file, other, otherFile] of [
      ['--ir', ir, '--vis', vis],
      ['--vis', vis, '--ir', ir],
    ]) {
      const out = join(dir, `stdin${flag}.png`);
      const r = difBytes(
        [flag, '-', other, otherFile, '-o', out, '--method', 'max'],
        readFileSync(file),
      );
      expect(r.code, r.stderr).toBe(0);
      expect(Buffer.from((await readRgb(out)).data).equals(Buffer.from(ref.data))).toBe(true);
    }
  });

  it('refuses both inputs on stdin, -o - without --format, and names <stdin> for bad bytes', () => {
    expectOneLineError(
      textOf(['--ir', '-', '--vis', '-', '-o', join(dir, 'x.png')]),
      /cannot both read stdin/,
      expect,
    );
    expectOneLineError(textOf(['--ir', ir, '--vis', vis, '-o', '-']), /--format/, expect);
    expectOneLineError(
      textOf(
        ['--ir', '-', '--vis', vis, '-o', join(dir, 'x.png'), '--method', 'max'],
        Buffer.from('not an image'),
      ),
      /^error: <stdin>: .*(unsupported|unrecognised)/,
      expect,
    );
    expectOneLineError(
      textOf(
        ['--ir', '-', '--vis', vis, '-o', join(dir, 'x.png'), '--method', 'max'],
        Buffer.alloc(0),
      ),
      /^error: <stdin>: empty/,
      expect,
    );
  });

  it('eval --json - writes the JSON summary alone to stdout, the table to stderr', async () => {
    const pairs = join(dir, 'evalpairs');
    await makePairs(pairs, ['a', 'b']);
    const fused = join(dir, 'evalfused', 'max');
    expect(dif(['--pairs', pairs, '-o', fused, '--method', 'max', '-q']).code).toBe(0);
    const r = difBytes(['eval', '--pairs', pairs, '--fused', fused, '--json', '-']);
    expect(r.code, r.stderr).toBe(0);
    const json = JSON.parse(r.stdout.toString('utf8'));
    expect(Object.keys(json)).toEqual(['max']);
    expect(json.max.EN.mean).toBeGreaterThan(0);
    expect(r.stderr).toMatch(/Evaluated 2 fused image/);
    expect(r.stderr).toMatch(/wrote stdout/);
  });
});

describe('batches', () => {
  it('--skip-existing keeps finished outputs and fuses the rest', async () => {
    const pairs = join(dir, 'skip');
    await makePairs(pairs, ['a', 'b', 'c']);
    const out = join(dir, 'skip-out');
    expect(dif(['--pairs', pairs, '-o', out, '--method', 'max', '-q']).code).toBe(0);
    // b.png is "from before the kill": its time stamp must survive the rerun
    const old = new Date('2020-01-01T00:00:00Z');
    utimesSync(join(out, 'a.png'), old, old);
    utimesSync(join(out, 'b.png'), old, old);
    const { rmSync } = await import('node:fs');
    rmSync(join(out, 'c.png'));
    const r = dif(['--pairs', pairs, '-o', out, '--method', 'max', '--skip-existing']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/skipping 2 pairs whose output exists/);
    expect(r.stdout).toMatch(/fused 1 image .*, 2 kept \(--skip-existing\)/);
    expect(statSync(join(out, 'a.png')).mtime.getTime()).toBe(old.getTime());
    expect(existsSync(join(out, 'c.png'))).toBe(true);
  });

  it('--recursive fuses every sub-folder holding ir/ and vi/ into OUTDIR/<sub-folder>/', async () => {
    const root = join(dir, 'tree');
    await makePairs(join(root, 'day'), ['a']);
    await makePairs(join(root, 'night', 'cam2'), ['b', 'c']);
    const out = join(dir, 'tree-out');
    const r = dif(['--pairs', root, '-r', '-o', out, '--method', 'max']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/fused 3 images/);
    for (const f of ['day/a.png', 'night/cam2/b.png', 'night/cam2/c.png'])
      expect(existsSync(join(out, f)), f).toBe(true);
    // without -r the root itself must hold ir/ and vi/
    expectOneLineError(
      dif(['--pairs', root, '-o', out, '--method', 'max']),
      /expected sub-folders ir\/ and vi\//,
      expect,
    );
  });

  it('--pairs takes glob patterns of pair folders (and several folders)', async () => {
    const root = join(dir, 'globbed');
    await makePairs(join(root, 'seq1'), ['a']);
    await makePairs(join(root, 'seq2'), ['a']);
    await makePairs(join(root, 'other'), ['z']);
    const out = join(dir, 'glob-out');
    const r = dif(['--pairs', `${root}/seq*`, '-o', out, '--method', 'max']);
    expect(r.code, r.stderr).toBe(0);
    expect(existsSync(join(out, 'seq1', 'a.png'))).toBe(true);
    expect(existsSync(join(out, 'seq2', 'a.png'))).toBe(true);
    expect(existsSync(join(out, 'other'))).toBe(false);
    // what the shell makes of an unquoted pattern: several folders
    const out2 = join(dir, 'glob-out2');
    const r2 = dif([
      '--pairs',
      join(root, 'seq1'),
      join(root, 'other'),
      '-o',
      out2,
      '--method',
      'max',
    ]);
    expect(r2.code, r2.stderr).toBe(0);
    expect(existsSync(join(out2, 'seq1', 'a.png'))).toBe(true);
    expect(existsSync(join(out2, 'other', 'z.png'))).toBe(true);
    expectOneLineError(
      dif(['--pairs', `${root}/nothing*`, '-o', out, '--method', 'max']),
      /no folder matches this pattern/,
      expect,
    );
  });
});

describe('progress off a terminal', () => {
  it('a batch prints plain done/total lines with rate and ETA on stderr', async () => {
    const pairs = join(dir, 'prog');
    await makePairs(pairs, ['a', 'b', 'c', 'd']);
    const r = dif(['--pairs', pairs, '-o', join(dir, 'prog-out'), '--method', 'max']);
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stderr.split('\n').filter((l) => l.startsWith('fuse '));
    expect(lines.map((l) => l.split(' |')[0])).toEqual([
      'fuse 1/4',
      'fuse 2/4',
      'fuse 3/4',
      'fuse 4/4',
    ]);
    for (const l of lines)
      expect(l).toMatch(/^fuse \d\/4 \| [\d.]+ pairs\/s \| ETA \d+s \| [a-d]$/);
    // -q: none
    const q = dif(['--pairs', pairs, '-o', join(dir, 'prog-out'), '--method', 'max', '-q']);
    expect(q.stderr).toBe('');
  });

  it('eval prints the same style of lines', async () => {
    const pairs = join(dir, 'prog');
    const r = dif(['eval', '--pairs', pairs, '--fused', join(dir, 'prog-out')]);
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stderr.split('\n').filter((l) => l.startsWith('eval '));
    expect(lines.map((l) => l.split(' |')[0])).toEqual([
      'eval 1/4',
      'eval 2/4',
      'eval 3/4',
      'eval 4/4',
    ]);
    expect(lines[3]).toMatch(/^eval 4\/4 \| [\d.]+ images\/s \| ETA 0s \| d$/);
  });
});

describe('help <command>', () => {
  it('dif-fuse help eval prints the eval help (as eval --help), exit 0', () => {
    const r = dif(['help', 'eval']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^Usage: dif-fuse eval \[options\]/);
    expect(r.stdout).toBe(dif(['eval', '--help']).stdout);
    expect(dif(['help']).stdout).toMatch(/help \[command\]/);
  });
});
