// Shared benchmark plumbing: timing, the results table, and bench/results/<suite>.json rows
// ({ suite, name, config, value, unit, reference?, referenceValue?, ratio? }, DESIGN.md).
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
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

// What OpenBLAS's AVX-512 kernels (its SkylakeX target) need of the CPU, as /proc/cpuinfo names it.
const OPENBLAS_AVX512_FLAGS = ['avx512f', 'avx512cd', 'avx512bw', 'avx512dq', 'avx512vl'];
// OpenBLAS cores that run the AVX-512 kernels (openblas_get_corename's and OPENBLAS_VERBOSE's names).
const OPENBLAS_AVX512_CORES = new Set(['skylakex', 'cooperlake', 'sapphirerapids']);

function cpuHasOpenblasAvx512() {
  let cpuinfo;
  try {
    cpuinfo = readFileSync('/proc/cpuinfo', 'utf8');
  } catch {
    return false; // not Linux: OpenBLAS's own choice stands
  }
  const flags = new Set((/^flags\s*:(.*)$/m.exec(cpuinfo)?.[1] ?? '').trim().split(/\s+/));
  return OPENBLAS_AVX512_FLAGS.every((flag) => flags.has(flag));
}

/** `env` without OPENBLAS_CORETYPE, so OpenBLAS picks its kernels for the CPU itself. */
export function withoutOpenblasCore(env) {
  const { OPENBLAS_CORETYPE: _inherited, ...rest } = env;
  return rest;
}

/**
 * The environment (this process's, adjusted) that runs an OpenBLAS reference at its best, given
 * the core OpenBLAS picks on its own for this CPU (`ownPick`: probed under `withoutOpenblasCore`,
 * any case; undefined when unknown). A reference is measured on the kernels made for the CPU:
 * - an inherited OPENBLAS_CORETYPE is dropped: this machine image sets Haswell, which on its
 *   AVX-512 CPU ran PyTorch's stories15M step in 230 ms against 165 ms on OpenBLAS's own pick
 *   (Cooperlake), so a ratio against it would flatter us;
 * - an own pick without AVX-512 on a CPU with what OpenBLAS's AVX-512 kernels need (older
 *   OpenBLAS releases take AMD Zen 4 for Haswell) becomes OPENBLAS_CORETYPE=SkylakeX;
 * - BENCH_OPENBLAS_CORETYPE, when set, is the core to use (to reproduce a figure on other kernels).
 * Returns the environment and a note saying which kernels and why.
 */
export function openblasAtItsBest(ownPick) {
  const base = withoutOpenblasCore(process.env);
  // biome-ignore lint/suspicious/noUndeclaredEnvVars: read by the benches alone, not by a turbo task
  const inherited = process.env.OPENBLAS_CORETYPE;
  const dropped = inherited ? `; OPENBLAS_CORETYPE=${inherited} from the environment dropped` : '';
  // biome-ignore lint/suspicious/noUndeclaredEnvVars: read by the benches alone, not by a turbo task
  const wanted = process.env.BENCH_OPENBLAS_CORETYPE;
  if (wanted) {
    return {
      env: { ...base, OPENBLAS_CORETYPE: wanted },
      note: `OpenBLAS core ${wanted} (BENCH_OPENBLAS_CORETYPE)`,
    };
  }
  if (ownPick !== undefined && !OPENBLAS_AVX512_CORES.has(ownPick.toLowerCase()) && cpuHasOpenblasAvx512()) {
    return {
      env: { ...base, OPENBLAS_CORETYPE: 'SkylakeX' },
      note: `OpenBLAS core SkylakeX (it picked ${ownPick} on this CPU, which has what its AVX-512 kernels need${dropped})`,
    };
  }
  return { env: base, note: `OpenBLAS core ${ownPick ?? 'unknown'} (its own pick for this CPU${dropped})` };
}
