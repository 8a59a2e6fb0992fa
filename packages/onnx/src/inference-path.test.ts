/**
 * The inference path installs and loads no TensorFlow.js, no training and no export code:
 * the production dependency closure of @dif-fusion/onnx and of the fuser (`dif-fuse`) holds
 * no `@tensorflow/*` package, no `@dif-fusion/tfjs`, `@dif-fusion/train` or
 * `@dif-fusion/export`, and the built import graph from their entry points reaches neither
 * those nor a `/tfjs` subpath nor `@dif-fusion/onnx/train`. And the backend knows no network.
 */
import { existsSync, readdirSync, readFileSync, realpathSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const repo = resolve(import.meta.dirname, '../../..');
const onnxDir = join(repo, 'packages/onnx');
const fuserDir = join(repo, 'apps/fuser');

const readPkg = (dir: string) => JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));

/** Node's lookup of a bare package from `dir` (pnpm: symlinks beside the real folder). */
function findPackage(dir: string, name: string): string | null {
  for (let cur = dir; ; cur = dirname(cur)) {
    const candidate =
      basename(cur) === 'node_modules' ? join(cur, name) : join(cur, 'node_modules', name);
    if (existsSync(join(candidate, 'package.json'))) return realpathSync(candidate);
    if (dirname(cur) === cur) return null;
  }
}

/** Every package a production install brings in (dependencies, optional and peer ones). */
function productionClosure(root: string): Set<string> {
  const seen = new Set<string>();
  const queue: string[] = [realpathSync(root)];
  const done = new Set<string>();
  while (queue.length) {
    const dir = queue.pop()!;
    if (done.has(dir)) continue;
    done.add(dir);
    const pkg = readPkg(dir);
    const optionalPeers = new Set(
      Object.entries(pkg.peerDependenciesMeta ?? {})
        .filter(([, m]) => (m as { optional?: boolean }).optional)
        .map(([n]) => n),
    );
    const names = [
      ...Object.keys(pkg.dependencies ?? {}),
      ...Object.keys(pkg.optionalDependencies ?? {}),
      ...Object.keys(pkg.peerDependencies ?? {}).filter((n) => !optionalPeers.has(n)),
    ];
    for (const name of names) {
      seen.add(name);
      const found = findPackage(dir, name);
      if (found) queue.push(found);
      else if (!(name in (pkg.optionalDependencies ?? {})))
        throw new Error(`${pkg.name}: dependency ${name} not installed`);
    }
  }
  return seen;
}

const SPEC = /(?:from|import)\s*\(?\s*["']([^"']+)["']/g;

/** The files and bare specifiers the built ESM graph reaches from `entry` (static and literal dynamic imports). */
function importGraph(entry: string): { files: Set<string>; bare: Set<string> } {
  const files = new Set<string>();
  const bare = new Set<string>();
  const queue = [entry];
  while (queue.length) {
    const file = queue.pop()!;
    if (files.has(file)) continue;
    files.add(file);
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(SPEC)) {
      const spec = m[1];
      if (spec.startsWith('.')) {
        queue.push(resolve(dirname(file), spec));
        continue;
      }
      if (spec.startsWith('node:') || !/^[@a-z]/.test(spec)) continue;
      bare.add(spec);
      const parts = spec.split('/');
      const name = spec.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0];
      if (!name.startsWith('@dif-fusion/')) continue;
      const dir = findPackage(dirname(file), name);
      if (!dir) throw new Error(`${file}: ${spec} not found`);
      const sub = `.${spec.slice(name.length)}`;
      const target = readPkg(dir).exports?.[sub === '.' ? '.' : sub];
      if (!target?.import) throw new Error(`${spec}: no export`);
      queue.push(join(dir, target.import));
    }
  }
  return { files, bare };
}

/** tfjs, the training engines (@dif-fusion/train) and the export (@dif-fusion/export). */
const banned = (name: string) =>
  name.startsWith('@tensorflow/') ||
  name === '@dif-fusion/tfjs' ||
  name === '@dif-fusion/train' ||
  name === '@dif-fusion/export';

/** The networks and their maths: the backend knows none of them. */
const NETWORKS = ['@dif-fusion/unet', '@dif-fusion/diffusion', '@dif-fusion/fusion-head'];

describe('@dif-fusion/onnx knows no network', () => {
  it('its package.json names no network package (dependencies of any kind)', () => {
    const pkg = readPkg(onnxDir);
    const named = ['dependencies', 'devDependencies', 'peerDependencies', 'optionalDependencies']
      .flatMap((k) => Object.keys(pkg[k] ?? {}))
      .filter((n) => NETWORKS.includes(n));
    expect(named).toEqual([]);
  });

  it('its sources (tests included) import no network package', () => {
    const files = (dir: string): string[] =>
      readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
        e.isDirectory()
          ? files(join(dir, e.name))
          : e.name.endsWith('.ts')
            ? [join(dir, e.name)]
            : [],
      );
    const hits = files(join(onnxDir, 'src')).flatMap((f) =>
      [...readFileSync(f, 'utf8').matchAll(SPEC)]
        .map((m) => m[1])
        .filter((s) => NETWORKS.some((n) => s === n || s.startsWith(`${n}/`)))
        .map((s) => `${f.slice(onnxDir.length + 1)}: ${s}`),
    );
    expect(hits).toEqual([]);
  });
});

describe('the inference path', () => {
  for (const [label, dir] of [
    ['@dif-fusion/onnx', onnxDir],
    ['@dif-fusion/fuser (dif-fuse)', fuserDir],
  ] as const) {
    it(`${label}: no tfjs in the production dependency closure`, () => {
      const closure = productionClosure(dir);
      expect(closure.has('onnxruntime-node')).toBe(true);
      expect([...closure].filter(banned)).toEqual([]);
    });
  }

  const entries = [join(onnxDir, 'dist/index.js'), join(fuserDir, 'dist/cli.js')];
  it.skipIf(!entries.every(existsSync))(
    'built import graph (onnx index, dif-fuse cli): no tfjs, no training code',
    () => {
      for (const entry of entries) {
        const { files, bare } = importGraph(entry);
        expect(
          [...bare].filter((s) => banned(s) || s.endsWith('/tfjs')),
          entry,
        ).toEqual([]);
        expect(
          [...bare].filter((s) => s === '@dif-fusion/onnx/train'),
          entry,
        ).toEqual([]);
        expect(
          [...files].filter((f) => f === join(onnxDir, 'dist/train.js')),
          entry,
        ).toEqual([]);
      }
    },
  );
});
