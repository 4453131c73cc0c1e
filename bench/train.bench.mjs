// `pnpm bench train`: a whole training step (forward, backward, AdamW) through ane-train's public
// API in the simulator, for stories15M (seq 256, batch 1 and 4) and stories110M (batch 1; skipped
// with BENCH_QUICK=1): ms/step, tokens/s and the step profile. References measured in the same run:
// - PyTorch: the same step (a hand-written Llama of the same config, forward + backward +
//   clip_grad_norm_ + torch.optim.AdamW, same B and S, random token ids) by
//   tools/refbench/train_step.py under Debian's /usr/bin/python3 (or $REFBENCH_PYTHON), 2 threads,
//   libjemalloc.so.2 preloaded when installed, Debian's OpenMP OpenBLAS first on the library path
//   when installed, on the kernels OpenBLAS picks for the CPU (openblasAtItsBest in ./lib.mjs);
//   which BLAS torch loaded, and its kernels, are printed. A python or torch
//   that is missing makes the rows say "unavailable", never a made-up figure;
// - the GEMM floor: every GEMM of the step (forward, dX and dW of each linear and of the classifier,
//   QKᵀ and PV per head with their gradients) timed as bare native sgemm calls (ane-bridge's host
//   sgemm, its default threads), i.e. what the step would take if it were nothing but its GEMMs.
// "host side of an ANE step" is totalMs − deviceMs: the CPU work a Mac does per step while (and
// besides) the ANE evaluates, with the share of host kernels, staging and the optimizer.
import { spawnSync } from 'node:child_process';
import { existsSync, realpathSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { capabilities, compileSimProgram, hostSimdLevel, hostThreads, sgemm } from 'ane-bridge';
import { medianMs, openblasAtItsBest, printTable, withoutOpenblasCore, writeResults } from './lib.mjs';

// ane-train is not a dependency of the repository root; load its build directly.
const { Trainer, buildTrainingGraph, resolveModel } = await import('../packages/ane-train/dist/index.js');

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
// biome-ignore lint/suspicious/noUndeclaredEnvVars: read by the bench alone, not by a turbo task
const quick = process.env.BENCH_QUICK === '1';
const SEQ = 256;
const TORCH_THREADS = 2;
// Two warm-up steps, as the PyTorch reference takes (the first steps still JIT-compile and fault
// in fresh memory). Then the two sides alternate in rounds (ours: one unmeasured step, then `steps`
// steps; PyTorch: a fresh process, its own two warm-up steps and `steps` measured ones), each round
// the median of its steps. Ours gets its unmeasured step because on these virtual machines a
// process's memory is faulted in again after another process ran: the first step after a PyTorch
// round took 2-9 s (177,000 minor page faults in 3 steps, against 471 after 3 idle seconds). Each
// side keeps its best round: the machines are shared and drift by tens of percent within minutes,
// and alternating keeps one side's quiet minute from being compared with the other side's busy one
// (the kernels bench does the same).
const CONFIGS = [
  { model: 'stories15M', batch: 1, warmup: 2, steps: 5, rounds: 3 },
  { model: 'stories15M', batch: 4, warmup: 2, steps: 3, rounds: 3 },
  ...(quick ? [] : [{ model: 'stories110M', batch: 1, warmup: 2, steps: 3, rounds: 2 }]),
];

const progress = (message) => process.stderr.write(`  ${message}\n`);
const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];

/** Seeded random token ids in [0, vocab). */
function randomTokens(count, vocab, seed) {
  let state = seed >>> 0;
  const out = new Int32Array(count);
  for (let i = 0; i < count; i++) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    out[i] = Math.floor((state / 2 ** 32) * vocab);
  }
  return out;
}

// ---- ours: the simulator step through Trainer.fit -----------------------------------------------

/** A Trainer on the simulator, warmed up; `round(steps)` times `steps` more steps. */
async function openOurs({ model, batch, warmup }) {
  const label = `${model} batch ${batch}`;
  progress(`${label}: building the Trainer (simulator)...`);
  const built = performance.now();
  const trainer = new Trainer({ model, backend: 'sim', batch, seq: SEQ });
  progress(`${label}: Trainer ready in ${((performance.now() - built) / 1000).toFixed(1)} s`);
  const tokens = randomTokens(1 << 18, trainer.config.vocab_size, 12345);
  const trainFor = async (steps, kind) => {
    const logs = [];
    await trainer.fit(tokens, {
      steps,
      callbacks: {
        onStepEnd: (log) => {
          progress(`${label}: ${kind} step ${logs.length + 1}/${steps} ${log.profile.totalMs.toFixed(0)} ms`);
          logs.push(log);
        },
      },
    });
    return logs;
  };
  try {
    await trainFor(warmup, 'warm-up');
  } catch (error) {
    await trainer.dispose();
    throw error;
  }
  return {
    config: trainer.config,
    async round(steps) {
      await trainFor(1, 'unmeasured');
      const logs = await trainFor(steps, 'measured');
      const byTotal = [...logs].sort((a, b) => a.profile.totalMs - b.profile.totalMs);
      const middle = byTotal[Math.floor(byTotal.length / 2)];
      return {
        ms: middle.profile.totalMs,
        tokensPerSecond: (batch * SEQ) / (middle.profile.totalMs / 1000),
        profile: middle.profile,
        hostSide: median(logs.map((l) => l.profile.totalMs - l.profile.deviceMs)),
      };
    },
    dispose: () => trainer.dispose(),
  };
}

/** Alternating rounds of ours and PyTorch's; each side's best round, and every round's figure. */
async function measureBoth(run) {
  const ours = await openOurs(run);
  try {
    let best;
    let bestTorch;
    const oursRounds = [];
    const torchRounds = [];
    for (let round = 0; round < run.rounds; round++) {
      progress(`${run.model} batch ${run.batch}: round ${round + 1}/${run.rounds}, ours...`);
      const mine = await ours.round(run.steps);
      oursRounds.push(Math.round(mine.ms));
      if (best === undefined || mine.ms < best.ms) best = mine;
      if (bestTorch?.unavailable !== undefined) continue; // said once, in the rows
      progress(`${run.model} batch ${run.batch}: round ${round + 1}/${run.rounds}, PyTorch...`);
      const torch = measureTorch(ours.config, run);
      if (torch.unavailable !== undefined) {
        bestTorch = torch;
        continue;
      }
      torchRounds.push(Math.round(torch.msPerStep));
      if (bestTorch === undefined || torch.msPerStep < bestTorch.msPerStep) bestTorch = torch;
    }
    return { config: ours.config, ours: best, torch: bestTorch, oursRounds, torchRounds };
  } finally {
    await ours.dispose();
  }
}

// ---- the GEMM floor: every GEMM of the step as bare native sgemm calls -------------------------

/** [transA, transB, M, N, K] of each GEMM of one training step (forward, dX, dW), one per call. */
function stepGemms(config, batch) {
  const dim = config.hidden_size;
  const hidden = config.intermediate_size;
  const heads = config.num_attention_heads;
  const headDim = config.head_dim ?? dim / heads;
  const kvDim = config.num_key_value_heads * headDim;
  const tokens = batch * SEQ;
  // Forward C[M, N] = A[M, K] · B[K, N] (the weights as K x N).
  const forward = [];
  for (let l = 0; l < config.num_hidden_layers; l++) {
    forward.push([tokens, heads * headDim, dim], [tokens, kvDim, dim], [tokens, kvDim, dim]);
    forward.push([tokens, dim, heads * headDim]);
    forward.push([tokens, hidden, dim], [tokens, hidden, dim], [tokens, dim, hidden]);
    for (let h = 0; h < batch * heads; h++) forward.push([SEQ, SEQ, headDim], [SEQ, headDim, SEQ]);
  }
  forward.push([tokens, config.vocab_size, dim]);
  const all = [];
  for (const [M, N, K] of forward) {
    all.push([false, false, M, N, K]); // forward
    all.push([false, true, M, K, N]); // dA = dC · Bᵀ
    all.push([true, false, K, N, M]); // dB = Aᵀ · dC
  }
  return all;
}

function measureGemmFloor(config, batch) {
  const gemms = stepGemms(config, batch);
  const buffers = new Map();
  const calls = gemms.map(([transA, transB, M, N, K]) => {
    const key = `${+transA}${+transB} ${M}x${N}x${K}`;
    if (!buffers.has(key)) {
      buffers.set(key, {
        a: new Float32Array(M * K).fill(0.5),
        b: new Float32Array(K * N).fill(0.25),
        c: new Float32Array(M * N),
      });
    }
    const { a, b, c } = buffers.get(key);
    return () => sgemm(transA, transB, M, N, K, 1, a, transA ? M : K, b, transB ? K : N, 0, c, N);
  });
  const flops = gemms.reduce((sum, [, , M, N, K]) => sum + 2 * M * N * K, 0);
  const ms = medianMs(
    () => {
      for (const call of calls) call();
    },
    { minMs: 1000, minRuns: 3, warmup: 1 },
  );
  return { ms, flops, gflops: flops / (ms * 1e6), calls: calls.length };
}

// ---- inside the simulator's kernels: where a kernel's time goes ---------------------------------

const GEMM_OPS = new Set(['matmul', 'conv', 'linear']);

/** Rounds of the kernel timing: every program once per round, each keeping its fastest round. */
const KERNEL_ROUNDS = 3;

/**
 * Every program of the model's training plan compiled by the simulator with its op timer, run on
 * seeded fp16 inputs: ms per run and the share of it in GEMM ops (matmul, conv, linear); the rest is
 * elementwise work, softmax, moves, reductions and I/O conversion. The programs take turns over
 * KERNEL_ROUNDS rounds (at least 200 ms each per round), and each program's figures are those of
 * its fastest round: as for the steps, a busy minute on this shared machine slows the memory-bound
 * ops more than the GEMMs, and would otherwise decide a kernel's share.
 */
function measureKernels(model) {
  const graph = buildTrainingGraph(resolveModel(model), { seq: SEQ });
  const kernels = graph.plan.programs.map((entry, index) => {
    const program = entry.program ?? entry;
    const executable = compileSimProgram(program, { profileOps: true });
    const inputs = program.inputs.map((spec) => {
      const count = spec.shape.reduce((a, b) => a * b, 1);
      const bytes = new Uint8Array(count * (spec.dtype === 'fp16' ? 2 : 4));
      const halves = new Uint16Array(bytes.buffer);
      // Small seeded fp16 values (exponent 10..13, both signs): finite everywhere in the kernel.
      let state = 12345 + index;
      for (let i = 0; i < halves.length; i++) {
        state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
        halves[i] = ((state >>> 31) << 15) | ((10 + ((state >>> 8) & 3)) << 10) | (state & 0x3ff);
      }
      return bytes;
    });
    const outputs = program.outputs.map(
      (spec) => new Uint8Array(spec.shape.reduce((a, b) => a * b, 1) * (spec.dtype === 'fp16' ? 2 : 4)),
    );
    executable.run(inputs, outputs);
    const input = program.inputs[0];
    return {
      index,
      executable,
      inputs,
      outputs,
      input: `${input.name} [${input.shape.join(', ')}]`,
      best: undefined,
    };
  });
  for (let round = 0; round < KERNEL_ROUNDS; round++) {
    for (const kernel of kernels) {
      const { executable, inputs, outputs } = kernel;
      executable.opProfile().clear();
      const ms = medianMs(() => executable.run(inputs, outputs), { minMs: 200, minRuns: 3, warmup: 0 });
      if (kernel.best !== undefined && kernel.best.ms <= ms) continue;
      const byOp = [...executable.opProfile()].map(([op, time]) => [op, time.ms]);
      kernel.best = { ms, byOp };
    }
  }
  return kernels.map(({ index, input, best }) => {
    let total = 0;
    let gemm = 0;
    for (const [op, ms] of best.byOp) {
      total += ms;
      if (GEMM_OPS.has(op)) gemm += ms;
    }
    const top = [...best.byOp]
      .sort((a, b) => b[1] - a[1])
      .slice(0, 4)
      .map(([op, t]) => `${op} ${((100 * t) / total).toFixed(0)}%`)
      .join(', ');
    return { index, input, ms: best.ms, gemmShare: gemm / total, top };
  });
}

// ---- the reference: the same step in PyTorch ----------------------------------------------------

const JEMALLOC = [
  '/usr/lib/x86_64-linux-gnu/libjemalloc.so.2',
  '/usr/lib/aarch64-linux-gnu/libjemalloc.so.2',
].find(existsSync);
// Debian's OpenMP build of OpenBLAS, PyTorch's best here (the pthreads build, which installing
// libopenblas-dev makes the libblas.so.3 alternative, oversubscribes the cores with PyTorch's
// OpenMP threads: 536 against 169 ms for the stories15M step). Put first on the library path, it
// is the libblas.so.3 PyTorch loads whatever the alternative points to.
const OPENMP_OPENBLAS = [
  '/usr/lib/x86_64-linux-gnu/openblas-openmp',
  '/usr/lib/aarch64-linux-gnu/openblas-openmp',
].find((dir) => existsSync(join(dir, 'libblas.so.3')));
// biome-ignore lint/suspicious/noUndeclaredEnvVars: read by the bench alone, not by a turbo task
const PYTHON = process.env.REFBENCH_PYTHON ?? '/usr/bin/python3';

/** The core OpenBLAS names in its OPENBLAS_VERBOSE=2 output ("Core: Haswell"), if it printed one. */
const openblasCoreIn = (stderr) => /^Core: (\S+)/m.exec(stderr ?? '')?.[1];

// Whether torch imports, and which kernels its OpenBLAS (if that is its BLAS) picks on its own.
let openblas = openblasAtItsBest(undefined);
const torchProbe = (() => {
  const probe = spawnSync(PYTHON, ['-c', 'import torch; torch.ones(64, 64) @ torch.ones(64, 64)'], {
    encoding: 'utf8',
    env: { ...withoutOpenblasCore(process.env), OPENBLAS_VERBOSE: '2' },
  });
  if (probe.error !== undefined)
    return `${PYTHON} is not runnable (${probe.error.code ?? probe.error.message})`;
  if (probe.status !== 0) return `${PYTHON} cannot import torch (Debian: apt-get install python3-torch)`;
  openblas = openblasAtItsBest(openblasCoreIn(probe.stderr));
  return null;
})();

function measureTorch(config, { batch, steps }) {
  if (torchProbe !== null) return { unavailable: torchProbe };
  const env = {
    ...openblas.env,
    OMP_NUM_THREADS: String(TORCH_THREADS),
    OPENBLAS_VERBOSE: '2',
  };
  if (OPENMP_OPENBLAS !== undefined) {
    env.LD_LIBRARY_PATH = [OPENMP_OPENBLAS, env.LD_LIBRARY_PATH].filter(Boolean).join(':');
  }
  if (JEMALLOC !== undefined) {
    env.LD_PRELOAD = JEMALLOC;
    // Keep freed memory: otherwise every step's temporaries are fresh pages.
    env.MALLOC_CONF = 'dirty_decay_ms:-1,muzzy_decay_ms:-1';
  }
  const args = {
    dim: config.hidden_size,
    hidden: config.intermediate_size,
    layers: config.num_hidden_layers,
    heads: config.num_attention_heads,
    vocab: config.vocab_size,
    batch,
    seq: SEQ,
    steps: Math.max(steps, 3),
    warmup: 2,
    threads: TORCH_THREADS,
  };
  const result = spawnSync(
    PYTHON,
    [
      join(root, 'tools', 'refbench', 'train_step.py'),
      ...Object.entries(args).flatMap(([k, v]) => [`--${k}`, String(v)]),
    ],
    { env, encoding: 'utf8', maxBuffer: 1 << 20 },
  );
  if (result.status !== 0) {
    const why = (result.stderr || result.stdout || String(result.error)).trim().split('\n').slice(-1)[0];
    return { unavailable: `tools/refbench/train_step.py failed: ${why}` };
  }
  const measured = JSON.parse(result.stdout.trim().split('\n').at(-1));
  measured.environment.openblasCore = openblasCoreIn(result.stderr);
  return measured;
}

function describeTorch(environment) {
  const blas =
    environment.blasLibraries.find((p) => /openblas/.test(p)) ??
    environment.blasLibraries[0] ??
    'none loaded';
  const flavour = /openblas-openmp/.test(blas)
    ? 'OpenBLAS (OpenMP build)'
    : /openblas-pthread/.test(blas)
      ? 'OpenBLAS (pthreads build)'
      : /openblas/.test(blas)
        ? 'OpenBLAS'
        : /\/blas\//.test(blas)
          ? 'reference BLAS (netlib)'
          : blas;
  const hint = /openblas-openmp/.test(blas)
    ? ''
    : ' (PyTorch is at its best here with the OpenMP OpenBLAS: apt-get install libopenblas0-openmp)';
  return {
    short: `PyTorch ${environment.torch}, ${environment.threads} threads, ${flavour}${environment.openblasCore ? ` ${environment.openblasCore} kernels` : ''}, ${environment.ldPreload ? 'jemalloc' : 'glibc malloc'}`,
    long: `PyTorch ${environment.torch} (${PYTHON}): ${environment.threads} threads (OMP_NUM_THREADS=${environment.ompNumThreads}), CPU capability ${environment.cpuCapability}, BLAS_INFO=${environment.blasInfo}, BLAS loaded: ${environment.blasLibraries.join(', ') || 'none'} (libblas.so.3 alternative -> ${environment.libblasAlternative})${hint}, ${environment.openblasCore ? openblas.note : 'no OpenBLAS core reported'}, allocator: ${environment.ldPreload ? `jemalloc preloaded (${environment.ldPreload}, decay off)` : 'glibc malloc (apt-get install libjemalloc2 to preload jemalloc, its best here)'}`,
  };
}

// ---- the run ------------------------------------------------------------------------------------

const bridge = capabilities().hostKernels;
const gemmHow = `native sgemm (${bridge.implementation}, ${hostSimdLevel()}, ${hostThreads()} threads)`;
console.log(
  `simulator host kernels: ${bridge.implementation} (${hostSimdLevel()}, ${hostThreads()} threads); PyTorch: ${torchProbe ?? `${PYTHON}`}; jemalloc: ${JEMALLOC ?? 'not installed'}; libblas.so.3 -> ${existsSync('/usr/lib/x86_64-linux-gnu/libblas.so.3') ? realpathSync('/usr/lib/x86_64-linux-gnu/libblas.so.3') : 'absent'}`,
);
if (quick) console.log('BENCH_QUICK=1: stories110M skipped');

const rows = [];
const torchDescriptions = new Set();
for (const run of CONFIGS) {
  const both = await measureBoth(run);
  const { ours, torch } = both;
  progress(`${run.model} batch ${run.batch}: GEMM floor (${gemmHow})...`);
  const floor = measureGemmFloor(both.config, run.batch);
  const config = { model: run.model, batch: run.batch, seq: SEQ };
  const measured = {
    ...config,
    steps: run.steps,
    warmup: run.warmup,
    rounds: `ours ${both.oursRounds.join('/')} ms${both.torchRounds.length > 0 ? `, PyTorch ${both.torchRounds.join('/')} ms` : ''}`,
  };
  let reference = `PyTorch unavailable: ${torch.unavailable}`;
  if (torch.unavailable === undefined) {
    const described = describeTorch(torch.environment);
    torchDescriptions.add(described.long);
    reference = described.short;
  }
  const torchMs = torch.msPerStep;
  const withRef = (row, refValue, ratio) =>
    torch.unavailable === undefined
      ? { ...row, reference, referenceValue: refValue, ratio }
      : { ...row, reference };
  rows.push(
    withRef(
      { name: 'train step (sim)', config: measured, value: ours.ms, unit: 'ms/step' },
      torchMs,
      torchMs / ours.ms,
    ),
  );
  rows.push(
    withRef(
      { name: 'train step (sim)', config: measured, value: ours.tokensPerSecond, unit: 'tokens/s' },
      (run.batch * SEQ) / (torchMs / 1000),
      torchMs / ours.ms,
    ),
  );
  const floorRef = `GEMM floor: ${(floor.flops / 1e9).toFixed(1)} GFLOP in ${floor.calls} calls at ${floor.gflops.toFixed(0)} GFLOP/s, ${gemmHow}`;
  rows.push({
    name: 'train step (sim) vs GEMM floor',
    config,
    value: ours.ms,
    unit: 'ms/step',
    reference: floorRef,
    referenceValue: floor.ms,
    ratio: floor.ms / ours.ms,
  });
  if (torch.unavailable === undefined) {
    rows.push({
      name: 'PyTorch step vs GEMM floor',
      config,
      value: torchMs,
      unit: 'ms/step',
      reference: floorRef,
      referenceValue: floor.ms,
      ratio: floor.ms / torchMs,
    });
  }
  for (const part of ['deviceMs', 'hostMs', 'stagingMs', 'idleMs', 'optimizerMs', 'totalMs']) {
    rows.push({ name: `step profile ${part}`, config, value: ours.profile[part], unit: 'ms' });
  }
  const { hostMs, stagingMs, optimizerMs } = ours.profile;
  const parts = hostMs + stagingMs + optimizerMs;
  const share = (x) => `${((100 * x) / parts).toFixed(0)}%`;
  rows.push({
    name: 'host side of an ANE step (total - device)',
    config: {
      ...config,
      shares: `host kernels ${share(hostMs)} / staging ${share(stagingMs)} / optimizer ${share(optimizerMs)}`,
    },
    value: ours.hostSide,
    unit: 'ms/step',
  });
  rows.push({
    name: 'host work of an ANE step (host + staging + optimizer)',
    config: {
      ...config,
      hostKernelsMs: Number(hostMs.toFixed(1)),
      stagingMs: Number(stagingMs.toFixed(1)),
      optimizerMs: Number(optimizerMs.toFixed(1)),
    },
    value: parts,
    unit: 'ms/step',
  });
  const ratio =
    torchMs === undefined
      ? ''
      : `, PyTorch ${torchMs.toFixed(0)} ms (ratio ${(torchMs / ours.ms).toFixed(2)})`;
  progress(
    `${run.model} batch ${run.batch}: ${ours.ms.toFixed(0)} ms/step${ratio}, GEMM floor ${floor.ms.toFixed(0)} ms`,
  );
}

progress(`stories15M: the training plan's kernels one by one, with the simulator's op timer...`);
for (const kernel of measureKernels('stories15M')) {
  rows.push({
    name: `stories15M kernel P${kernel.index}: GEMM share of its time`,
    config: {
      model: 'stories15M',
      seq: SEQ,
      input: kernel.input,
      msPerRun: Number(kernel.ms.toFixed(2)),
      top: kernel.top,
    },
    value: 100 * kernel.gemmShare,
    unit: '%',
  });
}

console.log('');
for (const line of torchDescriptions) console.log(`reference: ${line}`);
console.log(
  'host side (total - device): the CPU work of a step outside device kernels; host kernels, staging and the optimizer partly overlap device work in the simulator, so their sum (the next row) can exceed it; shares are of that sum.',
);
console.log('');
printTable(rows);
writeResults('train', rows);
