#!/usr/bin/env node
// `pnpm bench [suite]`: builds the packages, then runs bench/<suite>.mjs (every suite when none is named).
import { execFileSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const suites = readdirSync(join(root, 'bench'))
  .filter((f) => f.endsWith('.bench.mjs'))
  .map((f) => f.replace(/\.bench\.mjs$/, ''));
const wanted = process.argv.slice(2);
const unknown = wanted.filter((s) => !suites.includes(s));
if (unknown.length > 0) {
  console.error(`unknown suite ${unknown.join(', ')}; suites: ${suites.join(', ')}`);
  process.exit(2);
}
execFileSync('pnpm', ['exec', 'turbo', 'run', 'build', '--output-logs=errors-only'], {
  cwd: root,
  stdio: 'inherit',
});
for (const suite of wanted.length > 0 ? wanted : suites) {
  console.log(`\n== bench ${suite}`);
  execFileSync(process.execPath, [join(root, 'bench', `${suite}.bench.mjs`)], {
    cwd: root,
    stdio: 'inherit',
  });
}
