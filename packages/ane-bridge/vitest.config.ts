import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';
import { sharedTestOptions } from '../../vitest.shared';

export default defineConfig({
  resolve: {
    // Tests run against ane-ir's source so a change there needs no rebuild; the exports tests
    // check the built packages separately.
    alias: { 'ane-ir/mil': fileURLToPath(new URL('../ane-ir/src/mil/index.ts', import.meta.url)) },
  },
  test: sharedTestOptions,
});
