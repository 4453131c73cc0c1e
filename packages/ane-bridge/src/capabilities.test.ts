import { describe, expect, it } from 'vitest';
import { describeCapabilities } from './capabilities';
import type { NativeAddon, NativeCapabilities, NativeLoadResult } from './native/loader';

const noNative: NativeLoadResult = {
  implementation: 'ts',
  addon: null,
  reason: 'never built',
  fix: 'rebuild',
};

function withNative(aneFramework: NativeCapabilities['aneFramework']): NativeLoadResult {
  const addon: NativeAddon = {
    abiVersion: 1,
    capabilities: () => ({
      simdLevel: 'neon',
      cpu: { avx2: false, fma: false, f16c: false, avx512f: false, neon: true },
      aneFramework,
    }),
  };
  return { implementation: 'native', addon, path: '/x/ane_bridge.node', reason: 'loaded the package build' };
}

const mac = { platform: 'darwin' as const, arch: 'arm64', nodeVersion: 'v20.19.0' };

describe('describeCapabilities', () => {
  it('sends Linux users to the simulator', () => {
    const report = describeCapabilities(
      { platform: 'linux', arch: 'x64', nodeVersion: 'v20.19.0' },
      noNative,
    );
    expect(report.ane.status).toBe('unavailable');
    expect(report.ane.reason).toContain('linux/x64');
    expect(report.ane.fix).toContain("backend: 'sim'");
    expect(report.hostKernels).toEqual({ implementation: 'ts', reason: 'never built', fix: 'rebuild' });
    expect(report.simd.level).toBe('none');
  });

  it('tells x64 Node on a Mac to install arm64 Node', () => {
    const report = describeCapabilities({ ...mac, arch: 'x64' }, noNative);
    expect(report.ane.reason).toContain('Rosetta');
  });

  it('on Apple silicon without the addon, points at the addon fix', () => {
    const report = describeCapabilities(mac, noNative);
    expect(report.ane.reason).toContain('native addon is not loaded');
    expect(report.ane.fix).toBe('rebuild');
  });

  it('reports the framework probe and the SIMD level from the addon', () => {
    const missing = describeCapabilities(
      mac,
      withNative({ loaded: false, classesFound: false, detail: 'dlopen failed' }),
    );
    expect(missing.ane.reason).toContain('dlopen failed');
    expect(missing.simd.level).toBe('neon');
    expect(missing.hostKernels.addonPath).toBe('/x/ane_bridge.node');
    const present = describeCapabilities(mac, withNative({ loaded: true, classesFound: true, detail: 'ok' }));
    // This version has no ANE device backend: it must not claim the ANE is available.
    expect(present.ane.status).toBe('unavailable');
    expect(present.ane.reason).toContain('no ANE device backend yet');
  });
});
