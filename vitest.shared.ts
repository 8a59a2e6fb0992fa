import { defineConfig } from 'vitest/config';

/**
 * Shared vitest config: resolve workspace packages to their TypeScript sources
 * (the `source` export condition) so tests never run against stale builds.
 */
export default defineConfig({
  resolve: { conditions: ['source', 'import', 'module', 'node', 'default'] },
  ssr: { resolve: { conditions: ['source', 'import', 'node', 'default'] } },
  test: {
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: 'forks',
  },
});
