#!/usr/bin/env node
// Gets the native addon, and always exits 0: without the addon, ane-bridge runs on its
// pure-TypeScript fallbacks.
//   1. Where a prebuilt binary fits (prebuilds/<platform>-<arch>/, linux-x64 and linux-arm64), it
//      was made from the native sources shipped beside it (prebuilds/manifest.json) and it loads in
//      a child process, nothing is compiled.
//   2. Otherwise (always on macOS, in the git checkout, or with ANE_BRIDGE_BUILD_FROM_SOURCE=1) it
//      compiles native/ with node-gyp.
// What happened is written to build/ane-bridge-install.json (status built | prebuilt | failed |
// skipped, the compiler's first error line, why the prebuild was not used), which `ane doctor`
// reads to tell the user why native code is absent and how to get it.
'use strict';

const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const packageRoot = path.resolve(__dirname, '..');
const reportPath = path.join(packageRoot, 'build', 'ane-bridge-install.json');

/** The file name of a prebuild in prebuilds/<platform>-<arch>/ (node-gyp-build tags: N-API, glibc). */
const PREBUILD_FILE_NAME = 'ane-bridge.napi.glibc.node';
// Native sources a Linux build does not compile (Apple-only, or tests): not part of the source hash.
const NOT_IN_LINUX_BUILD = new Set(['ane', 'mac', 'fake', 'test', 'ane-test']);

/**
 * sha256 over binding.gyp and every file under native/ that a Linux build compiles or includes
 * (everything but native/{ane,mac,fake,test,ane-test}). prebuilds/manifest.json records it; a
 * prebuild is used only when it matches the sources shipped beside it.
 */
function nativeSourceHash(root = packageRoot) {
  const files = ['binding.gyp'];
  const walk = (relative) => {
    for (const entry of fs.readdirSync(path.join(root, relative), { withFileTypes: true })) {
      const child = `${relative}/${entry.name}`;
      if (entry.isDirectory()) {
        if (!(relative === 'native' && NOT_IN_LINUX_BUILD.has(entry.name))) walk(child);
      } else if (entry.isFile()) files.push(child);
    }
  };
  walk('native');
  const hash = require('node:crypto').createHash('sha256');
  for (const file of files.sort()) {
    hash.update(`${file}\0`);
    hash.update(fs.readFileSync(path.join(root, file)));
    hash.update('\0');
  }
  return hash.digest('hex');
}

function writeReport(report) {
  try {
    fs.mkdirSync(path.dirname(reportPath), { recursive: true });
    fs.writeFileSync(reportPath, `${JSON.stringify({ ...report, at: new Date().toISOString() }, null, 2)}\n`);
  } catch {
    // A read-only install directory must not fail the install.
  }
}

function isFile(file) {
  try {
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
}

function findOnPath(command) {
  for (const dir of (process.env.PATH || '').split(path.delimiter)) {
    if (dir && isFile(path.join(dir, command))) return path.join(dir, command);
  }
  return undefined;
}

// node-gyp comes with the package manager: npm passes its copy in npm_config_node_gyp, pnpm puts
// its bundled copy on PATH for lifecycle scripts. ANE_BRIDGE_NODE_GYP overrides both.
function findNodeGyp() {
  const override = process.env.ANE_BRIDGE_NODE_GYP;
  if (override) return isFile(override) ? { command: process.execPath, args: [override] } : undefined;
  const candidates = [
    process.env.npm_config_node_gyp,
    (() => {
      try {
        return require.resolve('node-gyp/bin/node-gyp.js');
      } catch {
        return undefined;
      }
    })(),
    path.join(
      path.dirname(process.execPath),
      '..',
      'lib',
      'node_modules',
      'npm',
      'node_modules',
      'node-gyp',
      'bin',
      'node-gyp.js',
    ),
  ];
  for (const candidate of candidates) {
    if (candidate && isFile(candidate)) return { command: process.execPath, args: [candidate] };
  }
  const onPath = findOnPath(process.platform === 'win32' ? 'node-gyp.cmd' : 'node-gyp');
  return onPath ? { command: onPath, args: [] } : undefined;
}

function tail(text, lines) {
  return String(text || '')
    .trim()
    .split('\n')
    .slice(-lines)
    .join('\n');
}

/**
 * The line of a failed build's output that says what went wrong: the compiler's first `error:`
 * (or `fatal error:`), else a missing tool (`not found`), else make's first `*** … Error` line,
 * else node-gyp's own error (e.g. no Python).
 */
function firstErrorLine(output) {
  const lines = String(output || '')
    .split('\n')
    .map((line) => line.trim());
  const patterns = [
    /\berror:/,
    /: not found$|No such file or directory|command not found/,
    /^make(\[\d+\])?: \*\*\*/,
    // node-gyp's own failure (no Python, no headers): its message without the prefix.
    /^gyp ERR! stack Error: /,
  ];
  for (const pattern of patterns) {
    const line = lines.find((l) => pattern.test(l))?.replace(/^gyp ERR! stack Error: /, '');
    if (line) return line.length > 400 ? `${line.slice(0, 400)}…` : line;
  }
  return undefined;
}

/** The prebuilt binary node-gyp-build 4.8.4 would pick from prebuilds/ for this platform, or undefined. */
function findPrebuild(root = packageRoot) {
  let nodeGypBuild;
  try {
    nodeGypBuild = require('node-gyp-build');
  } catch {
    return undefined;
  }
  const list = (dir) => {
    try {
      return fs.readdirSync(dir);
    } catch {
      return [];
    }
  };
  const tuple = list(path.join(root, 'prebuilds'))
    .map(nodeGypBuild.parseTuple)
    .filter(nodeGypBuild.matchTuple(process.platform, process.arch))
    .sort(nodeGypBuild.compareTuples)[0];
  if (!tuple) return undefined;
  const dir = path.join(root, 'prebuilds', tuple.name);
  const winner = list(dir)
    .map(nodeGypBuild.parseTags)
    .filter(nodeGypBuild.matchTags('node', process.versions.modules))
    .sort(nodeGypBuild.compareTags('node'))[0];
  return winner ? path.join(dir, winner.file) : undefined;
}

/**
 * Whether the prebuild for this platform can replace the compile: present, built from the native
 * sources shipped beside it (prebuilds/manifest.json), and loading in a child process.
 * Returns { use: true, file, detail } or { use: false, why }.
 */
function checkPrebuild(root = packageRoot) {
  if (process.platform === 'darwin') {
    return {
      use: false,
      why: 'macOS always builds from source (the Neural Engine bridge is compiled on the Mac)',
    };
  }
  const file = findPrebuild(root);
  if (!file)
    return { use: false, why: `no prebuilt binary for ${process.platform}-${process.arch} in prebuilds/` };
  let manifest;
  try {
    manifest = JSON.parse(fs.readFileSync(path.join(root, 'prebuilds', 'manifest.json'), 'utf8'));
  } catch {
    return { use: false, why: 'prebuilds/manifest.json is missing or unreadable' };
  }
  const hash = nativeSourceHash(root);
  if (manifest.sourceHash !== hash) {
    return {
      use: false,
      why: 'the prebuilt binaries were made from other native sources than the ones shipped',
    };
  }
  const probe = spawnSync(
    process.execPath,
    [
      '-e',
      `const a = require(process.argv[1]);
       if (typeof a.abiVersion !== 'number' || typeof a.capabilities !== 'function') throw new Error('not an ane-bridge addon');
       process.stdout.write(JSON.stringify({ abi: a.abiVersion, simd: a.capabilities().simdLevel }));`,
      file,
    ],
    { encoding: 'utf8', timeout: 60 * 1000 },
  );
  if (probe.status !== 0) {
    const why =
      (probe.stderr || '').split('\n').find((l) => /Error/.test(l)) || `exit ${probe.status ?? probe.signal}`;
    return { use: false, why: `the prebuilt binary ${file} does not load here: ${why.trim()}` };
  }
  const loaded = JSON.parse(probe.stdout);
  return { use: true, file, detail: `ABI ${loaded.abi}, SIMD ${loaded.simd}` };
}

function main() {
  if (process.env.ANE_BRIDGE_SKIP_BUILD === '1') {
    writeReport({ status: 'skipped', reason: 'ANE_BRIDGE_SKIP_BUILD=1 was set during install' });
    console.log(
      'ane-bridge: native build skipped (ANE_BRIDGE_SKIP_BUILD=1); using the TypeScript fallbacks.',
    );
    return;
  }
  // In the git checkout (src/ is not in the npm tarball) the build always runs, so that edits to
  // native/ take effect; ANE_BRIDGE_BUILD_FROM_SOURCE=1 asks for it anywhere.
  let prebuildNote;
  if (process.env.ANE_BRIDGE_BUILD_FROM_SOURCE === '1') {
    prebuildNote = 'ANE_BRIDGE_BUILD_FROM_SOURCE=1 was set';
  } else if (fs.existsSync(path.join(packageRoot, 'src'))) {
    prebuildNote = 'this is a source checkout (src/ is present)';
  } else {
    const prebuild = checkPrebuild();
    if (prebuild.use) {
      // An earlier build from source would win over the prebuild in the loader: this install's
      // outcome is the prebuild, so that build goes.
      fs.rmSync(path.join(packageRoot, 'build', 'Release'), { recursive: true, force: true });
      writeReport({
        status: 'prebuilt',
        reason: `the prebuilt binary loads here (${prebuild.detail}); nothing was compiled`,
        path: prebuild.file,
      });
      console.log(
        `ane-bridge: using the prebuilt native addon ${path.relative(packageRoot, prebuild.file)}.`,
      );
      return;
    }
    prebuildNote = prebuild.why;
  }
  const nodeGyp = findNodeGyp();
  if (!nodeGyp) {
    writeReport({
      status: 'failed',
      reason: 'node-gyp was not found (neither from the package manager nor on PATH)',
      prebuild: prebuildNote,
    });
    console.log(
      'ane-bridge: node-gyp not found; using the TypeScript fallbacks. Run `npx ane doctor` for how to fix.',
    );
    return;
  }
  const args = [...nodeGyp.args, 'rebuild'];
  // Prefer the headers that came with this Node over downloading them: installs stay offline.
  const nodePrefix = path.resolve(path.dirname(process.execPath), '..');
  if (!process.env.npm_config_nodedir && isFile(path.join(nodePrefix, 'include', 'node', 'node_api.h'))) {
    args.push(`--nodedir=${nodePrefix}`);
  }
  console.log(
    `ane-bridge: building the native addon from source (node-gyp rebuild; prebuild not used: ${prebuildNote})…`,
  );
  const build = (env) =>
    spawnSync(nodeGyp.command, args, { cwd: packageRoot, encoding: 'utf8', timeout: 10 * 60 * 1000, env });
  const result = build(process.env);
  if (result.status === 0) {
    writeReport({ status: 'built', reason: 'node-gyp rebuild succeeded', prebuild: prebuildNote });
    console.log('ane-bridge: native addon built.');
    return;
  }
  const why = result.error
    ? String(result.error.message)
    : `node-gyp exited with ${result.status ?? result.signal}`;
  const output = `${result.stdout}\n${result.stderr}`;
  const log = tail(output, 40);
  const error = firstErrorLine(output);
  // On Apple silicon the Neural Engine bridge is the only code that touches private frameworks:
  // if the full build fails, keep the host kernels by building once more without it.
  if (process.platform === 'darwin' && process.arch === 'arm64' && process.env.ANE_BRIDGE_NO_ANE !== '1') {
    console.log('ane-bridge: retrying the build without the Neural Engine bridge…');
    const retry = build({ ...process.env, ANE_BRIDGE_NO_ANE: '1' });
    if (retry.status === 0) {
      writeReport({
        status: 'built',
        reason: `built without the Neural Engine bridge: the full build failed (${why})`,
        ...(error ? { error } : {}),
        log,
      });
      console.log(
        'ane-bridge: native addon built without the Neural Engine bridge. Run `npx ane doctor` for details.',
      );
      return;
    }
  }
  writeReport({ status: 'failed', reason: why, ...(error ? { error } : {}), prebuild: prebuildNote, log });
  console.log(
    `ane-bridge: native build failed (${why}${error ? `: ${error}` : ''}); using the TypeScript fallbacks. Run \`npx ane doctor\` for details.`,
  );
}

module.exports = {
  PREBUILD_FILE_NAME,
  checkPrebuild,
  findNodeGyp,
  findOnPath,
  findPrebuild,
  firstErrorLine,
  nativeSourceHash,
};

if (require.main === module) {
  try {
    main();
  } catch (error) {
    writeReport({ status: 'failed', reason: `install script error: ${error?.message}` });
    console.log(
      'ane-bridge: native build skipped after an unexpected error; using the TypeScript fallbacks.',
    );
  }
  process.exit(0);
}
