import { spawnSync } from 'node:child_process';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadNativeAddon } from '../src/native/loader';

const hasNativeAddon = loadNativeAddon().implementation === 'native';
const ane = resolve(import.meta.dirname, '..', 'bin', 'ane.mjs');

function run(args: string[], env: Record<string, string> = {}) {
  return spawnSync(process.execPath, [ane, ...args], { encoding: 'utf8', env: { ...process.env, ...env } });
}

describe('ane CLI', () => {
  it('doctor explains the TS fallback and how to get native code back', () => {
    const result = run(['doctor'], { ANE_BRIDGE_FORCE_TS: '1' });
    expect(result.status).toBe(0);
    expect(result.stdout).toContain('TypeScript fallbacks');
    expect(result.stdout).toContain('fix: unset ANE_BRIDGE_FORCE_TS');
    expect(result.stdout).toContain('Neural Engine');
  });

  it.skipIf(!hasNativeAddon)('doctor reports the native thread pool size (skipped without the addon)', () => {
    const result = run(['doctor'], { ANE_BRIDGE_THREADS: '1' });
    expect(result.stdout).toContain('native addon, 1 thread');
  });

  it('doctor --json prints the capabilities object', () => {
    const result = run(['doctor', '--json']);
    expect(result.status).toBe(0);
    const report = JSON.parse(result.stdout);
    expect(report.platform).toBe(process.platform);
    expect(['native', 'ts']).toContain(report.hostKernels.implementation);
    expect(['available', 'unavailable']).toContain(report.ane.status);
  });

  it('rejects an unknown command with usage and exit code 2', () => {
    const result = run(['frobnicate']);
    expect(result.status).toBe(2);
    expect(result.stderr).toContain("unknown command 'frobnicate'");
    expect(result.stderr).toContain('Usage: ane');
  });

  it('prints its version', () => {
    expect(run(['--version']).stdout.trim()).toMatch(/^\d+\.\d+\.\d+/);
  });
});
