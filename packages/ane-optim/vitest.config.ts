import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';
import { sharedTestOptions } from '../../vitest.shared';

export default defineConfig({
  resolve: {
    // Tests run against ane-bridge's (and ane-ir's) source so a kernel change needs no rebuild; the
    // exports and README tests check the built packages separately.
    alias: {
      'ane-bridge': fileURLToPath(new URL('../ane-bridge/src/index.ts', import.meta.url)),
      'ane-ir/mil': fileURLToPath(new URL('../ane-ir/src/mil/index.ts', import.meta.url)),
    },
  },
  test: sharedTestOptions,
});
