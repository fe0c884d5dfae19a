import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['tests/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Model and child-process tests are CPU-heavy; two cores, so two forks.
    pool: 'forks',
    maxWorkers: 2,
  },
});
