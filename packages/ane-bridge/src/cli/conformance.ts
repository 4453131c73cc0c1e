import { join } from 'node:path';
import { findCaseDirs } from '../conformance/case';
import type { CaseResult } from '../conformance/run';
import { findPackageRoot } from '../native/package-root';

/** The corpus shipped inside this package (a copy of the project's conformance corpus). */
export function shippedCorpusDir(): string {
  return join(findPackageRoot(), 'conformance');
}

export function conformanceCaseDirs(paths: readonly string[]): string[] {
  return findCaseDirs(paths.length > 0 ? paths : [shippedCorpusDir()]);
}

function formatNumber(value: number): string {
  if (!Number.isFinite(value)) return String(value);
  return Math.abs(value) >= 1e4 || (value !== 0 && Math.abs(value) < 1e-3)
    ? value.toExponential(3)
    : value.toPrecision(4);
}

const OUTCOME_LABEL = { pass: 'pass', 'refused-expected': 'refused (expected)', fail: 'FAIL' } as const;

function describeWorst(result: CaseResult): string {
  if (result.refusal) {
    const by = result.refusal.ruleId ? `rule ${result.refusal.ruleId}` : 'the compiler';
    return `refused by ${by} on ${result.refusal.chip}, as the case says`;
  }
  if (result.error) return result.error.split('\n')[0]!;
  const w = result.worst;
  if (!w) return '(no elements)';
  const where = `${w.output}[${w.coords.join(',')}]`;
  return `${where}: got ${formatNumber(w.got)}, expected ${formatNumber(w.expected)}, error ${formatNumber(w.error)} (${Math.round(w.ratio * 100)}% of allowed)`;
}

/** A table a person can read: one line per case, then the total. */
export function formatConformanceTable(
  results: readonly CaseResult[],
  device: { backend: string; chip: string },
): string {
  const rows = results.map((r) => [
    r.id,
    OUTCOME_LABEL[r.outcome],
    r.error || r.refusal ? '—' : `${r.timeMs.toFixed(1)} ms`,
    describeWorst(r),
  ]);
  const header = ['case', 'result', 'time', 'worst element'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: string[]) =>
    cells
      .map((cell, i) => (i === cells.length - 1 ? cell : cell.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  const passed = results.filter((r) => r.outcome === 'pass').length;
  const refused = results.filter((r) => r.outcome === 'refused-expected');
  const refusedNote =
    refused.length === 0
      ? ''
      : `, ${refused.length} refused as expected on this chip (${refused.map((r) => r.id).join(', ')})`;
  return [
    line(header),
    ...rows.map(line),
    '',
    `${passed}/${results.length} cases passed on ${device.backend} (${device.chip})${refusedNote}`,
    '',
  ].join('\n');
}
