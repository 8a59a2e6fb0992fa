/**
 * The release dry-run: every changeset parses, and `changeset version` (the step `pnpm
 * version-packages` runs) works on this Node on a temporary copy of the workspace's
 * package.json files, bumping each package a changeset names. @changesets/cli 3 needs Node 22
 * and crashed on the Node >= 20.10 the repository declares; the biome markdown formatter once
 * turned one-package front matter into a heading, which changesets read as "no release".
 */
import { spawnSync } from 'node:child_process';
import {
  cpSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
} from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { REPO, tmp } from './helpers';

const FRONT = /^---\n((?:'@dif-fusion\/[a-z-]+': (?:major|minor|patch)\n)+)---\n\n\S/;
const workspaceDirs = ['packages', 'apps'].flatMap((d) =>
  readdirSync(join(REPO, d))
    .map((n) => join(d, n))
    .filter((p) => existsSync(join(REPO, p, 'package.json'))),
);
const nameOf = (dir: string, root = REPO) =>
  JSON.parse(readFileSync(join(root, dir, 'package.json'), 'utf8')) as {
    name: string;
    version: string;
  };
const changesets = readdirSync(join(REPO, '.changeset')).filter((f) => f.endsWith('.md'));

const work = tmp('dif-release-');
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('release dry-run (changesets)', () => {
  it('every changeset has front matter naming workspace packages and a bump', () => {
    const names = new Set(workspaceDirs.map((d) => nameOf(d).name));
    expect(changesets.length).toBeGreaterThan(0);
    for (const f of changesets) {
      const text = readFileSync(join(REPO, '.changeset', f), 'utf8');
      const m = FRONT.exec(text);
      expect(m, `${f}: front matter`).not.toBeNull();
      for (const line of m![1].trim().split('\n'))
        expect(names, `${f}: ${line}`).toContain(line.split("'")[1]);
    }
  });

  it('changeset version runs on this Node and bumps every package a changeset names', () => {
    for (const f of ['package.json', 'pnpm-workspace.yaml']) cpSync(join(REPO, f), join(work, f));
    cpSync(join(REPO, '.changeset'), join(work, '.changeset'), { recursive: true });
    for (const d of workspaceDirs) {
      mkdirSync(join(work, d), { recursive: true });
      cpSync(join(REPO, d, 'package.json'), join(work, d, 'package.json'));
    }
    symlinkSync(join(REPO, 'node_modules'), join(work, 'node_modules'));
    const named = new Set(
      changesets.flatMap((f) =>
        [...readFileSync(join(REPO, '.changeset', f), 'utf8').matchAll(/^'(@[^']+)':/gm)].map(
          (m) => m[1],
        ),
      ),
    );
    const r = spawnSync(
      process.execPath,
      [join(REPO, 'node_modules', '@changesets', 'cli', 'bin.js'), 'version'],
      { cwd: work, encoding: 'utf8', timeout: 120_000 },
    );
    expect(r.status, `${r.stdout}\n${r.stderr}`).toBe(0);
    expect(readdirSync(join(work, '.changeset')).filter((f) => f.endsWith('.md'))).toEqual([]);
    for (const d of workspaceDirs) {
      const before = nameOf(d);
      const after = nameOf(d, work);
      if (named.has(before.name)) {
        expect(after.version, before.name).not.toBe(before.version);
        expect(readFileSync(join(work, d, 'CHANGELOG.md'), 'utf8')).toContain(
          `## ${after.version}`,
        );
      }
    }
  });
});
