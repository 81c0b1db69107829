import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    disableConsoleIntercept: true,
    testTimeout: 60_000,
    hookTimeout: 120_000,
    include: ['test/**/*.test.ts'],
    // The end-to-end lab owns network namespaces and containers: its files run one at a time.
    fileParallelism: false,
    pool: 'forks',
  },
});
