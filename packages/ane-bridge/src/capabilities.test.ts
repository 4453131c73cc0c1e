import { describe, expect, it } from 'vitest';
import type { NativeAne } from './ane/native-ane';
import type { AneProbeVerdict } from './ane/probe';
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
      hostThreads: 3,
      cpu: { avx2: false, fma: false, f16c: false, avx512f: false, neon: true },
      aneFramework,
    }),
  };
  return {
    implementation: 'native',
    addon,
    path: '/x/ane_bridge.node',
    kind: 'source',
    reason: 'loaded the build from source (build/Release)',
  };
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
    expect(missing.hostKernels.threads).toBe(3);
    const present = describeCapabilities(mac, withNative({ loaded: true, classesFound: true, detail: 'ok' }));
    // An addon without the ANE device must not claim the ANE is available.
    expect(present.ane.status).toBe('unavailable');
    expect(present.ane.reason).toContain('built without the ANE device');
  });

  it('says when the install fell back to an addon without the Neural Engine bridge', () => {
    const report = describeCapabilities(mac, withNative(null));
    expect(report.ane.status).toBe('unavailable');
    expect(report.ane.reason).toContain('built without the Neural Engine bridge');
    expect(report.hostKernels.implementation).toBe('native');
  });

  const verdict = (result: AneProbeVerdict['result'], detail: string): AneProbeVerdict => ({
    result,
    detail,
    chip: 'Apple M4 Pro',
    chipFamily: 'M4',
    macos: '15.3.1',
    darwin: '24.3.0',
    addonBuild: '0123456789abcdef',
    probedAt: '2026-11-26T00:00:00.000Z',
    durationMs: 420,
  });

  function withAne(): NativeLoadResult {
    const native = withNative({ loaded: true, classesFound: true, detail: 'ok' });
    if (native.addon) native.addon.ane = {} as NativeAne;
    return native;
  }

  it('on Apple silicon, the ANE is available exactly when the probe passed', () => {
    let probed = 0;
    const passing = describeCapabilities(mac, withAne(), () => {
      probed++;
      return verdict('pass', 'compiled and ran a one-op program (add) with the exact result');
    });
    expect(probed).toBe(1);
    expect(passing.ane.status).toBe('available');
    expect(passing.ane.reason).toContain('passed on Apple M4 Pro, macOS 15.3.1');
    expect(passing.ane.probe?.chipFamily).toBe('M4');

    const crashed = describeCapabilities(mac, withAne(), () =>
      verdict('crash', 'the probe process was killed by SIGSEGV'),
    );
    expect(crashed.ane.status).toBe('unavailable');
    expect(crashed.ane.reason).toContain('crashed on Apple M4 Pro');
    expect(crashed.ane.reason).toContain('SIGSEGV');
    expect(crashed.ane.fix).toContain('npx ane probe');
    expect(crashed.ane.fix).toContain("backend: 'sim'");
  });

  it('never probes off Apple silicon', () => {
    const report = describeCapabilities(
      { platform: 'linux', arch: 'x64', nodeVersion: 'v20.19.0' },
      withAne(),
      () => {
        throw new Error('probed on Linux');
      },
    );
    expect(report.ane.status).toBe('unavailable');
    expect(report.ane.probe).toBeUndefined();
  });

  it('says which binary loaded: its path and kind', () => {
    const report = describeCapabilities(
      { platform: 'linux', arch: 'x64', nodeVersion: 'v20.19.0' },
      withNative(null),
    );
    expect(report.hostKernels.addonPath).toBe('/x/ane_bridge.node');
    expect(report.hostKernels.addonKind).toBe('source');
  });

  it('on a Mac, a prebuilt binary (no Neural Engine bridge) sends the user to the source build', () => {
    const prebuilt = { ...withNative(null), kind: 'prebuilt' } as NativeLoadResult;
    const report = describeCapabilities(mac, prebuilt);
    expect(report.ane.status).toBe('unavailable');
    expect(report.ane.reason).toContain('prebuilt binary');
    expect(report.ane.fix).toContain('ANE_BRIDGE_BUILD_FROM_SOURCE=1 npm rebuild ane-bridge');
  });

  it('reports the ANE_BRIDGE_* variables it would otherwise ignore', () => {
    const report = describeCapabilities(
      { platform: 'linux', arch: 'x64', nodeVersion: 'v20.19.0' },
      noNative,
      undefined,
      [{ name: 'ANE_BRIDGE_FORCE_TS', value: 'yes', problem: 'ignored', fix: 'set it to 1' }],
    );
    expect(report.environment.map((p) => p.name)).toEqual(['ANE_BRIDGE_FORCE_TS']);
    expect(describeCapabilities(mac, noNative, undefined, []).environment).toEqual([]);
  });
});
