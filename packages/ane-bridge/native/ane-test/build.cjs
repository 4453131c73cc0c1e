// Test-only builds of the ANE bridge, with the system C++ compiler directly (no node-gyp, nothing
// shipped): the sanitizer harness (native/ane-test/harness.cc over the fake platform) and the
// fake-platform addon that test/ane/ drives from vitest. Objects are cached by modification time
// under build/ane-test/<variant>/, and at most two compile jobs run at once (2-core machines).
'use strict';

const { spawn } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { findAsanRuntime, findCompiler, findNodeHeaders } = require('../../scripts/native-toolchain.cjs');

const packageRoot = path.resolve(__dirname, '..', '..');
const nativeDir = path.join(packageRoot, 'native');
const buildRoot = path.join(packageRoot, 'build', 'ane-test');

const WARNINGS = ['-Wall', '-Wextra', '-Wno-unused-parameter', '-Werror'];
const BRIDGE_SOURCES = ['ane/ane_device.cc', 'ane/posix_files.cc', 'fake/platform_fake.cc'];
const SANITIZERS = [
  '-fsanitize=address,undefined',
  '-fno-sanitize-recover=undefined',
  '-fno-omit-frame-pointer',
];

function mtime(file) {
  try {
    return fs.statSync(file).mtimeMs;
  } catch {
    return -1;
  }
}

function headersNewest() {
  let newest = 0;
  for (const dir of ['ane', 'fake', 'mac']) {
    for (const name of fs.readdirSync(path.join(nativeDir, dir))) {
      if (name.endsWith('.h')) newest = Math.max(newest, mtime(path.join(nativeDir, dir, name)));
    }
  }
  return Math.max(newest, mtime(__filename));
}

function run(command, args) {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'inherit', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk) => {
      stderr += chunk;
    });
    child.on('error', reject);
    child.on('close', (code) => {
      if (code === 0) {
        if (stderr.trim()) process.stderr.write(stderr);
        resolve();
      } else reject(new Error(`${path.basename(command)} ${args.join(' ')}\n${stderr}`));
    });
  });
}

async function compileAll(compiler, sources, flags, objectDir) {
  fs.mkdirSync(objectDir, { recursive: true });
  const headers = headersNewest();
  const objects = sources.map((source) => path.join(objectDir, `${source.replace(/[/.]/g, '_')}.o`));
  const stale = sources
    .map((source, i) => ({ source: path.join(nativeDir, source), object: objects[i] }))
    .filter(({ source, object }) => mtime(object) < Math.max(mtime(source), headers));
  const queue = [...stale];
  const worker = async () => {
    for (let job = queue.shift(); job; job = queue.shift()) {
      await run(compiler, [...flags, '-c', job.source, '-o', job.object]);
    }
  };
  await Promise.all([worker(), worker()]);
  return { objects, rebuilt: stale.length > 0 };
}

/**
 * Builds the harness binary. `sanitize` adds -fsanitize=address,undefined. Returns its path.
 */
async function buildHarness({ compiler, sanitize = true }) {
  const variant = sanitize ? 'harness-asan' : 'harness';
  const flags = ['-std=c++17', '-g', '-O0', ...WARNINGS, ...(sanitize ? SANITIZERS : []), '-pthread'];
  const dir = path.join(buildRoot, variant);
  const { objects, rebuilt } = await compileAll(
    compiler,
    [...BRIDGE_SOURCES, 'ane-test/harness.cc'],
    flags,
    dir,
  );
  const binary = path.join(dir, 'ane-harness');
  if (rebuilt || mtime(binary) < 0) await run(compiler, [...flags, ...objects, '-o', binary]);
  return binary;
}

/**
 * Builds the fake-platform addon (ane_bridge_fake.node). `sanitize` builds it with ASan (load it
 * only into a Node started with the ASan runtime in LD_PRELOAD). Returns its path.
 */
async function buildFakeAddon({ compiler, sanitize = false }) {
  const nodeHeaders = findNodeHeaders();
  if (!nodeHeaders) throw new Error('the headers of this Node (include/node/node_api.h) were not found');
  const addonApi = path.dirname(require.resolve('node-addon-api/package.json', { paths: [packageRoot] }));
  const flags = [
    '-std=c++17',
    '-g',
    '-O0',
    '-fPIC',
    '-fvisibility=hidden',
    '-pthread',
    ...WARNINGS,
    ...(sanitize ? ['-fsanitize=address', '-fno-omit-frame-pointer'] : []),
    '-DNAPI_VERSION=8',
    '-DNODE_ADDON_API_DISABLE_DEPRECATED',
    '-DNODE_ADDON_API_CPP_EXCEPTIONS',
    '-isystem',
    nodeHeaders,
    '-isystem',
    addonApi,
  ];
  const dir = path.join(buildRoot, sanitize ? 'addon-asan' : 'addon');
  const sources = [...BRIDGE_SOURCES, 'ane/ane_addon.cc', 'fake/fake_addon.cc'];
  const { objects, rebuilt } = await compileAll(compiler, sources, flags, dir);
  const addon = path.join(dir, 'ane_bridge_fake.node');
  const link = process.platform === 'darwin' ? ['-undefined', 'dynamic_lookup'] : [];
  if (rebuilt || mtime(addon) < 0)
    await run(compiler, [...flags, '-shared', ...link, ...objects, '-o', addon]);
  return addon;
}

/**
 * Type-checks the macOS-only code on any machine: native/mac/platform_mac.cc against the declaration
 * stubs in mac-stubs/, and native/addon.cc as the macOS arm64 build compiles it (ANE exports on).
 */
async function checkMacPlatformSyntax({ compiler }) {
  await run(compiler, [
    '-std=c++17',
    '-fsyntax-only',
    ...WARNINGS,
    '-isystem',
    path.join(__dirname, 'mac-stubs'),
    path.join(nativeDir, 'mac', 'platform_mac.cc'),
  ]);
  const nodeHeaders = findNodeHeaders();
  if (!nodeHeaders) return;
  const addonApi = path.dirname(require.resolve('node-addon-api/package.json', { paths: [packageRoot] }));
  await run(compiler, [
    '-std=c++17',
    '-fsyntax-only',
    '-DANE_BRIDGE_HAS_MAC_ANE=1',
    '-DNAPI_VERSION=8',
    '-DNODE_ADDON_API_DISABLE_DEPRECATED',
    '-DNODE_ADDON_API_CPP_EXCEPTIONS',
    '-isystem',
    nodeHeaders,
    '-isystem',
    addonApi,
    path.join(nativeDir, 'addon.cc'),
  ]);
}

module.exports = {
  buildFakeAddon,
  buildHarness,
  checkMacPlatformSyntax,
  findAsanRuntime,
  findCompiler,
  packageRoot,
};
