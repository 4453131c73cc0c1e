// The install script must build when it can and never fail an install when it cannot.
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadNativeAddon } from '../src/native/loader';

const packageRoot = resolve(import.meta.dirname, '..');

/** A copy of the package's build inputs, so builds here never touch the real build/. */
function packageCopy(): string {
  const dir = mkdtempSync(join(tmpdir(), 'ane-bridge-install-'));
  for (const entry of ['package.json', 'binding.gyp', 'native', 'scripts']) {
    cpSync(join(packageRoot, entry), join(dir, entry), { recursive: true });
  }
  symlinkSync(join(packageRoot, 'node_modules'), join(dir, 'node_modules'));
  return dir;
}

function runInstall(dir: string, env: Record<string, string>) {
  const result = spawnSync(process.execPath, [join(dir, 'scripts', 'install.cjs')], {
    cwd: dir,
    encoding: 'utf8',
    env: { ...process.env, ANE_BRIDGE_SKIP_BUILD: '', ...env },
  });
  const report = JSON.parse(readFileSync(join(dir, 'build', 'ane-bridge-install.json'), 'utf8'));
  return { status: result.status, stdout: result.stdout, report };
}

describe('scripts/install.cjs', () => {
  it('exits 0 and records a skip when ANE_BRIDGE_SKIP_BUILD=1', () => {
    const { status, report } = runInstall(packageCopy(), { ANE_BRIDGE_SKIP_BUILD: '1' });
    expect(status).toBe(0);
    expect(report.status).toBe('skipped');
  });

  it('exits 0 and records why when node-gyp cannot be found', () => {
    const { status, report } = runInstall(packageCopy(), { ANE_BRIDGE_NODE_GYP: '/nonexistent/node-gyp.js' });
    expect(status).toBe(0);
    expect(report.status).toBe('failed');
    expect(report.reason).toContain('node-gyp was not found');
  });

  it('exits 0 and keeps the compiler log when the compiler fails', () => {
    const { status, report, stdout } = runInstall(packageCopy(), { CXX: '/bin/false', CC: '/bin/false' });
    expect(status).toBe(0);
    expect(report.status).toBe('failed');
    expect(report.log).toContain('gyp');
    expect(stdout).toContain('using the TypeScript fallbacks');
  });

  it('builds an addon the loader accepts', () => {
    const dir = packageCopy();
    const { status, report } = runInstall(dir, {});
    expect(status).toBe(0);
    expect(report.status).toBe('built');
    const loaded = loadNativeAddon({ packageRoot: dir });
    expect(loaded.implementation).toBe('native');
    if (loaded.implementation === 'native') {
      expect(['avx512', 'avx2-fma', 'neon', 'scalar']).toContain(loaded.addon.capabilities().simdLevel);
    }
  });
});
