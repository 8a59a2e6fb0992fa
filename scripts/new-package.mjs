#!/usr/bin/env node
// Scaffolds a workspace package: node scripts/new-package.mjs packages/<name> "<description>" [dep ...]
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';

const [dir, description = '', ...deps] = process.argv.slice(2);
if (!dir) {
  console.error('usage: new-package.mjs <dir> <description> [deps...]');
  process.exit(1);
}
const name = `@dif-fusion/${basename(dir)}`;
const isApp = dir.startsWith('apps/');
mkdirSync(join(dir, 'src'), { recursive: true });
const dependencies = Object.fromEntries(
  deps.map((d) => (d.startsWith('@dif-fusion/') ? [d, 'workspace:*'] : d.split('=')).map(String)),
);
const pkg = {
  name,
  version: '0.1.0',
  description,
  license: 'MIT',
  type: 'module',
  sideEffects: false,
  engines: { node: '>=20.9' },
  exports: {
    '.': {
      types: './dist/index.d.ts',
      source: './src/index.ts',
      import: './dist/index.js',
      default: './dist/index.js',
    },
    './package.json': './package.json',
  },
  main: './dist/index.js',
  types: './dist/index.d.ts',
  files: ['dist', 'README.md'],
  scripts: {
    build: 'tsup',
    test: 'vitest run',
    typecheck: 'tsc -p tsconfig.json',
  },
  dependencies,
  publishConfig: { access: 'public' },
  repository: { type: 'git', url: 'https://github.com/dif-fusion/dif-fusion', directory: dir },
};
if (isApp) pkg.bin = {};
if (!existsSync(join(dir, 'package.json')))
  writeFileSync(join(dir, 'package.json'), `${JSON.stringify(pkg, null, 2)}\n`);
writeFileSync(
  join(dir, 'tsconfig.json'),
  `${JSON.stringify({ extends: '../../tsconfig.base.json', include: ['src'] }, null, 2)}\n`,
);
writeFileSync(
  join(dir, 'tsup.config.ts'),
  `import { defineConfig } from 'tsup';

export default defineConfig({
  entry: ['src/index.ts'],
  format: ['esm'],
  dts: true,
  sourcemap: true,
  clean: true,
  target: 'node20',
});
`,
);
writeFileSync(
  join(dir, 'vitest.config.ts'),
  `import shared from '../../vitest.shared';

export default shared;
`,
);
if (!existsSync(join(dir, 'src/index.ts')))
  writeFileSync(join(dir, 'src/index.ts'), 'export {};\n');
if (!existsSync(join(dir, 'README.md')))
  writeFileSync(join(dir, 'README.md'), `# ${name}\n\n${description}\n`);
console.log(`scaffolded ${name}`);
