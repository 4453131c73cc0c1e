// The install script must build when it can and never fail an install when it cannot.
import { spawnSync } from 'node:child_process';
import {
  appendFileSync,
  chmodSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { findPrebuild, loadNativeAddon } from '../src/native/loader';

const packageRoot = resolve(import.meta.dirname, '..');

/** A copy of the package's build inputs, so builds here never touch the real build/. */
function packageCopy(extra: string[] = []): string {
  const dir = mkdtempSync(join(tmpdir(), 'ane-bridge-install-'));
  for (const entry of ['package.json', 'binding.gyp', 'native', 'scripts', ...extra]) {
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

  // A compile of the whole addon: about 25 s on an idle 2-core machine, far longer beside the
  // other test runs, so only a hang should end it.
  it('builds an addon the loader accepts', { timeout: 600_000 }, () => {
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

  it("records the compiler's first error: line", () => {
    const dir = packageCopy();
    const cxx = join(dir, 'failing-cxx.sh');
    writeFileSync(
      cxx,
      '#!/bin/sh\necho "In file included from ../native/addon.cc:5:" >&2\necho "../native/cpu_features.h:3:10: fatal error: napi.h: No such file or directory" >&2\necho "compilation terminated." >&2\nexit 1\n',
    );
    chmodSync(cxx, 0o755);
    const { status, report, stdout } = runInstall(dir, { CXX: cxx, CC: cxx });
    expect(status).toBe(0);
    expect(report.status).toBe('failed');
    expect(report.error).toBe(
      '../native/cpu_features.h:3:10: fatal error: napi.h: No such file or directory',
    );
    expect(stdout).toContain('fatal error: napi.h');
  });

  it('picks the line that names the problem from a build log', () => {
    const { firstErrorLine } = createRequire(import.meta.url)('../scripts/install.cjs');
    expect(
      firstErrorLine(
        "gyp info ok\nx.cc:1:2: warning: w\nx.cc:9:1: error: expected ';'\ny.cc:1:1: error: later",
      ),
    ).toBe("x.cc:9:1: error: expected ';'");
    expect(firstErrorLine('make: g++: No such file or directory\nmake: *** [a.mk:1: a.o] Error 127')).toBe(
      'make: g++: No such file or directory',
    );
    expect(
      firstErrorLine(
        'gyp info spawn make\nmake: *** [a.mk:1: a.o] Error 1\ngyp ERR! stack Error: make failed',
      ),
    ).toBe('make: *** [a.mk:1: a.o] Error 1');
    expect(
      firstErrorLine(
        'gyp ERR! find Python - "" could not be run\ngyp ERR! configure error\ngyp ERR! stack Error: Could not find any Python installation to use\ngyp ERR! stack at PythonFinder.fail',
      ),
    ).toBe('Could not find any Python installation to use');
    expect(firstErrorLine('gyp info ok')).toBeUndefined();
  });
});

// The committed prebuild for this machine (linux-x64, linux-arm64): the install must use it instead
// of compiling. CXX=/bin/false makes any compile fail, so a 'prebuilt' report proves none ran.
const hasPrebuild = findPrebuild(packageRoot) !== undefined;

describe.skipIf(!hasPrebuild)(
  `scripts/install.cjs with prebuilds/ (skipped: no prebuild committed for ${process.platform}-${process.arch})`,
  () => {
    it('skips the compile when the prebuild loads, and the loader then uses it', () => {
      const dir = packageCopy(['prebuilds']);
      const { status, report, stdout } = runInstall(dir, { CXX: '/bin/false', CC: '/bin/false' });
      expect(status).toBe(0);
      expect(report.status).toBe('prebuilt');
      expect(report.path).toBe(findPrebuild(dir));
      expect(stdout).toContain('using the prebuilt native addon');
      expect(existsSync(join(dir, 'build', 'Release'))).toBe(false);
      const loaded = loadNativeAddon({ packageRoot: dir });
      expect(loaded.implementation === 'native' && loaded.kind).toBe('prebuilt');
    });

    it('compiles instead when the native sources differ from the ones the prebuild was made from', () => {
      const dir = packageCopy(['prebuilds']);
      appendFileSync(join(dir, 'native', 'addon.cc'), '\n// changed\n');
      const { report } = runInstall(dir, { CXX: '/bin/false', CC: '/bin/false' });
      expect(report.status).toBe('failed');
      expect(report.prebuild).toContain('other native sources');
    });

    it('compiles in a source checkout and with ANE_BRIDGE_BUILD_FROM_SOURCE=1', () => {
      const checkout = packageCopy(['prebuilds']);
      mkdirSync(join(checkout, 'src'));
      const inCheckout = runInstall(checkout, { CXX: '/bin/false', CC: '/bin/false' }).report;
      expect(inCheckout.status).toBe('failed');
      expect(inCheckout.prebuild).toContain('source checkout');
      const forced = runInstall(packageCopy(['prebuilds']), {
        CXX: '/bin/false',
        CC: '/bin/false',
        ANE_BRIDGE_BUILD_FROM_SOURCE: '1',
      }).report;
      expect(forced.status).toBe('failed');
      expect(forced.prebuild).toBe('ANE_BRIDGE_BUILD_FROM_SOURCE=1 was set');
    });

    it('compiles when the prebuild does not load here', () => {
      const dir = packageCopy(['prebuilds']);
      writeFileSync(findPrebuild(dir) as string, 'damaged');
      const { report } = runInstall(dir, { CXX: '/bin/false', CC: '/bin/false' });
      expect(report.status).toBe('failed');
      expect(report.prebuild).toContain('does not load here');
    });
  },
);

describe('prebuilds/', () => {
  it('were made from the current native sources (else run `pnpm --filter ane-bridge build:prebuilds`)', () => {
    const { nativeSourceHash } = createRequire(import.meta.url)('../scripts/install.cjs');
    const manifest = JSON.parse(readFileSync(join(packageRoot, 'prebuilds', 'manifest.json'), 'utf8'));
    expect(
      manifest.sourceHash,
      'native/ or binding.gyp changed since the prebuilt binaries were made: run `pnpm --filter ane-bridge build:prebuilds` (needs g++-aarch64-linux-gnu and qemu-user) and commit prebuilds/',
    ).toBe(nativeSourceHash(packageRoot));
    for (const binary of Object.values(manifest.binaries) as { file: string; bytes: number }[]) {
      expect(readFileSync(join(packageRoot, 'prebuilds', binary.file)).length).toBe(binary.bytes);
    }
  });
});
