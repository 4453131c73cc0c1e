// `pnpm bench optim`: ane-optim's AdamW over a flat arena of Stories110M's 109.5M parameters, in
// GB/s counting 28 bytes per parameter (read p, g, m, v; write p, m, v), for the native and the
// TypeScript kernels at 1 and 2 threads. References measured in the same run:
// - memory bandwidth: a STREAM triad (a[i] = b[i] + 3*c[i], 12 bytes per fp32 element as STREAM
//   counts it) with the same number of threads, measured in the same process right after;
// - PyTorch: torch.optim.AdamW over the same tensors (bench/optim_torch.py under Debian's
//   /usr/bin/python3), at its best setting, reported as unavailable when torch is missing.
// Each configuration runs in its own process (the thread count and kernel choice are per process).
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { medianMs, printTable, writeResults } from './lib.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const BYTES_PER_PARAM = 28;
const TRIAD_ELEMENTS = 1 << 25; // 3 x 128 MiB: far beyond the caches

// ---------------------------------------------------------------------------------------------
// Stories110M in llama2.c's checkpoint order: every tensor of a kind for all layers together, so
// the norms (no weight decay) form few runs and stepArena makes a handful of kernel calls.
function stories110mLayout() {
  const dim = 768;
  const layers = 12;
  const hidden = 2048;
  const vocab = 32000;
  const perLayer = (name, shape) => Array.from({ length: layers }, (_, l) => [`layers.${l}.${name}`, shape]);
  return [
    ['tok_embeddings', [vocab, dim]],
    ...perLayer('attention_norm', [dim]),
    ...perLayer('attention.wq', [dim, dim]),
    ...perLayer('attention.wk', [dim, dim]),
    ...perLayer('attention.wv', [dim, dim]),
    ...perLayer('attention.wo', [dim, dim]),
    ...perLayer('ffn_norm', [dim]),
    ...perLayer('feed_forward.w1', [hidden, dim]),
    ...perLayer('feed_forward.w2', [dim, hidden]),
    ...perLayer('feed_forward.w3', [hidden, dim]),
    ['norm', [dim]],
  ];
}

// ---------------------------------------------------------------------------------------------
// STREAM triad, a[i] = b[i] + 3*c[i] over fp32 arrays, counted as STREAM counts it: 12 bytes per
// element (read b and c, write a). Native from bench/native/reference.cc (`pnpm bench kernels`'s
// reference harness, compiled here without OpenBLAS) when a C++ compiler is present; otherwise a
// JS triad, said so in the reference column.
function buildTriadReference() {
  const source = join(here, 'native', 'reference.cc');
  // biome-ignore lint/suspicious/noUndeclaredEnvVars: CXX only picks the compiler of the bench harness
  const cxx = [process.env.CXX, 'g++', 'clang++']
    .filter(Boolean)
    .find((c) => spawnSync(c, ['--version'], { encoding: 'utf8' }).status === 0);
  if (cxx === undefined || !existsSync(source)) return null;
  const hash = createHash('sha256').update(readFileSync(source)).update(cxx).digest('hex').slice(0, 12);
  const binary = join(tmpdir(), `ane-sdk-bench-optim-${hash}`, 'reference');
  if (!existsSync(binary)) {
    mkdirSync(dirname(binary), { recursive: true });
    const built = spawnSync(cxx, ['-std=c++17', '-O3', '-pthread', '-o', binary, source], {
      encoding: 'utf8',
    });
    if (built.status !== 0) return null;
  }
  return binary;
}

function nativeTriadGBs(binary, threads) {
  const out = execFileSync(binary, ['triad', String(TRIAD_ELEMENTS), String(threads), '1.5'], {
    encoding: 'utf8',
  });
  return (TRIAD_ELEMENTS * 12) / (JSON.parse(out).seconds * 1e9);
}

const TRIAD_WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
const { a, b, c, start, end, control } = workerData;
const flag = new Int32Array(control);
for (;;) {
  Atomics.wait(flag, 0, 0);
  if (Atomics.load(flag, 0) === 2) break;
  for (let i = start; i < end; i++) a[i] = b[i] + 3 * c[i];
  Atomics.store(flag, 0, 0);
  Atomics.notify(flag, 1);
  Atomics.store(flag, 1, 1);
  Atomics.notify(flag, 1);
}
parentPort.postMessage('done');
`;

async function jsTriadGBs(threads) {
  // One thread: plain arrays (V8 is quicker on them); more: shared memory, split across workers.
  const shared = (n) => new Float32Array(threads > 1 ? new SharedArrayBuffer(n * 4) : n);
  const a = shared(TRIAD_ELEMENTS);
  const b = shared(TRIAD_ELEMENTS).fill(1);
  const c = shared(TRIAD_ELEMENTS).fill(2);
  const chunk = Math.ceil(TRIAD_ELEMENTS / threads);
  const helpers = [];
  for (let t = 1; t < threads; t++) {
    const control = new SharedArrayBuffer(8);
    const worker = new Worker(TRIAD_WORKER, {
      eval: true,
      workerData: { a, b, c, start: t * chunk, end: Math.min(TRIAD_ELEMENTS, (t + 1) * chunk), control },
    });
    helpers.push({ worker, flag: new Int32Array(control) });
  }
  await new Promise((resolve) => setTimeout(resolve, 200)); // let the workers start
  const ownEnd = Math.min(TRIAD_ELEMENTS, chunk);
  const triad = () => {
    for (const { flag } of helpers) {
      Atomics.store(flag, 1, 0);
      Atomics.store(flag, 0, 1);
      Atomics.notify(flag, 0);
    }
    for (let i = 0; i < ownEnd; i++) a[i] = b[i] + 3 * c[i];
    for (const { flag } of helpers) while (Atomics.load(flag, 1) === 0) Atomics.wait(flag, 1, 0, 1);
  };
  const ms = medianMs(triad, { minMs: 1500, minRuns: 8, warmup: 3 });
  for (const { worker, flag } of helpers) {
    Atomics.store(flag, 0, 2);
    Atomics.notify(flag, 0);
    await worker.terminate();
  }
  if (a[TRIAD_ELEMENTS - 1] !== 7) throw new Error('triad computed the wrong thing');
  return (TRIAD_ELEMENTS * 12) / (ms * 1e6);
}

async function triadGBs(threads) {
  const binary = buildTriadReference();
  if (binary !== null) {
    return {
      kind: 'STREAM triad (bench/native/reference.cc, 12 B/element)',
      gbps: nativeTriadGBs(binary, threads),
    };
  }
  return {
    kind: 'JS triad (no C++ compiler for the native one; 12 B/element)',
    gbps: await jsTriadGBs(threads),
  };
}

// ---------------------------------------------------------------------------------------------
// One configuration, in a child process: `node bench/optim.bench.mjs --child <ts|native> <threads>`.
async function child(implementation, threads) {
  const bridge = await import('ane-bridge');
  // ane-optim is not a dependency of the repository root; load its build directly.
  const { AdamW, FlatArena, ThreadPool } = await import('../packages/ane-optim/dist/index.js');
  const running = bridge.capabilities().hostKernels;
  // The TypeScript kernels get more threads from ane-optim's worker pool (shared-memory arena);
  // the native kernels from ane-bridge's own thread pool (ANE_BRIDGE_THREADS, set by the parent).
  const pool = implementation === 'ts' && threads > 1 ? new ThreadPool(threads) : undefined;
  const arena = new FlatArena(stories110mLayout(), { shared: pool !== undefined });
  for (let i = 0; i < arena.size; i++) {
    arena.params[i] = 0.02 * Math.sin(i);
    arena.grads[i] = 1e-3 * Math.cos(i);
  }
  const optimizer = new AdamW({
    learningRate: 3e-4,
    betas: [0.9, 0.95],
    weightDecay: 0.1,
    groups: [{ params: /norm$/, weightDecay: 0 }],
  });
  await pool?.ready;
  // The update and the triad alternate, three rounds each, so both see the same machine (it is
  // shared); each figure is the median of its rounds.
  const stepMs = [];
  const triads = [];
  let triadKind = '';
  for (let round = 0; round < 3; round++) {
    stepMs.push(
      medianMs(() => optimizer.stepArena(arena, pool === undefined ? {} : { pool }), {
        minMs: 1000,
        minRuns: 3,
        warmup: round === 0 ? 2 : 1,
      }),
    );
    const triad = await triadGBs(threads);
    triadKind = triad.kind;
    triads.push(triad.gbps);
  }
  pool?.close();
  if (!Number.isFinite(arena.params[12345])) throw new Error('the update produced non-finite weights');
  const median = (values) => [...values].sort((x, y) => x - y)[Math.floor(values.length / 2)];
  const ms = median(stepMs);
  const triad = { kind: triadKind, gbps: median(triads) };
  console.log(
    JSON.stringify({
      implementation: running.implementation,
      reason: running.reason,
      hostThreads: implementation === 'ts' ? threads : bridge.hostThreads(),
      simd: bridge.hostSimdLevel?.() ?? null,
      params: arena.size,
      ms,
      gbps: (arena.size * BYTES_PER_PARAM) / (ms * 1e6),
      triad,
    }),
  );
}

function runChild(implementation, threads) {
  const env = { ...process.env, ANE_BRIDGE_THREADS: String(threads) };
  if (implementation === 'ts') env.ANE_BRIDGE_FORCE_TS = '1';
  else delete env.ANE_BRIDGE_FORCE_TS;
  const result = spawnSync(
    process.execPath,
    [fileURLToPath(import.meta.url), '--child', implementation, String(threads)],
    {
      env,
      encoding: 'utf8',
      maxBuffer: 1 << 20,
    },
  );
  if (result.status !== 0)
    return { error: (result.stderr || result.stdout).trim().split('\n').slice(-3).join(' ') };
  return JSON.parse(result.stdout.trim().split('\n').at(-1));
}

// ---------------------------------------------------------------------------------------------
// PyTorch at its best: jemalloc preloaded with its memory kept (no decay: otherwise every step's
// temporaries are fresh pages), OMP_NUM_THREADS set, foreach on and off; the fastest is the reference.
function runTorch(maxThreads) {
  // biome-ignore lint/suspicious/noUndeclaredEnvVars: read by the bench alone, not by a turbo task
  const python = process.env.ANE_BENCH_PYTHON ?? '/usr/bin/python3';
  const probe = spawnSync(python, ['-c', 'import torch'], { encoding: 'utf8' });
  if (probe.status !== 0) {
    return { unavailable: `${python} cannot import torch (Debian: apt-get install python3-torch)` };
  }
  const jemalloc = [
    '/usr/lib/x86_64-linux-gnu/libjemalloc.so.2',
    '/usr/lib/aarch64-linux-gnu/libjemalloc.so.2',
  ].find(existsSync);
  const env = { ...process.env, OMP_NUM_THREADS: String(maxThreads) };
  if (jemalloc !== undefined) {
    env.LD_PRELOAD = jemalloc;
    env.MALLOC_CONF = 'dirty_decay_ms:-1,muzzy_decay_ms:-1';
  }
  const threads = Array.from({ length: maxThreads }, (_, i) => String(i + 1));
  const stdout = execFileSync(python, [join(here, 'optim_torch.py'), ...threads], {
    env,
    encoding: 'utf8',
    maxBuffer: 1 << 20,
  });
  const lines = stdout
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line));
  const environment = lines.find((l) => l.environment)?.environment ?? {};
  return {
    settings: lines.filter((l) => l.gbps !== undefined),
    environment: { ...environment, malloc: jemalloc === undefined ? 'glibc' : 'jemalloc, decay off' },
  };
}

async function main() {
  const threadCounts = [1, Math.min(2, cpus().length)].filter((t, i, all) => all.indexOf(t) === i);
  const rows = [];
  const results = [];
  for (const implementation of ['native', 'ts']) {
    for (const threads of threadCounts) {
      process.stdout.write(`  ${implementation} kernels, ${threads} thread(s)... `);
      const result = runChild(implementation, threads);
      console.log(result.error ? `failed: ${result.error}` : `${result.gbps.toFixed(1)} GB/s`);
      results.push({ implementation, threads, result });
    }
  }
  process.stdout.write('  PyTorch... ');
  const torch = runTorch(Math.max(...threadCounts));
  console.log(torch.unavailable ?? 'done');

  for (const { implementation, threads, result } of results) {
    const config = { kernels: implementation, threads, params: 109_529_856, bytesPerParam: BYTES_PER_PARAM };
    if (result.error !== undefined) {
      rows.push({ name: 'adamw stepArena', config, value: 'failed', unit: result.error });
      continue;
    }
    if (result.implementation !== implementation) {
      rows.push({
        name: 'adamw stepArena',
        config,
        value: 'unavailable',
        unit: `${implementation} kernels did not load: ${result.reason}`,
      });
      continue;
    }
    if (result.hostThreads !== threads) {
      rows.push({
        name: 'adamw stepArena',
        config,
        value: 'unavailable',
        unit: `asked for ${threads} thread(s), the kernels ran on ${result.hostThreads}`,
      });
      continue;
    }
    const how =
      implementation === 'ts' ? (threads > 1 ? 'ane-optim ThreadPool' : 'JS thread') : `simd ${result.simd}`;
    rows.push({
      name: 'adamw stepArena',
      config: { ...config, how, msPerStep: Number(result.ms.toFixed(1)) },
      value: result.gbps,
      unit: 'GB/s',
      reference: `${result.triad.kind}, ${threads} thread(s)`,
      referenceValue: result.triad.gbps,
      ratio: result.gbps / result.triad.gbps,
    });
    if (torch.unavailable !== undefined) {
      rows.push({
        name: 'adamw stepArena vs PyTorch',
        config,
        value: result.gbps,
        unit: 'GB/s',
        reference: `PyTorch unavailable: ${torch.unavailable}`,
      });
      continue;
    }
    const best = torch.settings.filter((s) => s.threads <= threads).sort((a, b) => b.gbps - a.gbps)[0];
    rows.push({
      name: 'adamw stepArena vs PyTorch',
      config,
      value: result.gbps,
      unit: 'GB/s',
      reference: `torch.optim.AdamW (${best.threads} thread(s), foreach=${best.foreach ? 'True' : 'False'}, torch ${torch.environment.torch}, ${torch.environment.malloc})`,
      referenceValue: best.gbps,
      ratio: result.gbps / best.gbps,
    });
  }
  for (const setting of torch.settings ?? []) {
    rows.push({
      name: 'torch.optim.AdamW',
      config: {
        threads: setting.threads,
        foreach: setting.foreach,
        msPerStep: Number((setting.seconds * 1000).toFixed(1)),
        malloc: torch.environment.malloc,
        cpu: torch.environment.cpuCapability,
      },
      value: setting.gbps,
      unit: 'GB/s',
    });
  }
  console.log();
  printTable(rows);
  writeResults('optim', rows);
}

if (process.argv[2] === '--child') {
  await child(process.argv[3], Number(process.argv[4]));
} else {
  await main();
}
