import { existsSync } from 'node:fs';
import { defineConfig } from 'tsup';

// worker.js is loaded by path (worker_threads); commands/import-torch.js by URL when present.
const entry: Record<string, string> = {
  index: 'src/index.ts',
  cli: 'src/cli.ts',
  worker: 'src/worker.ts',
  bench: 'src/bench.ts',
};
if (existsSync('src/commands/import-torch.ts'))
  entry['commands/import-torch'] = 'src/commands/import-torch.ts';

export default defineConfig({
  entry,
  format: ['esm'],
  dts: { entry: { index: 'src/index.ts' } },
  sourcemap: true,
  clean: true,
  target: 'node20',
});
