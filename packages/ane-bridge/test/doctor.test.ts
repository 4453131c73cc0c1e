// `ane doctor` end to end (through dist/, as a user runs it): what it says about a bad environment.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const ane = resolve(import.meta.dirname, '..', 'bin', 'ane.mjs');

function doctor(env: Record<string, string>, json = false) {
  const clean = Object.fromEntries(
    Object.entries(process.env).filter(([name]) => !name.startsWith('ANE_BRIDGE_')),
  );
  return spawnSync(process.execPath, [ane, 'doctor', ...(json ? ['--json'] : [])], {
    encoding: 'utf8',
    env: { ...clean, ...env },
  });
}

describe('ane doctor', () => {
  it('reports a text file in ANE_BRIDGE_NATIVE_PATH as that, not as an ABI or Node-version problem', () => {
    const file = join(mkdtempSync(join(tmpdir(), 'ane-doctor-')), 'ane_bridge.node');
    writeFileSync(file, 'not an addon\n');
    const result = doctor({ ANE_BRIDGE_NATIVE_PATH: file }, true);
    expect(result.status).toBe(0);
    const report = JSON.parse(result.stdout);
    expect(report.hostKernels.implementation).toBe('ts');
    expect(report.hostKernels.reason).toBe(
      `ANE_BRIDGE_NATIVE_PATH=${file} is not a native addon: it is a text file (it begins "not an addon\\n")`,
    );
    expect(report.hostKernels.reason).not.toMatch(/ABI|Node version/);
  });

  it('reports ANE_BRIDGE_* values it ignores and names it does not read', () => {
    const result = doctor({ ANE_BRIDGE_FORCE_TS: 'yes', ANE_BRIDGE_THREDS: '2' });
    expect(result.status).toBe(0);
    expect(result.stdout).toContain(
      'ANE_BRIDGE_FORCE_TS=yes: only 1 (use the TypeScript fallbacks) and 0 are understood, so "yes" is ignored',
    );
    expect(result.stdout).toContain('ANE_BRIDGE_THREDS=2: ane-bridge reads no variable of this name');
    expect(result.stdout).toContain('did you mean ANE_BRIDGE_THREADS?');
  });
});
