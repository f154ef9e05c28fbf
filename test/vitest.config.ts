import { defineConfig } from 'vitest/config';

// Tests start real daemons and real FUSE mounts: one file at a time (two cores), long time-outs.
export default defineConfig({
  test: {
    root: new URL('..', import.meta.url).pathname,
    include: ['test/**/*.test.ts'],
    fileParallelism: false,
    testTimeout: 180_000,
    hookTimeout: 60_000,
    reporters: ['default'],
  },
});
