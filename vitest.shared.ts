/**
 * Test options every vitest config in the repository shares. Besides the console output, each run
 * writes a JSON report into .vitest-reports/ at the repository root, which `pnpm test` sums into
 * one closing line (scripts/test-summary.mjs).
 */
import { fileURLToPath } from 'node:url';

const reportsDir = fileURLToPath(new URL('./.vitest-reports/', import.meta.url));

export const sharedTestOptions = {
  include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
  testTimeout: 60_000,
  reporters: ['default', 'json'],
  outputFile: { json: `${reportsDir}${process.pid}-${Date.now()}.json` },
};
