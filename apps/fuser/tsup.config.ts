import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync } from 'node:fs';
import { build } from 'esbuild';
import { defineConfig } from 'tsup';

/**
 * The `dif-fuse serve` page, into dist/public: its script bundled for browsers, its HTML, CSS
 * and icon copied, and the sample pair drawn by scripts/make-sample-pair.mjs (a synthetic
 * scene, no dataset image).
 */
async function buildPage(): Promise<void> {
  const out = 'dist/public';
  mkdirSync(out, { recursive: true });
  await build({
    entryPoints: ['src/serve/page/main.ts'],
    outfile: `${out}/app.js`,
    bundle: true,
    minify: true,
    format: 'iife',
    platform: 'browser',
    target: ['chrome110', 'firefox110', 'safari16'],
    logLevel: 'warning',
  });
  for (const f of ['index.html', 'style.css', 'favicon.svg'])
    copyFileSync(`src/serve/page/${f}`, `${out}/${f}`);
  const script = '../../scripts/make-sample-pair.mjs';
  if (existsSync(script))
    execFileSync(process.execPath, [script, `${out}/samples`, '--width', '320', '--height', '240']);
}

export default defineConfig({
  // index: the programmatic API; cli: the `dif-fuse` bin (tsup keeps its shebang and makes it executable).
  // queue-processor: the sandboxed processor `dif-fuse worker` forks (BullMQ loads it by path).
  entry: {
    index: 'src/index.ts',
    queue: 'src/queue/index.ts',
    cli: 'src/cli.ts',
    'queue-processor': 'src/queue/processor.ts',
  },
  format: ['esm'],
  dts: { entry: { index: 'src/index.ts', queue: 'src/queue/index.ts' } },
  sourcemap: true,
  clean: true,
  target: 'node20',
  onSuccess: buildPage,
});
