/**
 * What npm users get: every workspace package.json carries the registry metadata and publishes
 * exports that point only at files in its tarball; the fuser tarball (packed for real, with its
 * workspace dependencies) ships the model fusion reads and nothing else of models/default; the
 * shipped config.json names its checkpoints relative to the folder, with hashes.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { REPO, tmp } from './helpers';

const workspaces = ['packages', 'apps'].flatMap((top) =>
  readdirSync(join(REPO, top)).map((d) => `${top}/${d}`),
);
const manifest = (dir: string) => JSON.parse(readFileSync(join(REPO, dir, 'package.json'), 'utf8'));

/** Every file path an exports map points at, and every condition name it uses. */
function exportTargets(e: unknown, conditions: Set<string> = new Set()): string[] {
  if (typeof e === 'string') return [e];
  if (typeof e !== 'object' || e === null) return [];
  return Object.entries(e).flatMap(([k, v]) => {
    if (!k.startsWith('.')) conditions.add(k);
    return exportTargets(v, conditions);
  });
}

describe('package.json metadata', () => {
  it.each(workspaces)('%s: keywords, homepage, bugs, repository as git+https://...git', (dir) => {
    const pkg = manifest(dir);
    expect(pkg.keywords?.length).toBeGreaterThan(2);
    expect(pkg.keywords).toContain('dif-fusion');
    expect(pkg.homepage).toBe(`https://github.com/dif-fusion/dif-fusion/tree/main/${dir}#readme`);
    expect(pkg.bugs).toEqual({ url: 'https://github.com/dif-fusion/dif-fusion/issues' });
    expect(pkg.repository).toEqual({
      type: 'git',
      url: 'git+https://github.com/dif-fusion/dif-fusion.git',
      directory: dir,
    });
    // Published exports: those of the repository without the `source` condition (src/ is
    // not in the tarball), and every target under a `files` entry.
    const conditions = new Set<string>();
    const targets = exportTargets(pkg.publishConfig?.exports, conditions);
    expect(conditions.has('source')).toBe(false);
    expect(targets.length).toBeGreaterThan(0);
    for (const t of targets.filter((t) => t !== './package.json'))
      expect(
        pkg.files.some((f: string) => t.startsWith(`./${f}/`)),
        t,
      ).toBe(true);
    const repoTargets = exportTargets(pkg.exports).filter((t) => !t.startsWith('./src/'));
    expect(targets.sort()).toEqual(repoTargets.sort());
  });
});

describe('the fuser tarball', () => {
  it('ships model.onnx, config.json and the card, not the training checkpoints; no source exports', () => {
    const out = tmp('dif-fuse-pack-');
    onTestFinished(() => rmSync(out, { recursive: true, force: true }));
    execFileSync('pnpm', ['--filter', '@dif-fusion/fuser', 'pack', '--pack-destination', out], {
      cwd: REPO,
      stdio: 'pipe',
    });
    const tgz = join(out, readdirSync(out).find((f) => f.endsWith('.tgz'))!);
    const files = execFileSync('tar', ['-tzf', tgz], { encoding: 'utf8' }).trim().split('\n');
    const models = files.filter((f) => f.startsWith('package/models/')).sort();
    expect(models).toEqual([
      'package/models/default/MODEL_CARD.md',
      'package/models/default/config.json',
      'package/models/default/model.onnx',
    ]);
    const packed = JSON.parse(
      execFileSync('tar', ['-xzOf', tgz, 'package/package.json'], { encoding: 'utf8' }),
    );
    const conditions = new Set<string>();
    for (const t of exportTargets(packed.exports, conditions))
      if (t !== './package.json') expect(files, t).toContain(`package/${t.slice(2)}`);
    expect(conditions.has('source')).toBe(false);
    expect(packed.repository.url).toBe('git+https://github.com/dif-fusion/dif-fusion.git');
  }, 120_000);

  it('the shipped config.json names its checkpoints relative to the folder, with their hashes', () => {
    const dir = join(REPO, 'models', 'default');
    const cfg = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
    const text = JSON.stringify(cfg.provenance);
    expect(text).not.toMatch(/"(\/|[A-Za-z]:\\\\)/); // no absolute path of the build machine
    for (const kind of ['ddpm', 'head']) {
      const file = cfg.provenance[`${kind}_checkpoint`];
      expect(file).toBe(`${kind}.safetensors`);
      const sha = createHash('sha256')
        .update(readFileSync(join(dir, file)))
        .digest('hex');
      expect(cfg.provenance[`${kind}_sha256`]).toBe(sha);
    }
  });
});
