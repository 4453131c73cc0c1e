import { describe, expect, it } from 'vitest';
import type { Capabilities } from '../capabilities';
import { formatDoctorReport } from './doctor';

const base: Capabilities = {
  platform: 'linux',
  arch: 'x64',
  nodeVersion: 'v20.19.0',
  hostKernels: {
    implementation: 'native',
    reason: 'loaded the prebuilt binary (prebuilds/, nothing was compiled)',
    addonPath: '/app/node_modules/ane-bridge/prebuilds/linux-x64/ane-bridge.napi.glibc.node',
    addonKind: 'prebuilt',
    threads: 2,
  },
  simd: { level: 'avx2-fma', reason: 'detected at run time by the native addon' },
  ane: { status: 'unavailable', reason: 'linux', fix: 'use the simulator' },
  environment: [],
};

describe('formatDoctorReport', () => {
  it('says which binary loaded: kind and file', () => {
    const text = formatDoctorReport(base, '1.2.3');
    expect(text).toContain('Host kernels    native addon, 2 threads\n');
    expect(text).toContain(
      '                binary: prebuilt (shipped in prebuilds/; nothing was compiled)\n',
    );
    expect(text).toContain(
      '                file: /app/node_modules/ane-bridge/prebuilds/linux-x64/ane-bridge.napi.glibc.node\n',
    );
    const fromSource = formatDoctorReport(
      { ...base, hostKernels: { ...base.hostKernels, addonKind: 'source' } },
      '1.2.3',
    );
    expect(fromSource).toContain('binary: built from source (build/Release)');
    expect(text).toContain('Environment     no problems with the ANE_BRIDGE_* variables');
  });

  it('lists each environment problem with its fix', () => {
    const text = formatDoctorReport(
      {
        ...base,
        environment: [
          { name: 'ANE_BRIDGE_FORCE_TS', value: 'yes', problem: 'ignored', fix: 'set it to 1' },
          {
            name: 'ANE_BRIDGE_THREDS',
            value: '2',
            problem: 'unknown',
            fix: 'did you mean ANE_BRIDGE_THREADS?',
          },
        ],
      },
      '1.2.3',
    );
    expect(text).toContain(
      'Environment     ANE_BRIDGE_FORCE_TS=yes: ignored\n                  fix: set it to 1\n                ANE_BRIDGE_THREDS=2: unknown\n                  fix: did you mean ANE_BRIDGE_THREADS?\n',
    );
  });
});
