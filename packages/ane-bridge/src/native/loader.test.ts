import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadNativeAddon, NATIVE_ABI_VERSION, nativeLoadOptionsFromEnv } from './loader';
import { findPackageRoot } from './package-root';

/** A directory shaped like an installed ane-bridge with no build, optionally with an install report. */
function fakePackageRoot(installReport?: object): string {
  const root = mkdtempSync(join(tmpdir(), 'ane-bridge-loader-'));
  writeFileSync(join(root, 'package.json'), JSON.stringify({ name: 'ane-bridge' }));
  if (installReport) {
    mkdirSync(join(root, 'build'));
    writeFileSync(join(root, 'build', 'ane-bridge-install.json'), JSON.stringify(installReport));
  }
  return root;
}

function fakeAddonFile(source: string): string {
  const file = join(mkdtempSync(join(tmpdir(), 'ane-bridge-addon-')), 'addon.cjs');
  writeFileSync(file, source);
  return file;
}

describe('loadNativeAddon', () => {
  it('reads its overrides from the environment', () => {
    expect(nativeLoadOptionsFromEnv({ ANE_BRIDGE_FORCE_TS: '1', ANE_BRIDGE_NATIVE_PATH: '/x.node' })).toEqual(
      {
        forceTs: true,
        nativePath: '/x.node',
      },
    );
    expect(nativeLoadOptionsFromEnv({ ANE_BRIDGE_FORCE_TS: '0' })).toEqual({});
  });

  it('uses the TS fallbacks when forced, and says how to undo it', () => {
    const result = loadNativeAddon({ forceTs: true });
    expect(result.implementation).toBe('ts');
    expect(result.reason).toContain('ANE_BRIDGE_FORCE_TS=1');
    if (result.implementation === 'ts') expect(result.fix).toContain('unset ANE_BRIDGE_FORCE_TS');
  });

  it('explains a build that never ran (scripts disabled) with the pnpm fix', () => {
    const result = loadNativeAddon({ packageRoot: fakePackageRoot() });
    expect(result.implementation).toBe('ts');
    expect(result.reason).toContain('install script did not run');
    if (result.implementation === 'ts') {
      expect(result.fix).toContain('onlyBuiltDependencies');
      expect(result.fix).toContain('pnpm rebuild ane-bridge');
    }
  });

  it('explains a failed build with the toolchain fix', () => {
    const root = fakePackageRoot({ status: 'failed', reason: 'node-gyp exited with 1' });
    const result = loadNativeAddon({ packageRoot: root });
    expect(result.reason).toBe('the native build failed during install: node-gyp exited with 1');
    if (result.implementation === 'ts') expect(result.fix).toMatch(/toolchain|xcode-select/);
  });

  it('explains a skipped build', () => {
    const root = fakePackageRoot({
      status: 'skipped',
      reason: 'ANE_BRIDGE_SKIP_BUILD=1 was set during install',
    });
    const result = loadNativeAddon({ packageRoot: root });
    expect(result.reason).toContain('skipped');
    if (result.implementation === 'ts') expect(result.fix).toContain('unset ANE_BRIDGE_SKIP_BUILD');
  });

  it('loads an override path, and refuses a missing one', () => {
    const good = fakeAddonFile(
      `module.exports = { abiVersion: ${NATIVE_ABI_VERSION}, capabilities: () => ({ simdLevel: 'scalar' }) };`,
    );
    const loaded = loadNativeAddon({ nativePath: good });
    expect(loaded.implementation).toBe('native');
    expect(loaded.reason).toContain('ANE_BRIDGE_NATIVE_PATH');
    const missing = loadNativeAddon({ nativePath: '/nonexistent/ane_bridge.node' });
    expect(missing.implementation).toBe('ts');
    expect(missing.reason).toContain('does not exist');
  });

  it('refuses a stale addon and one that throws on load, without throwing itself', () => {
    const stale = loadNativeAddon({ nativePath: fakeAddonFile('module.exports = { abiVersion: 0 };') });
    expect(stale.implementation).toBe('ts');
    expect(stale.reason).toContain(`ABI 0, this package needs ${NATIVE_ABI_VERSION}`);
    const broken = loadNativeAddon({ nativePath: fakeAddonFile("throw new Error('wrong ELF class');") });
    expect(broken.implementation).toBe('ts');
    expect(broken.reason).toContain('wrong ELF class');
  });

  it('finds this package from its source directory', () => {
    expect(findPackageRoot()).toMatch(/ane-bridge$/);
  });
});
