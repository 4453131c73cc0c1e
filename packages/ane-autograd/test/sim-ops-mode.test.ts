import { loadNativeAddon, simOpsMode } from 'ane-bridge';
import { describe, expect, it } from 'vitest';

describe('this suite', () => {
  // vitest.config.ts sets ANE_BRIDGE_SIM_OPS=compare: every simulator op of every test here runs
  // natively and as its TS twin, and a differing bit throws SimOpsMismatchError.
  it('runs the simulator in compare mode when the native addon is loaded', () => {
    const native = loadNativeAddon().addon?.simOps !== undefined;
    expect(simOpsMode()).toBe(native ? 'compare' : 'ts');
  });
});
