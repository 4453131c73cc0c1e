import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';
import { sharedTestOptions } from '../../vitest.shared';

const source = (path: string) => fileURLToPath(new URL(path, import.meta.url));

export default defineConfig({
  resolve: {
    // Tests run against the packages' sources, so a change there needs no rebuild. 'ane-ir/mil'
    // comes first: aliases match by prefix.
    alias: [
      { find: /^ane-ir\/mil$/, replacement: source('../../packages/ane-ir/src/mil/index.ts') },
      { find: /^ane-ir$/, replacement: source('../../packages/ane-ir/src/index.ts') },
      { find: /^ane-bridge$/, replacement: source('../../packages/ane-bridge/src/index.ts') },
    ],
  },
  test: {
    ...sharedTestOptions,
    include: ['**/*.test.ts'],
    exclude: ['**/node_modules/**'],
    testTimeout: 120_000,
    // Every simulator op runs natively and as its TS twin, and the two must agree bit for bit.
    env: { ANE_BRIDGE_SIM_OPS: 'compare' },
  },
});
