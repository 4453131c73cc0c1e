#!/usr/bin/env node
// The host kernels under AddressSanitizer and UndefinedBehaviorSanitizer, run by ane-bridge's
// `test` script, in two parts:
//   1. native/test/kernels_test.cc, built from the kernel sources without Node: every kernel on
//      every SIMD path this CPU supports, against naive references;
//   2. (Linux) the addon itself built with the sanitizers, and the vitest suites of src/kernels run
//      against it (ANE_BRIDGE_NATIVE_PATH, with the ASan runtime in LD_PRELOAD), which covers the
//      N-API glue and the async path as well;
//   3. with ANE_BRIDGE_TEST_ARM64=1 and an aarch64 cross compiler and qemu-aarch64 installed (not in
//      CI; about a minute), the harness of part 1 built for arm64 and run under qemu, which
//      exercises the NEON paths on an x64 machine.
// Any failed check or sanitizer report fails the run. With no C++ compiler it says so and
// succeeds (the TS tests still run); ANE_BRIDGE_SKIP_NATIVE_TESTS=1 skips it on purpose.
'use strict';

const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const {
  findAsanRuntime,
  findCompiler,
  findNodeHeaders,
  onPath,
} = require('../../scripts/native-toolchain.cjs');

const packageRoot = path.resolve(__dirname, '..', '..');
const native = path.join(packageRoot, 'native');
const outDir = path.join(packageRoot, 'build', 'kernels-test');
const SOURCES = [
  'test/kernels_test.cc',
  'kernels/fp16.cc',
  'kernels/gemm.cc',
  'kernels/optimizers.cc',
  'kernels/rowwise.cc',
  'kernels/sim_ops.cc',
  'kernels/simd.cc',
  'kernels/thread_pool.cc',
  'cpu_features.cc',
];
const SANITIZER_REPORT = /ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:|SUMMARY: \w+Sanitizer/;

function say(message) {
  process.stdout.write(`ane-bridge kernels ASan test: ${message}\n`);
}

function main() {
  if (process.env.ANE_BRIDGE_SKIP_NATIVE_TESTS === '1') {
    say('SKIPPED: ANE_BRIDGE_SKIP_NATIVE_TESTS=1');
    return 0;
  }
  const compiler = findCompiler();
  if (!compiler) {
    say(
      'SKIPPED: no C++ compiler found (install g++ or clang++, or set CXX); the sanitizer run did not happen',
    );
    return 0;
  }
  fs.mkdirSync(outDir, { recursive: true });
  const binary = path.join(outDir, 'kernels_test');
  const flags = [
    '-std=c++17',
    '-O1',
    '-g',
    '-fsanitize=address,undefined',
    '-fno-sanitize-recover=all',
    '-fno-omit-frame-pointer',
    '-fno-math-errno',
    '-ffp-contract=off',
    '-Wall',
    '-Wextra',
    '-pthread',
  ];
  say(`building with ${compiler} ${flags.join(' ')}`);
  const build = spawnSync(compiler, [...flags, '-o', binary, ...SOURCES.map((s) => path.join(native, s))], {
    encoding: 'utf8',
  });
  if (build.status !== 0) {
    process.stdout.write(build.stdout + build.stderr);
    if (
      /fsanitize|libasan|libubsan|asan/i.test(build.stderr) &&
      /cannot find|not found|unsupported/i.test(build.stderr)
    ) {
      say('SKIPPED: this compiler cannot link the sanitizer runtimes (install libasan / compiler-rt)');
      return 0;
    }
    say('FAILED: the harness did not compile');
    return 1;
  }
  const run = spawnSync(binary, [], {
    encoding: 'utf8',
    env: {
      ...process.env,
      ASAN_OPTIONS: 'detect_leaks=1:halt_on_error=1:abort_on_error=0',
      UBSAN_OPTIONS: 'print_stacktrace=1:halt_on_error=1',
    },
    maxBuffer: 64 << 20,
  });
  const output = `${run.stdout ?? ''}${run.stderr ?? ''}`;
  process.stdout.write(output);
  if (run.status !== 0 || SANITIZER_REPORT.test(output)) {
    say(`FAILED (exit ${run.status ?? run.signal})`);
    return 1;
  }
  say('harness passed with no sanitizer reports');
  return runVitestUnderAsan(compiler) || runArm64UnderQemu();
}

function runArm64UnderQemu() {
  if (process.arch === 'arm64') return 0; // part 1 already ran the NEON paths natively
  if (process.env.ANE_BRIDGE_TEST_ARM64 !== '1') {
    say(
      'NEON paths under qemu not run (opt in with ANE_BRIDGE_TEST_ARM64=1; needs g++-aarch64-linux-gnu and qemu-user)',
    );
    return 0;
  }
  const cross = 'aarch64-linux-gnu-g++';
  const sysroot = '/usr/aarch64-linux-gnu';
  if (!onPath(cross) || !onPath('qemu-aarch64') || !fs.existsSync(sysroot)) {
    say(
      `NEON paths under qemu SKIPPED: needs ${cross} and qemu-aarch64 (Debian: g++-aarch64-linux-gnu qemu-user)`,
    );
    return 0;
  }
  const binary = path.join(outDir, 'kernels_test_arm64');
  say(`building the harness for arm64 with ${cross} -fsanitize=address,undefined`);
  const build = spawnSync(
    cross,
    [
      '-std=c++17',
      '-O1',
      '-g',
      '-fsanitize=address,undefined',
      '-fno-sanitize-recover=all',
      '-fno-omit-frame-pointer',
      '-fno-math-errno',
      '-ffp-contract=off',
      '-Wall',
      '-Wextra',
      '-pthread',
      '-o',
      binary,
      ...SOURCES.map((s) => path.join(native, s)),
    ],
    { encoding: 'utf8' },
  );
  if (build.status !== 0) {
    process.stdout.write(build.stdout + build.stderr);
    say('FAILED: the arm64 harness did not compile');
    return 1;
  }
  const run = spawnSync('qemu-aarch64', ['-L', sysroot, binary], {
    encoding: 'utf8',
    // LeakSanitizer does not run under qemu; every other report still halts.
    env: { ...process.env, ASAN_OPTIONS: 'detect_leaks=0:halt_on_error=1', UBSAN_OPTIONS: 'halt_on_error=1' },
    maxBuffer: 64 << 20,
  });
  const output = `${run.stdout ?? ''}${run.stderr ?? ''}`;
  process.stdout.write(output);
  if (run.status !== 0 || SANITIZER_REPORT.test(output) || !/neon, 1 thread/.test(output)) {
    say(`FAILED: the arm64 harness under qemu (exit ${run.status ?? run.signal})`);
    return 1;
  }
  say('NEON paths passed under qemu with no sanitizer reports');
  return 0;
}

function runVitestUnderAsan(compiler) {
  if (process.platform !== 'linux') {
    say(
      `addon under ASan SKIPPED: preloading the ASan runtime into Node is done on Linux only (this is ${process.platform})`,
    );
    return 0;
  }
  const runtime = findAsanRuntime(compiler);
  const headers = findNodeHeaders();
  if (runtime === undefined || headers === undefined) {
    say(
      `addon under ASan SKIPPED: ${headers === undefined ? "Node's headers (node_api.h) were not found" : 'the compiler has no libasan.so'}`,
    );
    return 0;
  }
  const addonApi = String(
    require(require.resolve('node-addon-api', { paths: [packageRoot] })).include_dir,
  ).replace(/"/g, '');
  const addon = path.join(outDir, 'ane_bridge_asan.node');
  const sources = [
    'addon.cc',
    'cpu_features.cc',
    ...fs
      .readdirSync(path.join(native, 'kernels'))
      .filter((f) => f.endsWith('.cc'))
      .map((f) => `kernels/${f}`),
  ];
  say('building the addon with -fsanitize=address,undefined');
  const build = spawnSync(
    compiler,
    [
      '-std=c++17',
      '-O1',
      '-g',
      '-shared',
      '-fPIC',
      '-fsanitize=address,undefined',
      '-fno-sanitize-recover=all',
      '-fno-omit-frame-pointer',
      '-fno-math-errno',
      '-ffp-contract=off',
      '-pthread',
      '-DNAPI_VERSION=8',
      '-DNODE_ADDON_API_DISABLE_DEPRECATED',
      '-DNODE_ADDON_API_CPP_EXCEPTIONS',
      `-I${headers}`,
      `-I${addonApi}`,
      '-o',
      addon,
      ...sources.map((s) => path.join(native, s)),
    ],
    { encoding: 'utf8' },
  );
  if (build.status !== 0) {
    process.stdout.write(build.stdout + build.stderr);
    say('FAILED: the sanitizer build of the addon did not compile');
    return 1;
  }
  say(
    'running the src/kernels vitest suites, the simulator native ops, fused chains, GEMMs over fp16 input bits and the conformance corpus in all op modes, and test/kernel-buffers.test.ts (arrays detached mid-run, in a child process) against it (LD_PRELOAD of the ASan runtime)',
  );
  const vitestPackage = require.resolve('vitest/package.json', { paths: [packageRoot] });
  const vitest = path.join(path.dirname(vitestPackage), require(vitestPackage).bin.vitest);
  const run = spawnSync(
    process.execPath,
    [
      vitest,
      'run',
      'src/kernels',
      'src/sim/native-ops.test.ts',
      'src/sim/conformance.test.ts',
      'src/sim/fusion.test.ts',
      'src/sim/half-input-operands.test.ts',
      'test/kernel-buffers.test.ts',
      '--reporter=verbose',
    ],
    {
      cwd: packageRoot,
      encoding: 'utf8',
      env: {
        ...process.env,
        ANE_BRIDGE_NATIVE_PATH: addon,
        NO_COLOR: '1',
        FORCE_COLOR: '0',
        LD_PRELOAD: runtime,
        // Node itself is not leak-clean at exit; out-of-bounds and use-after-free still halt.
        ASAN_OPTIONS: 'detect_leaks=0:halt_on_error=1',
        UBSAN_OPTIONS: 'print_stacktrace=1:halt_on_error=1',
      },
      maxBuffer: 256 << 20,
    },
  );
  const output = `${run.stdout ?? ''}${run.stderr ?? ''}`;
  const summary = output
    .split('\n')
    .filter((line) => /Test Files|Tests |Sanitizer|runtime error|FAIL/.test(line));
  process.stdout.write(`${summary.join('\n')}\n`);
  if (run.status !== 0 || SANITIZER_REPORT.test(output)) {
    if (run.status !== 0) process.stdout.write(output.slice(-20000));
    say(`FAILED: the kernel suites under ASan (exit ${run.status ?? run.signal})`);
    return 1;
  }
  if (!/native (scalar|avx|neon)/.test(output)) {
    say('FAILED: no native variant ran (did the ASan addon load?)');
    return 1;
  }
  if (!/✓ .*survive arrays detached and collected mid-run/.test(output)) {
    say(
      'FAILED: the detached-buffer scenarios (test/kernel-buffers.test.ts) did not run against the ASan addon',
    );
    return 1;
  }
  say('the kernel suites passed against the ASan addon with no sanitizer reports');
  return 0;
}

process.exitCode = main();
