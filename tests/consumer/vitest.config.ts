import { defineConfig } from 'vitest/config';
import { sharedTestOptions } from '../../vitest.shared';

export default defineConfig({
  test: {
    ...sharedTestOptions,
    include: ['*.test.ts'],
    // Packing, an npm install and two tsc runs on a shared machine.
    testTimeout: 240_000,
    hookTimeout: 240_000,
  },
});
