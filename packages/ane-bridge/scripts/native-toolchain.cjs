// The local C++ toolchain, for the test-only native builds (native/test/run-asan.cjs,
// native/ane-test/build.cjs): nothing here is shipped or used at install time.
'use strict';

const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

/** The full path of `command` on PATH, or undefined. */
function onPath(command) {
  for (const dir of (process.env.PATH || '').split(path.delimiter)) {
    if (!dir) continue;
    const file = path.join(dir, command);
    try {
      if (fs.statSync(file).isFile()) return file;
    } catch {}
  }
  return undefined;
}

function runs(command) {
  return spawnSync(command, ['--version'], { encoding: 'utf8' }).status === 0;
}

/** The C++ compiler to use: $CXX, else the first of g++, clang++, c++ that runs; or undefined. */
function findCompiler() {
  return [process.env.CXX, 'g++', 'clang++', 'c++'].filter(Boolean).find(runs);
}

/** The AddressSanitizer runtime to LD_PRELOAD into Node (Linux only), or undefined. */
function findAsanRuntime(compiler) {
  if (process.platform !== 'linux') return undefined;
  const result = spawnSync(compiler, ['-print-file-name=libasan.so'], { encoding: 'utf8' });
  const file = (result.stdout || '').trim();
  return path.isAbsolute(file) && fs.existsSync(file) ? file : undefined;
}

/** The directory holding node_api.h for the running Node, or undefined. */
function findNodeHeaders() {
  const candidates = [
    process.env.npm_config_nodedir && path.join(process.env.npm_config_nodedir, 'include', 'node'),
    path.resolve(path.dirname(process.execPath), '..', 'include', 'node'),
  ];
  return candidates.find((dir) => dir && fs.existsSync(path.join(dir, 'node_api.h')));
}

module.exports = { findAsanRuntime, findCompiler, findNodeHeaders, onPath };
