import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Conv2d, GroupNorm, initParam, Linear } from './index';

const root = join(import.meta.dirname, '..');

describe('@dif-fusion/nn is the spec: no backend', () => {
  it('declares no TensorFlow.js or ONNX Runtime dependency', () => {
    const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
    const deps = Object.keys({ ...pkg.dependencies, ...pkg.peerDependencies });
    expect(deps.filter((d) => /tensorflow|onnxruntime|protobufjs/.test(d))).toEqual([]);
  });

  it('imports no backend in its sources', () => {
    for (const f of readdirSync(join(root, 'src'))) {
      if (!f.endsWith('.ts') || f.endsWith('.test.ts')) continue;
      const text = readFileSync(join(root, 'src', f), 'utf8');
      expect(text, f).not.toMatch(/from '@tensorflow|from 'onnxruntime|from 'protobufjs/);
    }
  });

  it('layers name their parameters by official key and initialise them from a seed', () => {
    const specs = [
      ...new Conv2d('c', 3, 8, 3, { padding: 1 }).params(),
      ...new GroupNorm('g', 4, 8).params(),
      ...new Linear('l', 8, 2).params(),
    ];
    expect(specs.map((s) => `${s.name}:${s.shape.join('x')}`)).toEqual([
      'c.weight:8x3x3x3',
      'c.bias:8',
      'g.weight:8',
      'g.bias:8',
      'l.weight:2x8',
      'l.bias:2',
    ]);
    expect(initParam(specs[0], 7)).toEqual(initParam(specs[0], 7));
  });
});

/**
 * The README's "Architecture": the workspace packages in layer order. A package's production
 * dependencies are only packages before it (optional peers of a `/tfjs` subpath aside).
 */
const LAYERS = [
  'schedules',
  'nn',
  'unet',
  'fusion-head',
  'diffusion',
  'tfjs',
  'onnx',
  'export',
  'train',
  'io',
  'metrics',
  'charts',
  'torch-import',
  'cli-kit',
  'trainer',
  'fuser',
];

describe('the one direction of dependencies', () => {
  it('every workspace package is placed, and depends only on packages above it', () => {
    const repo = join(root, '../..');
    const dirs = ['packages', 'apps'].flatMap((d) =>
      readdirSync(join(repo, d))
        .map((n) => join(repo, d, n))
        .filter((dir) => existsSync(join(dir, 'package.json'))),
    );
    const wrong: string[] = [];
    for (const dir of dirs) {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
      const name = pkg.name.replace('@dif-fusion/', '');
      const at = LAYERS.indexOf(name);
      if (at < 0) wrong.push(`${name}: not in LAYERS (and the README's Architecture)`);
      for (const dep of Object.keys(pkg.dependencies ?? {})) {
        if (!dep.startsWith('@dif-fusion/')) continue;
        const d = dep.replace('@dif-fusion/', '');
        if (!(LAYERS.indexOf(d) < at)) wrong.push(`${name} -> ${d}`);
      }
    }
    expect(wrong).toEqual([]);
  });
});
