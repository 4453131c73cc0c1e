#!/usr/bin/env node
// Sums the JSON reports every vitest run wrote into .vitest-reports/ (see vitest.shared.ts) into
// one closing line. `test-summary.mjs clean` empties the folder before a run.
import { mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const reportsDir = join(dirname(fileURLToPath(import.meta.url)), '..', '.vitest-reports');

if (process.argv[2] === 'clean') {
  rmSync(reportsDir, { recursive: true, force: true });
  mkdirSync(reportsDir, { recursive: true });
} else {
  const totals = { passed: 0, failed: 0, skipped: 0 };
  const files = readdirSync(reportsDir).filter((f) => f.endsWith('.json'));
  for (const file of files) {
    const report = JSON.parse(readFileSync(join(reportsDir, file), 'utf8'));
    totals.passed += report.numPassedTests;
    totals.failed += report.numFailedTests;
    totals.skipped += report.numPendingTests + report.numTodoTests;
  }
  console.log(`\n${files.length} vitest runs`);
  console.log(`tests: ${totals.passed} passed, ${totals.failed} failed, ${totals.skipped} skipped`);
  if (files.length === 0 || totals.failed > 0) process.exitCode = 1;
}
