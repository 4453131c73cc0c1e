import { defineConfig } from 'vitest/config';
import { sharedTestOptions } from '../../vitest.shared';

export default defineConfig({
  test: {
    ...sharedTestOptions,
    // Every simulator op runs natively and as its TS twin, and the two must agree bit for bit.
    env: { ANE_BRIDGE_SIM_OPS: 'compare' },
  },
});
