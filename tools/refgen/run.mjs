#!/usr/bin/env node
// `pnpm refgen`: regenerates the PyTorch reference fixtures by running every tools/refgen/*.py with
// a Python that has torch and numpy (Debian's /usr/bin/python3 with python3-torch and
// python3-numpy, or the interpreter named by $REFGEN_PYTHON).
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
// biome-ignore lint/suspicious/noUndeclaredEnvVars: a developer tool, not a turbo task
const python = process.env.REFGEN_PYTHON ?? '/usr/bin/python3';
const probe = spawnSync(python, ['-c', 'import torch, numpy'], { encoding: 'utf8' });
if (probe.status !== 0) {
  console.error(
    `refgen: ${python} cannot import torch and numpy (${(probe.stderr || probe.error?.message || '').trim().split('\n').at(-1)}).\n` +
      'Install them (Debian/Ubuntu: apt-get install python3-torch python3-numpy) or set REFGEN_PYTHON to a Python that has them.',
  );
  process.exit(1);
}
const wanted = process.argv.slice(2);
for (const script of readdirSync(here).filter((f) => f.endsWith('.py'))) {
  if (wanted.length > 0 && !wanted.some((w) => script.startsWith(w))) continue;
  const result = spawnSync(python, [join(here, script)], { stdio: 'inherit', cwd: join(here, '..', '..') });
  if (result.status !== 0) process.exit(result.status ?? 1);
}
