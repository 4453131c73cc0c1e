#!/usr/bin/env node
// Builds the native addon when it can, and always exits 0: without the addon, ane-bridge runs on
// its pure-TypeScript fallbacks. What happened is written to build/ane-bridge-install.json, which
// `ane doctor` reads to tell the user why native code is absent and how to get it.
'use strict';

const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const packageRoot = path.resolve(__dirname, '..');
const reportPath = path.join(packageRoot, 'build', 'ane-bridge-install.json');

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

function main() {
  if (process.env.ANE_BRIDGE_SKIP_BUILD === '1') {
    writeReport({ status: 'skipped', reason: 'ANE_BRIDGE_SKIP_BUILD=1 was set during install' });
    console.log(
      'ane-bridge: native build skipped (ANE_BRIDGE_SKIP_BUILD=1); using the TypeScript fallbacks.',
    );
    return;
  }
  const nodeGyp = findNodeGyp();
  if (!nodeGyp) {
    writeReport({
      status: 'failed',
      reason: 'node-gyp was not found (neither from the package manager nor on PATH)',
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
  console.log('ane-bridge: building the native addon (node-gyp rebuild)…');
  const build = (env) =>
    spawnSync(nodeGyp.command, args, { cwd: packageRoot, encoding: 'utf8', timeout: 10 * 60 * 1000, env });
  const result = build(process.env);
  if (result.status === 0) {
    writeReport({ status: 'built', reason: 'node-gyp rebuild succeeded' });
    console.log('ane-bridge: native addon built.');
    return;
  }
  const why = result.error
    ? String(result.error.message)
    : `node-gyp exited with ${result.status ?? result.signal}`;
  const log = tail(`${result.stdout}\n${result.stderr}`, 40);
  // On Apple silicon the Neural Engine bridge is the only code that touches private frameworks:
  // if the full build fails, keep the host kernels by building once more without it.
  if (process.platform === 'darwin' && process.arch === 'arm64' && process.env.ANE_BRIDGE_NO_ANE !== '1') {
    console.log('ane-bridge: retrying the build without the Neural Engine bridge…');
    const retry = build({ ...process.env, ANE_BRIDGE_NO_ANE: '1' });
    if (retry.status === 0) {
      writeReport({
        status: 'built',
        reason: `built without the Neural Engine bridge: the full build failed (${why})`,
        log,
      });
      console.log(
        'ane-bridge: native addon built without the Neural Engine bridge. Run `npx ane doctor` for details.',
      );
      return;
    }
  }
  writeReport({ status: 'failed', reason: why, log });
  console.log(
    `ane-bridge: native build failed (${why}); using the TypeScript fallbacks. Run \`npx ane doctor\` for details.`,
  );
}

try {
  main();
} catch (error) {
  writeReport({ status: 'failed', reason: `install script error: ${error?.message}` });
  console.log('ane-bridge: native build skipped after an unexpected error; using the TypeScript fallbacks.');
}
process.exit(0);
