#!/usr/bin/env node
// The ANE bridge's native tests, run by ane-bridge's `test` script before vitest:
//   1. the harness (native/ane-test/harness.cc) under AddressSanitizer + UndefinedBehaviorSanitizer;
//   2. a syntax check of the macOS-only code (platform_mac.cc against declaration stubs, addon.cc);
//   3. test/ane/ (vitest) with the fake-platform addon built with AddressSanitizer, in a Node whose
//      LD_PRELOAD holds the ASan runtime (Linux only; elsewhere the plain run in vitest covers it).
// With no C++ compiler it prints why it skipped and succeeds: the TS tests still run;
// ANE_BRIDGE_SKIP_NATIVE_TESTS=1 skips it on purpose.
'use strict';

const { spawnSync } = require('node:child_process');
const path = require('node:path');
const {
  buildFakeAddon,
  buildHarness,
  checkMacPlatformSyntax,
  findAsanRuntime,
  findCompiler,
  packageRoot,
} = require('./build.cjs');

function say(message) {
  process.stdout.write(`ane-bridge native tests: ${message}\n`);
}

async function main() {
  if (process.env.ANE_BRIDGE_SKIP_NATIVE_TESTS === '1') {
    say('SKIPPED on purpose (ANE_BRIDGE_SKIP_NATIVE_TESTS=1)');
    return 0;
  }
  const compiler = findCompiler();
  if (!compiler) {
    say(
      'SKIPPED: no C++ compiler found (install g++ or clang++, or set CXX) — the sanitizer harness did not run',
    );
    return 0;
  }
  say(`building the ANE bridge harness with ${path.basename(compiler)} -fsanitize=address,undefined`);
  const harness = await buildHarness({ compiler, sanitize: true });
  const harnessRun = spawnSync(harness, [], {
    stdio: 'inherit',
    env: {
      ...process.env,
      ASAN_OPTIONS: 'detect_leaks=1:abort_on_error=0:halt_on_error=1',
      UBSAN_OPTIONS: 'print_stacktrace=1:halt_on_error=1',
    },
  });
  if (harnessRun.status !== 0) {
    say(`the harness failed (${harnessRun.status ?? harnessRun.signal})`);
    return 1;
  }

  say(
    'type-checking the macOS-only code (platform_mac.cc against declaration stubs, addon.cc with the ANE exports)',
  );
  await checkMacPlatformSyntax({ compiler });

  const asan = findAsanRuntime(compiler);
  if (!asan) {
    say(
      `ASan vitest run SKIPPED: ${process.platform === 'linux' ? 'the compiler has no libasan.so' : `LD_PRELOAD of the ASan runtime is Linux-only (this is ${process.platform})`}; test/ane runs without ASan in the main vitest run`,
    );
    return 0;
  }
  say('building the fake-platform addon with -fsanitize=address');
  const addon = await buildFakeAddon({ compiler, sanitize: true });
  say('running test/ane under AddressSanitizer (LD_PRELOAD)');
  const vitestPackage = require.resolve('vitest/package.json', { paths: [packageRoot] });
  const vitest = path.join(path.dirname(vitestPackage), require(vitestPackage).bin.vitest);
  const vitestRun = spawnSync(process.execPath, [vitest, 'run', 'test/ane'], {
    cwd: packageRoot,
    stdio: 'inherit',
    env: {
      ...process.env,
      LD_PRELOAD: [asan, process.env.LD_PRELOAD].filter(Boolean).join(' '),
      // Node itself keeps memory until exit by design; leaks of the bridge are checked by the
      // fake's retain counts and the harness's LeakSanitizer run instead.
      ASAN_OPTIONS: 'detect_leaks=0:halt_on_error=1',
      ANE_FAKE_ADDON: addon,
      ANE_FAKE_ADDON_SANITIZED: '1',
    },
  });
  if (vitestRun.status !== 0) {
    say(`test/ane failed under AddressSanitizer (${vitestRun.status ?? vitestRun.signal})`);
    return 1;
  }
  return 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (error) => {
    say(`build failed:\n${error.message}`);
    process.exitCode = 1;
  },
);
