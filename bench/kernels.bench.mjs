// `pnpm bench kernels`: ane-bridge's host kernels against references measured in the same run
// (DESIGN.md, "Numbers we hold ourselves to"):
//   - sgemm vs OpenBLAS sgemm (Debian libopenblas-dev, compiled into bench/native/reference.cc when
//     installed; "reference unavailable" otherwise), GFLOP/s, on transformer shapes;
//   - fp32<->fp16 conversion vs memcpy bandwidth on 64 MiB, GB/s counting bytes read + written,
//     plain and transposed (a 4096 x 4096 block written as its transpose, as weights are staged),
//     and a Stories110M weight staged transposed vs memcpy of its 6 MiB;
//   - AdamW over 110M parameters vs STREAM-triad bandwidth, GB/s counting 28 B/param (reads p, g,
//     m, v; writes p, m, v) against triad counted as STREAM counts fp32 (12 B/element);
// at 1 and 2 host threads, plus the pure-TS fallbacks' figures, so users see what the addon buys.
//
// The machine is shared, so each native figure and its reference are measured in alternating
// rounds (ours, reference, ours, reference, ...), each round the median of its runs, and each side
// reports its best round: both see the same machine, and a neighbour's burst slows neither side's
// best. `--quick` runs a few shapes with short rounds (a smoke run).
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { hostKernels, hostSimdLevel, setHostSimdLevel, setHostThreads } from 'ane-bridge';
import { medianMs, openblasAtItsBest, printTable, withoutOpenblasCore, writeResults } from './lib.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const quick = process.argv.includes('--quick');
const roundMs = quick ? 150 : 300;
const ROUNDS = { bandwidth: quick ? 2 : 5, gemm: quick ? 1 : 3 };
const THREADS = [1, 2];
const rows = [];

// ---- the native reference harness --------------------------------------------------------------

function compilerWorks(cxx) {
  return spawnSync(cxx, ['--version'], { encoding: 'utf8' }).status === 0;
}

/** Builds bench/native/reference.cc (with OpenBLAS when it links) into a cached temp binary. */
function buildReference() {
  // biome-ignore lint/suspicious/noUndeclaredEnvVars: CXX only picks the compiler of the bench harness
  const cxx = [process.env.CXX, 'g++', 'clang++'].filter(Boolean).find(compilerWorks);
  if (!cxx) return { binary: null, info: { openblas: false }, why: 'no C++ compiler' };
  const source = join(here, 'native', 'reference.cc');
  const hash = createHash('sha256').update(readFileSync(source)).update(cxx).digest('hex').slice(0, 12);
  const dir = join(tmpdir(), `ane-sdk-bench-kernels-${hash}`);
  mkdirSync(dir, { recursive: true });
  const flags = ['-std=c++17', '-O3', '-fno-math-errno', '-pthread'];
  const withBlas = join(dir, 'reference-openblas');
  const plain = join(dir, 'reference');
  if (!existsSync(withBlas) && !existsSync(plain)) {
    const linked = spawnSync(cxx, [...flags, '-DHAVE_OPENBLAS', '-o', withBlas, source, '-lopenblas'], {
      encoding: 'utf8',
    });
    if (linked.status !== 0) execFileSync(cxx, [...flags, '-o', plain, source]);
  }
  const binary = existsSync(withBlas) ? withBlas : plain;
  const ownPick = JSON.parse(
    execFileSync(binary, ['info'], { encoding: 'utf8', env: withoutOpenblasCore(process.env) }),
  );
  // OpenBLAS on the kernels made for this CPU (./lib.mjs says why).
  const openblas = ownPick.openblas ? openblasAtItsBest(ownPick.core) : { env: process.env, note: '' };
  const { env } = openblas;
  const info = JSON.parse(execFileSync(binary, ['info'], { encoding: 'utf8', env }));
  return {
    binary,
    info,
    env,
    note: openblas.note,
    why: info.openblas ? '' : 'libopenblas-dev is not installed',
  };
}

const reference = buildReference();

/** Median seconds per run of a reference measurement, or null without the harness. */
function referenceSeconds(args, env = reference.env) {
  if (reference.binary === null) return null;
  const out = execFileSync(reference.binary, [...args, roundMs / 1000].map(String), {
    encoding: 'utf8',
    env,
  });
  return JSON.parse(out).seconds;
}

/**
 * Best round of each side, alternating ours and the references: each function returns median
 * seconds per run (a reference may return null: unavailable). `ref` is the first reference's best,
 * `refs` all of them.
 */
function alternate(rounds, ours, ...references) {
  let bestOurs = Number.POSITIVE_INFINITY;
  const best = references.map(() => Number.POSITIVE_INFINITY);
  for (let round = 0; round < rounds; round++) {
    if (ours) bestOurs = Math.min(bestOurs, ours());
    references.forEach((ref, i) => {
      const seconds = ref ? ref() : null;
      if (seconds !== null) best[i] = Math.min(best[i], seconds);
    });
  }
  const refs = best.map((seconds) => (Number.isFinite(seconds) ? seconds : null));
  return { ours: bestOurs, ref: refs[0] ?? null, refs };
}

function oursSeconds(run, options = {}) {
  return medianMs(run, { minMs: roundMs, ...options }) / 1000;
}

const nativeSet = hostKernels.native;
const simd = hostSimdLevel();
const blasNote = reference.info.openblas
  ? `${reference.info.config.trim()}, kernel ${reference.info.core}; ${reference.note}`
  : `unavailable (${reference.why})`;
console.log(
  `host kernels: ${nativeSet ? `native (${simd})` : 'TS only (native addon not loaded)'}; OpenBLAS: ${blasNote}`,
);

function push(row) {
  rows.push(row);
  const ratio = row.ratio === undefined ? '' : `, ratio ${row.ratio.toFixed(2)}`;
  console.log(`  ${row.name} ${JSON.stringify(row.config)}: ${row.value.toFixed(1)} ${row.unit}${ratio}`);
}

/** A result row: value from seconds, against the reference when there is one. */
function row(name, config, unit, value, referenceName, referenceValue) {
  const out = { name, config, value, unit, reference: referenceName };
  if (referenceValue !== undefined) {
    out.referenceValue = referenceValue;
    out.ratio = value / referenceValue;
  }
  return out;
}

function withThreads(threads, fn) {
  setHostThreads(threads);
  try {
    return fn();
  } finally {
    setHostThreads(0);
  }
}

// ---- fp16 conversion vs memcpy ------------------------------------------------------------------

{
  const n = (64 << 20) / 4; // 64 MiB of fp32
  const src = new Float32Array(n);
  for (let i = 0; i < n; i++) src[i] = ((i % 4099) - 2049) * 0.731;
  const half = new Uint16Array(n);
  const back = new Float32Array(n);
  const bytes = 6 * n; // read 4 + write 2 (or read 2 + write 4) per element
  const side = 4096; // n = side * side: the same bytes, moved as a transpose
  const square = { rows: side, cols: side };
  const kernels = [
    ['fp32ToFp16', (k) => k.fp32ToFp16(src, half)],
    ['fp16ToFp32', (k) => k.fp16ToFp32(half, back)],
    ['fp32ToFp16Transposed', (k) => k.fp32ToFp16Transposed(src, half, square), { shape: [side, side] }],
    ['fp16ToFp32Transposed', (k) => k.fp16ToFp32Transposed(half, back, square), { shape: [side, side] }],
  ];
  const memcpyByThreads = {};
  for (const threads of THREADS) {
    for (const [name, run, extra] of kernels) {
      const measured = alternate(
        ROUNDS.bandwidth,
        nativeSet ? () => withThreads(threads, () => oursSeconds(() => run(nativeSet))) : null,
        () => referenceSeconds(['memcpy', 64 << 20, threads]),
      );
      const memcpyGBs = measured.ref === null ? undefined : (2 * (64 << 20)) / measured.ref / 1e9;
      memcpyByThreads[threads] = Math.max(memcpyByThreads[threads] ?? 0, memcpyGBs ?? 0) || undefined;
      const refName = memcpyGBs
        ? `memcpy 64 MiB (read+write), ${threads} thread(s)`
        : 'memcpy: harness unavailable';
      if (nativeSet) {
        push(
          row(
            name,
            { impl: 'native', simd, threads, elements: n, ...extra },
            'GB/s',
            bytes / measured.ours / 1e9,
            refName,
            memcpyGBs,
          ),
        );
      }
    }
  }
  for (const [name, run, extra] of kernels) {
    const seconds = oursSeconds(() => run(hostKernels.ts), { minRuns: 3 });
    const memcpyGBs = memcpyByThreads[1];
    push(
      row(
        name,
        { impl: 'ts', threads: 1, elements: n, ...extra },
        'GB/s',
        bytes / seconds / 1e9,
        'memcpy 64 MiB (read+write), 1 thread(s)',
        memcpyGBs,
      ),
    );
  }
}

// ---- a weight staged transposed (as device.load stages W [out, in] as Wᵀ) vs memcpy of its bytes --
// Stories110M's FFN weight [2048, 768] fits the L2/L3 caches, unlike the 64 MiB rows above: the
// reference is memcpy of the same 6 MiB fp32 array, in the same run.

{
  const [out, inDim] = [2048, 768];
  const n = out * inDim;
  const weight = new Float32Array(n);
  for (let i = 0; i < n; i++) weight[i] = ((i % 1021) - 510) * 0.013;
  const staged = new Uint16Array(n);
  const restored = new Float32Array(n);
  const block = { rows: out, cols: inDim };
  const inverse = { rows: inDim, cols: out };
  const kernels = [
    ['fp32ToFp16Transposed', (k) => k.fp32ToFp16Transposed(weight, staged, block)],
    ['fp16ToFp32Transposed', (k) => k.fp16ToFp32Transposed(staged, restored, inverse)],
  ];
  for (const threads of THREADS) {
    for (const [name, run] of kernels) {
      if (!nativeSet) continue;
      const measured = alternate(
        ROUNDS.bandwidth,
        () => withThreads(threads, () => oursSeconds(() => run(nativeSet))),
        () => referenceSeconds(['memcpy', 4 * n, threads]),
      );
      const memcpyGBs = measured.ref === null ? undefined : (2 * 4 * n) / measured.ref / 1e9;
      push(
        row(
          name,
          { impl: 'native', simd, threads, shape: [out, inDim], weight: 'stories110M ffn w1' },
          'GB/s',
          (6 * n) / measured.ours / 1e9,
          memcpyGBs
            ? `memcpy ${(4 * n) >> 20} MiB (read+write), ${threads} thread(s)`
            : 'memcpy: harness unavailable',
          memcpyGBs,
        ),
      );
    }
  }
}

// ---- AdamW over 110M parameters vs STREAM triad -------------------------------------------------

{
  const n = 110_000_000;
  const params = new Float32Array(n).fill(0.5);
  const grads = new Float32Array(n);
  for (let i = 0; i < n; i++) grads[i] = ((i % 1013) - 506) * 1e-4;
  const m = new Float32Array(n);
  const v = new Float32Array(n);
  const paramsFp16 = new Uint16Array(n);
  const options = {
    lr: 1e-4,
    beta1: 0.9,
    beta2: 0.999,
    eps: 1e-8,
    weightDecay: 0.1,
    step: 10,
    biasCorrection: true,
  };
  const triadElements = 1 << 25; // 3 arrays x 128 MiB, far beyond the caches
  const triadByThreads = {};
  for (const threads of THREADS) {
    for (const withHalf of [false, true]) {
      const measured = alternate(
        ROUNDS.bandwidth,
        nativeSet
          ? () =>
              withThreads(threads, () =>
                oursSeconds(() =>
                  nativeSet.adamwUpdate(params, grads, m, v, options, withHalf ? paramsFp16 : undefined),
                ),
              )
          : null,
        () => referenceSeconds(['triad', triadElements, threads]),
        withHalf ? null : () => referenceSeconds(['adamw', n, threads]),
      );
      const triadGBs = measured.ref === null ? undefined : (12 * triadElements) / measured.ref / 1e9;
      triadByThreads[threads] = Math.max(triadByThreads[threads] ?? 0, triadGBs ?? 0) || undefined;
      if (!nativeSet) continue;
      const bytesPerParam = withHalf ? 30 : 28;
      push(
        row(
          withHalf ? 'adamwUpdate + fp16 copy' : 'adamwUpdate',
          {
            impl: 'native',
            simd,
            threads,
            params: n,
            bytesPerParam,
            msPerStep: +(measured.ours * 1000).toFixed(1),
          },
          'GB/s',
          (bytesPerParam * n) / measured.ours / 1e9,
          triadGBs ? `STREAM triad (12 B/element), ${threads} thread(s)` : 'triad: harness unavailable',
          triadGBs,
        ),
      );
      const plainSeconds = measured.refs[1];
      if (!withHalf && plainSeconds) {
        push(
          row(
            'adamwUpdate vs plain C',
            { impl: 'native', simd, threads, params: n, bytesPerParam: 28 },
            'GB/s',
            (28 * n) / measured.ours / 1e9,
            `plain fused C AdamW loop (-O3 -fno-math-errno), ${threads} thread(s)`,
            (28 * n) / plainSeconds / 1e9,
          ),
        );
      }
    }
  }
  const seconds = oursSeconds(() => hostKernels.ts.adamwUpdate(params, grads, m, v, options), {
    minRuns: 3,
    warmup: 1,
  });
  push(
    row(
      'adamwUpdate',
      { impl: 'ts', threads: 1, params: n, bytesPerParam: 28, msPerStep: +(seconds * 1000).toFixed(1) },
      'GB/s',
      (28 * n) / seconds / 1e9,
      'STREAM triad (12 B/element), 1 thread(s)',
      triadByThreads[1],
    ),
  );
}

// ---- GEMM vs OpenBLAS ---------------------------------------------------------------------------

{
  const dims = [288, 768, 2048, 3072];
  const shapes = [];
  // Both threads: tokens x (K, N) over the transformer widths.
  for (const M of quick ? [256] : [256, 1024]) {
    for (const K of dims) for (const N of dims) shapes.push({ M, N, K, trans: 'NN', threads: 2 });
  }
  // Single thread: the square layer shapes.
  for (const d of dims) shapes.push({ M: 256, N: d, K: d, trans: 'NN', threads: 1 });
  // The other transposes (dW = dY X^T is NT; dX = W^T dY is TN), and the logits shape.
  for (const threads of THREADS) {
    shapes.push({ M: 256, N: 768, K: 768, trans: 'TN', threads });
    shapes.push({ M: 256, N: 768, K: 768, trans: 'NT', threads });
    shapes.push({ M: 768, N: 768, K: 1024, trans: 'NT', threads });
    shapes.push({ M: 256, N: 32000, K: 768, trans: 'NN', threads });
  }
  const chosen = quick ? shapes.filter((s) => s.M === 256 && (s.N === 768 || s.N === 32000)) : shapes;
  for (const shape of chosen) measureGemm(shape, simd);
  // The AVX2+FMA path too on AVX-512 machines (what CPUs without AVX-512 get), against OpenBLAS
  // told to run its AVX2 (Haswell) kernels: like for like.
  if (nativeSet && simd === 'avx512' && setHostSimdLevel('avx2-fma')) {
    try {
      for (const shape of [
        { M: 256, N: 768, K: 768, trans: 'NN', threads: 1 },
        { M: 256, N: 768, K: 768, trans: 'NN', threads: 2 },
        { M: 1024, N: 3072, K: 768, trans: 'NN', threads: 2 },
        { M: 256, N: 32000, K: 768, trans: 'NN', threads: 2 },
      ].slice(0, quick ? 1 : 4)) {
        measureGemm(shape, 'avx2-fma', false, 'Haswell');
      }
    } finally {
      setHostSimdLevel(simd);
    }
  }
}

/** `openblasCore`: the OpenBLAS kernels of the reference when not its best for this CPU. */
function measureGemm({ M, N, K, trans, threads }, level, withTs = true, openblasCore = undefined) {
  const transA = trans[0] === 'T';
  const transB = trans[1] === 'T';
  const A = new Float32Array(M * K).map((_, i) => ((i * 7919) % 1000) / 1000 - 0.5);
  const B = new Float32Array(K * N).map((_, i) => ((i * 104729) % 1000) / 1000 - 0.5);
  const C = new Float32Array(M * N);
  const lda = transA ? M : K;
  const ldb = transB ? K : N;
  const flop = 2 * M * N * K;
  const measured = alternate(
    ROUNDS.gemm,
    nativeSet
      ? () =>
          withThreads(threads, () =>
            oursSeconds(() => nativeSet.sgemm(transA, transB, M, N, K, 1, A, lda, B, ldb, 0, C, N)),
          )
      : null,
    reference.info.openblas
      ? () =>
          referenceSeconds(
            ['sgemm', +transA, +transB, M, N, K, threads],
            openblasCore === undefined
              ? reference.env
              : { ...reference.env, OPENBLAS_CORETYPE: openblasCore },
          )
      : null,
  );
  const blas = measured.ref === null ? undefined : flop / measured.ref / 1e9;
  const refName = blas
    ? `OpenBLAS sgemm${openblasCore === undefined ? '' : ` (its ${openblasCore} kernels)`}, ${threads} thread(s)`
    : `OpenBLAS sgemm: reference unavailable (${reference.why || 'no harness'})`;
  if (nativeSet) {
    push(
      row(
        'sgemm',
        { impl: 'native', simd: level, M, N, K, trans, threads },
        'GFLOP/s',
        flop / measured.ours / 1e9,
        refName,
        blas,
      ),
    );
  }
  if (withTs && threads === 1 && M === 256 && N <= 768 && K <= 768) {
    const seconds = oursSeconds(
      () => hostKernels.ts.sgemm(transA, transB, M, N, K, 1, A, lda, B, ldb, 0, C, N),
      {
        minRuns: 3,
      },
    );
    push(
      row(
        'sgemm',
        { impl: 'ts', M, N, K, trans, threads: 1 },
        'GFLOP/s',
        flop / seconds / 1e9,
        refName,
        blas,
      ),
    );
  }
}

console.log('');
printTable(rows);
writeResults('kernels', rows);
