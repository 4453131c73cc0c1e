// Shared benchmark plumbing: timing, the results table, and bench/results/<suite>.json rows
// ({ suite, name, config, value, unit, reference?, referenceValue?, ratio? }, DESIGN.md).
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const resultsDir = join(dirname(fileURLToPath(import.meta.url)), 'results');

/** Median wall time in ms of `fn` over repeats, after a warm-up, running for at least `minMs`. */
export function medianMs(fn, { minMs = 1000, minRuns = 5, warmup = 2 } = {}) {
  for (let i = 0; i < warmup; i++) fn();
  const times = [];
  const start = performance.now();
  while (times.length < minRuns || performance.now() - start < minMs) {
    const t0 = performance.now();
    fn();
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)];
}

function formatValue(v) {
  if (v === undefined) return '';
  if (typeof v !== 'number') return String(v);
  return Math.abs(v) >= 100 ? v.toFixed(0) : v.toPrecision(3);
}

export function printTable(rows) {
  const header = ['name', 'config', 'value', 'unit', 'reference', 'ref value', 'ratio'];
  const cells = rows.map((r) => [
    r.name,
    JSON.stringify(r.config).replace(/"/g, ''),
    formatValue(r.value),
    r.unit,
    r.reference ?? '',
    formatValue(r.referenceValue),
    r.ratio === undefined ? '' : `${r.ratio.toFixed(2)}x`,
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i].length)));
  const line = (c) =>
    c
      .map((x, i) => x.padEnd(widths[i]))
      .join('  ')
      .trimEnd();
  console.log([line(header), line(widths.map((w) => '-'.repeat(w))), ...cells.map(line)].join('\n'));
}

export function writeResults(suite, rows) {
  mkdirSync(resultsDir, { recursive: true });
  const file = join(resultsDir, `${suite}.json`);
  writeFileSync(
    file,
    `${JSON.stringify(
      rows.map((r) => ({ suite, ...r })),
      null,
      2,
    )}\n`,
  );
  console.log(`\nwrote ${file}`);
}
