import { copyFileSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative as relativePath } from 'node:path';
import { describe, expect, it } from 'vitest';
import { findPrebuild, loadNativeAddon, NATIVE_ABI_VERSION, nativeLoadOptionsFromEnv } from './loader';
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

  it('explains a build that never ran (scripts disabled) with the npm fix first, then the pnpm one', () => {
    const result = loadNativeAddon({ packageRoot: fakePackageRoot() });
    expect(result.implementation).toBe('ts');
    expect(result.reason).toContain('no prebuilt binary');
    expect(result.reason).toContain('did not run');
    if (result.implementation === 'ts') {
      const npm = result.fix.indexOf('npm rebuild ane-bridge');
      expect(npm).toBeGreaterThanOrEqual(0);
      expect(result.fix).toContain('npm approve-scripts ane-bridge');
      expect(result.fix.indexOf('pnpm rebuild ane-bridge')).toBeGreaterThan(npm);
      expect(result.fix).toContain('onlyBuiltDependencies');
    }
  });

  it('explains a failed build with the toolchain fix', () => {
    const root = fakePackageRoot({ status: 'failed', reason: 'node-gyp exited with 1' });
    const result = loadNativeAddon({ packageRoot: root });
    expect(result.reason).toBe('the native build failed during install: node-gyp exited with 1');
    if (result.implementation === 'ts') expect(result.fix).toMatch(/toolchain|xcode-select/);
  });

  it("shows the compiler's error line from the install report, and why the prebuild was not used", () => {
    const root = fakePackageRoot({
      status: 'failed',
      reason: 'node-gyp exited with 1',
      error: "../native/kernels/gemm.cc:12:3: error: 'foo' was not declared in this scope",
      prebuild: 'no prebuilt binary for linux-s390x in prebuilds/',
    });
    const result = loadNativeAddon({ packageRoot: root });
    expect(result.reason).toBe(
      "the native build failed during install: node-gyp exited with 1; the compiler said: ../native/kernels/gemm.cc:12:3: error: 'foo' was not declared in this scope (the prebuilt binary was not used: no prebuilt binary for linux-s390x in prebuilds/)",
    );
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
    const relative = loadNativeAddon({ nativePath: relativePath(process.cwd(), good) });
    expect(relative.implementation === 'native' && relative.path).toBe(good);
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

  it('reports an override that is not an addon as exactly what it is', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ane-bridge-override-'));
    const text = join(dir, 'notes.node');
    writeFileSync(text, 'hello, this is not a shared library\n');
    const textResult = loadNativeAddon({ nativePath: text });
    expect(textResult.implementation).toBe('ts');
    expect(textResult.reason).toBe(
      `ANE_BRIDGE_NATIVE_PATH=${text} is not a native addon: it is a text file (it begins "hello, this is not a sha")`,
    );
    expect(textResult.reason).not.toMatch(/ABI|stale|another Node/);

    const empty = join(dir, 'empty.node');
    writeFileSync(empty, '');
    expect(loadNativeAddon({ nativePath: empty }).reason).toContain('is empty, not a native addon');

    const directory = join(dir, 'checkout');
    mkdirSync(join(directory, 'build', 'Release'), { recursive: true });
    writeFileSync(join(directory, 'build', 'Release', 'ane_bridge.node'), '');
    const dirResult = loadNativeAddon({ nativePath: directory });
    expect(dirResult.reason).toBe(`ANE_BRIDGE_NATIVE_PATH=${directory} is a directory, not an addon file`);
    if (dirResult.implementation === 'ts') {
      expect(dirResult.fix).toBe(
        `point ANE_BRIDGE_NATIVE_PATH at the file inside: ${join(directory, 'build', 'Release', 'ane_bridge.node')}`,
      );
    }

    const missing = loadNativeAddon({ nativePath: join(dir, 'gone.node') });
    expect(missing.reason).toBe(`ANE_BRIDGE_NATIVE_PATH=${join(dir, 'gone.node')} does not exist`);

    const notOurs = loadNativeAddon({ nativePath: fakeAddonFile('module.exports = { hello: 1 };') });
    expect(notOurs.reason).toContain('is not an ane-bridge addon (it exports no abiVersion)');
  });

  it('reports an ELF binary for another architecture as that, before loading it', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ane-bridge-elf-'));
    const file = join(dir, 'other.node');
    // A minimal ELF64 little-endian header for s390x (machine 22): no Node this test runs on is s390x.
    const header = Buffer.alloc(64);
    header.writeUInt32BE(0x7f454c46, 0);
    header[4] = 2;
    header[5] = 1;
    header.writeUInt16LE(22, 18);
    writeFileSync(file, header);
    const result = loadNativeAddon({ nativePath: file });
    expect(result.implementation).toBe('ts');
    if (process.platform === 'linux') {
      expect(result.reason).toBe(
        `ANE_BRIDGE_NATIVE_PATH=${file} is a binary for s390x; this Node is linux-${process.arch}`,
      );
    } else {
      expect(result.reason).toContain('Linux (ELF) binary');
    }
  });

  it('finds this package from its source directory', () => {
    expect(findPackageRoot()).toMatch(/ane-bridge$/);
  });
});

// The committed prebuild for this machine (linux-x64 / linux-arm64), copied into fake package roots.
const realPrebuild = findPrebuild(findPackageRoot());

describe.skipIf(realPrebuild === undefined)(
  `loadNativeAddon order (needs prebuilds/ for ${process.platform}-${process.arch}: skipped where none is committed)`,
  () => {
    /** A package root with a prebuild and, optionally, a local build (copies of the real binary). */
    function rootWith(options: { localBuild?: 'good' | 'text' }): {
      root: string;
      prebuild: string;
      local: string;
    } {
      const root = fakePackageRoot();
      const prebuild = join(
        root,
        'prebuilds',
        `${process.platform}-${process.arch}`,
        'ane-bridge.napi.glibc.node',
      );
      mkdirSync(dirname(prebuild), { recursive: true });
      copyFileSync(realPrebuild as string, prebuild);
      const local = join(root, 'build', 'Release', 'ane_bridge.node');
      if (options.localBuild) {
        mkdirSync(dirname(local), { recursive: true });
        if (options.localBuild === 'good') copyFileSync(realPrebuild as string, local);
        else writeFileSync(local, 'not a binary');
      }
      return { root, prebuild, local };
    }

    it('finds the prebuild by node-gyp-build naming', () => {
      const { root, prebuild } = rootWith({});
      expect(findPrebuild(root)).toBe(prebuild);
      expect(findPrebuild(root, 'darwin', 'arm64')).toBeUndefined();
    });

    it('loads the prebuild when there is no local build', () => {
      const { root, prebuild } = rootWith({});
      const result = loadNativeAddon({ packageRoot: root });
      expect(result.implementation).toBe('native');
      if (result.implementation === 'native') {
        expect(result.kind).toBe('prebuilt');
        expect(result.path).toBe(prebuild);
        expect(result.addon.abiVersion).toBe(NATIVE_ABI_VERSION);
      }
    });

    it('prefers a local build from source over the prebuild', () => {
      const { root, local } = rootWith({ localBuild: 'good' });
      const result = loadNativeAddon({ packageRoot: root });
      expect(result.implementation === 'native' && [result.kind, result.path]).toEqual(['source', local]);
    });

    it('falls back to the prebuild when the local build is unusable, and says why', () => {
      const { root, prebuild, local } = rootWith({ localBuild: 'text' });
      const result = loadNativeAddon({ packageRoot: root });
      expect(result.implementation === 'native' && [result.kind, result.path]).toEqual([
        'prebuilt',
        prebuild,
      ]);
      expect(result.reason).toContain(`the local build ${local} is not a native addon`);
    });

    it('loading the prebuild, still says that a build from source failed at install', () => {
      const { root } = rootWith({});
      mkdirSync(join(root, 'build'));
      writeFileSync(
        join(root, 'build', 'ane-bridge-install.json'),
        JSON.stringify({
          status: 'failed',
          reason: 'node-gyp exited with 1',
          error: 'a.cc:1:1: error: boom',
        }),
      );
      const result = loadNativeAddon({ packageRoot: root });
      expect(result.implementation === 'native' && result.kind).toBe('prebuilt');
      expect(result.reason).toBe(
        'loaded the prebuilt binary (prebuilds/, nothing was compiled); the build from source failed during install: node-gyp exited with 1; the compiler said: a.cc:1:1: error: boom',
      );
    });

    it('ANE_BRIDGE_NATIVE_PATH wins over both, and a broken one is not replaced by another binary', () => {
      const { root, prebuild } = rootWith({ localBuild: 'good' });
      const override = loadNativeAddon({ packageRoot: root, nativePath: prebuild });
      expect(override.implementation === 'native' && override.kind).toBe('override');
      const broken = loadNativeAddon({ packageRoot: root, nativePath: join(root, 'nope.node') });
      expect(broken.implementation).toBe('ts');
    });
  },
);
