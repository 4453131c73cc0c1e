import { describe, expect, it } from 'vitest';
import { randomArray, rng, variants, within } from './kernels.test-helper';
import type { HostKernelSet } from './types';

interface Problem {
  transA: boolean;
  transB: boolean;
  M: number;
  N: number;
  K: number;
  alpha: number;
  beta: number;
  /** Extra elements per row beyond the minimum leading dimension (strided views). */
  pad: number;
}

interface Operands {
  A: Float32Array;
  lda: number;
  B: Float32Array;
  ldb: number;
  C: Float32Array;
  ldc: number;
}

const SENTINEL = -12345.5;

function makeOperands(p: Problem, random: () => number): Operands {
  const aRows = p.transA ? p.K : p.M;
  const aCols = p.transA ? p.M : p.K;
  const bRows = p.transB ? p.N : p.K;
  const bCols = p.transB ? p.K : p.N;
  const lda = Math.max(1, aCols + p.pad);
  const ldb = Math.max(1, bCols + p.pad);
  const ldc = Math.max(1, p.N + p.pad);
  // Padding holds NaN: a kernel that reads it poisons C.
  const fill = (rows: number, cols: number, ld: number, padValue: number) => {
    const out = new Float32Array(Math.max(0, rows * ld)).fill(padValue);
    for (let r = 0; r < rows; r++) out.set(randomArray(cols, random), r * ld);
    return out;
  };
  return {
    A: fill(aRows, aCols, lda, Number.NaN),
    lda,
    B: fill(bRows, bCols, ldb, Number.NaN),
    ldb,
    C: fill(p.M, p.N, ldc, SENTINEL),
    ldc,
  };
}

/** float64 reference and an error bound per element (fp32 accumulation over K terms). */
function reference(p: Problem, o: Operands): { value: Float64Array; bound: Float64Array } {
  const value = new Float64Array(o.C.length);
  const bound = new Float64Array(o.C.length);
  for (let i = 0; i < p.M; i++) {
    for (let j = 0; j < p.N; j++) {
      let sum = 0;
      let magnitude = 0;
      for (let k = 0; k < p.K; k++) {
        const a = o.A[p.transA ? k * o.lda + i : i * o.lda + k] as number;
        const b = o.B[p.transB ? j * o.ldb + k : k * o.ldb + j] as number;
        sum += a * b;
        magnitude += Math.abs(a * b);
      }
      const c = o.C[i * o.ldc + j] as number;
      const scaled = p.beta === 0 ? 0 : p.beta * c;
      value[i * o.ldc + j] = p.alpha * sum + scaled;
      bound[i * o.ldc + j] =
        (p.K + 4) * 2 ** -23 * Math.abs(p.alpha) * magnitude + 2 ** -22 * Math.abs(scaled) + 1e-30;
    }
  }
  return { value, bound };
}

function run(k: HostKernelSet, p: Problem, o: Operands): Float32Array {
  const C = o.C.slice();
  k.sgemm(p.transA, p.transB, p.M, p.N, p.K, p.alpha, o.A, o.lda, o.B, o.ldb, p.beta, C, o.ldc);
  return C;
}

function check(label: string, p: Problem, o: Operands, C: Float32Array): void {
  const { value, bound } = reference(p, o);
  for (let i = 0; i < p.M; i++) {
    for (let j = 0; j < o.ldc; j++) {
      const at = i * o.ldc + j;
      if (at >= C.length) break;
      const got = C[at] as number;
      if (j >= p.N) {
        if (got !== SENTINEL) throw new Error(`${label}: wrote C[${i}][${j}] past N (ldc padding)`);
        continue;
      }
      const expected = value[at] as number;
      if (!(Math.abs(got - expected) <= (bound[at] as number))) {
        throw new Error(
          `${label}: C[${i}][${j}] = ${got}, expected ${expected} ± ${bound[at]} (${JSON.stringify(p)})`,
        );
      }
    }
  }
}

const TRANSPOSES = [
  [false, false],
  [true, false],
  [false, true],
  [true, true],
] as const;

function problems(): Problem[] {
  const list: Problem[] = [];
  const random = rng(77);
  const pick = <T>(xs: readonly T[]) => xs[Math.floor(random() * xs.length)] as T;
  for (const [transA, transB] of TRANSPOSES) {
    // Zero and unit sizes, each dimension alone through the vector tails 1..67.
    for (const [M, N, K] of [
      [0, 5, 5],
      [5, 0, 5],
      [5, 5, 0],
      [1, 1, 1],
      [1, 67, 1],
      [67, 1, 3],
    ]) {
      list.push({
        transA,
        transB,
        M: M as number,
        N: N as number,
        K: K as number,
        alpha: 1,
        beta: 0,
        pad: 0,
      });
    }
    for (let size = 1; size <= 67; size++) {
      list.push({ transA, transB, M: size, N: 13, K: 9, alpha: 1, beta: 0, pad: 1 });
      list.push({ transA, transB, M: 7, N: size, K: 5, alpha: -0.5, beta: 0.25, pad: 2 });
      list.push({ transA, transB, M: 6, N: 17, K: size, alpha: 2, beta: 1, pad: 0 });
    }
    // Past every cache block (MC 192, KC 384, NC 4096) and across the thread split.
    list.push({ transA, transB, M: 203, N: 97, K: 801, alpha: 1, beta: 0, pad: 3 });
    list.push({ transA, transB, M: 3, N: 4133, K: 5, alpha: 1.5, beta: -1, pad: 1 });
    // Whole micro-tiles in M and N, K a multiple of the 8-wide packing transposes and not.
    list.push({ transA, transB, M: 24, N: 64, K: 16, alpha: 1, beta: 0, pad: 1 });
    list.push({ transA, transB, M: 12, N: 96, K: 19, alpha: 1, beta: 0.5, pad: 0 });
    // Parallel and split across M (43 row panels share out more evenly than 9 column panels).
    list.push({ transA, transB, M: 256, N: 288, K: 64, alpha: 1, beta: 0, pad: 2 });
    list.push({
      transA,
      transB,
      M: 131,
      N: 300,
      K: 77,
      alpha: pick([1, -1, 0.5]),
      beta: pick([0, 1, 0.5]),
      pad: 0,
    });
  }
  return list;
}

describe.each(variants().map((v) => [v.name, v] as const))('sgemm: %s', (_name, variant) => {
  it('agrees with float64 on all four transposes, edge sizes, strides and alpha/beta', () => {
    const random = rng(1);
    within(variant, (k) => {
      for (const p of problems()) {
        const o = makeOperands(p, random);
        check(variant.name, p, o, run(k, p, o));
      }
    });
  });

  it('beta = 0 ignores NaN in C; alpha = 0 and K = 0 only scale C', () => {
    within(variant, (k) => {
      const M = 9;
      const N = 19;
      const K = 11;
      const A = randomArray(M * K, rng(2));
      const B = randomArray(K * N, rng(3));
      const C = new Float32Array(M * N).fill(Number.NaN);
      k.sgemm(false, false, M, N, K, 1, A, K, B, N, 0, C, N);
      expect(C.every(Number.isFinite)).toBe(true);
      const poisoned = A.slice().fill(Number.NaN);
      const C2 = new Float32Array(M * N).fill(2);
      k.sgemm(false, false, M, N, K, 0, poisoned, K, B, N, 3, C2, N);
      expect(C2.every((x) => x === 6)).toBe(true);
      const C3 = new Float32Array(M * N).fill(Number.NaN);
      k.sgemm(false, false, M, N, 0, 1, new Float32Array(0), 1, new Float32Array(0), 1, 0, C3, N);
      expect(C3.every((x) => x === 0)).toBe(true);
    });
  });

  it('K = 0 scales a long vector and a tall matrix (split over threads) element by element', () => {
    within(variant, (k) => {
      for (const [M, N, ldc] of [
        [1, 200_003, 200_003],
        [1_001, 131, 140],
      ] as const) {
        const C = randomArray(M * ldc, rng(6));
        C[5] = -0;
        C[7] = Number.POSITIVE_INFINITY;
        C[9] = Number.NaN;
        const before = C.slice();
        for (const beta of [0.5, -3, 0]) {
          const out = before.slice();
          k.sgemm(false, false, M, N, 0, 1, new Float32Array(0), 1, new Float32Array(0), 1, beta, out, ldc);
          for (let i = 0; i < M; i++)
            for (let j = 0; j < ldc; j++) {
              const at = i * ldc + j;
              const expected = j >= N ? before[at]! : beta === 0 ? 0 : Math.fround(before[at]! * beta);
              if (!Object.is(out[at], expected))
                expect(out[at], `${M}x${N} beta ${beta} at ${at}`).toBe(expected);
            }
        }
      }
    });
  });

  it('propagates NaN and ±inf from A and B to the rows and columns they touch', () => {
    within(variant, (k) => {
      const M = 20;
      const N = 40;
      const K = 30;
      const A = randomArray(M * K, rng(4));
      const B = randomArray(K * N, rng(5));
      A[3 * K + 7] = Number.NaN; // row 3 of C
      B[2 * N + 11] = Number.POSITIVE_INFINITY; // column 11 of C (inf or NaN from inf*0)
      A[5 * K + 2] = 0;
      const C = new Float32Array(M * N);
      k.sgemm(false, false, M, N, K, 1, A, K, B, N, 0, C, N);
      for (let i = 0; i < M; i++) {
        for (let j = 0; j < N; j++) {
          const c = C[i * N + j] as number;
          if (i === 3) expect(c).toBeNaN();
          else if (j === 11) expect(Number.isFinite(c)).toBe(false);
          else expect(Number.isFinite(c)).toBe(true);
        }
      }
    });
  });

  it('rejects bad shapes and short arrays with RangeErrors', () => {
    within(variant, (k) => {
      // A [2, 3], B [3, 3], C [2, 3]
      const a = new Float32Array(6);
      const b = new Float32Array(9);
      const c = new Float32Array(6);
      expect(() => k.sgemm(false, false, 2, 3, 3, 1, a, 2, b, 3, 0, c, 3)).toThrow(/lda = 2 < 3/);
      expect(() => k.sgemm(false, false, 2, 3, 3, 1, a, 3, b, 3, 0, new Float32Array(5), 3)).toThrow(
        /C holds 5/,
      );
      expect(() => k.sgemm(false, false, -1, 3, 3, 1, a, 3, b, 3, 0, c, 3)).toThrow(/M = -1/);
      expect(() => k.sgemm(false, true, 2, 3, 3, 1, a, 3, new Float32Array(8), 3, 0, c, 3)).toThrow(
        /B holds 8/,
      );
      expect(() => k.sgemm(true, false, 2, 3, 3, 1, a, 1, b, 3, 0, c, 3)).toThrow(/lda = 1 < 2/);
    });
  });

  it('reads fp16 operands (Uint16Array) as the fp32 values they widen to: the same bits, async too', async () => {
    const random = rng(10);
    const restore = variant.enter();
    try {
      const k = variant.kernels;
      for (const p of problems().slice(0, 12)) {
        const o = makeOperands(p, random);
        // Operands on the fp16 grid, as bits and as the fp32 values they widen to.
        const halfA = new Uint16Array(o.A.length);
        const halfB = new Uint16Array(o.B.length);
        k.fp32ToFp16(o.A, halfA);
        k.fp32ToFp16(o.B, halfB);
        const A = new Float32Array(o.A.length);
        const B = new Float32Array(o.B.length);
        k.fp16ToFp32(halfA, A);
        k.fp16ToFp32(halfB, B);
        const { transA, transB, M, N, K, alpha, beta } = p;
        const want = o.C.slice();
        k.sgemm(transA, transB, M, N, K, alpha, A, o.lda, B, o.ldb, beta, want, o.ldc);
        for (const [a, b] of [
          [halfA, B],
          [A, halfB],
          [halfA, halfB],
        ] as const) {
          const C = o.C.slice();
          k.sgemm(transA, transB, M, N, K, alpha, a, o.lda, b, o.ldb, beta, C, o.ldc);
          expect(C, `${a.constructor.name} x ${b.constructor.name}`).toEqual(want);
        }
        const C = o.C.slice();
        await k.sgemmAsync(transA, transB, M, N, K, alpha, halfA, o.lda, halfB, o.ldb, beta, C, o.ldc);
        expect(C, 'async').toEqual(want);
      }
    } finally {
      restore();
    }
  });

  it('sgemmAsync computes the same product off the JS thread', async () => {
    const random = rng(9);
    const p: Problem = { transA: false, transB: true, M: 64, N: 96, K: 200, alpha: 1, beta: 0, pad: 0 };
    const o = makeOperands(p, random);
    const restore = variant.enter();
    try {
      const C = o.C.slice();
      await variant.kernels.sgemmAsync(false, true, p.M, p.N, p.K, 1, o.A, o.lda, o.B, o.ldb, 0, C, o.ldc);
      check(`${variant.name} async`, p, o, C);
    } finally {
      restore();
    }
  });
});
