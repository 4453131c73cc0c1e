import { describe, expect, it } from 'vitest';
import { sgemm } from './gemm';

// Deterministic values in [-1, 1) (mulberry32), so failures reproduce.
function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 31 - 1;
  };
}

function randomArray(length: number, random: () => number): Float32Array {
  const out = new Float32Array(length);
  for (let i = 0; i < length; i++) out[i] = random();
  return out;
}

// The textbook triple loop in float64, straight from the definition of op(A) and op(B).
function naiveGemm(
  transA: boolean,
  transB: boolean,
  M: number,
  N: number,
  K: number,
  alpha: number,
  A: Float32Array,
  lda: number,
  B: Float32Array,
  ldb: number,
  beta: number,
  C: Float32Array,
  ldc: number,
): Float64Array {
  const out = Float64Array.from(C);
  for (let i = 0; i < M; i++) {
    for (let j = 0; j < N; j++) {
      let sum = 0;
      for (let p = 0; p < K; p++) {
        const a = transA ? A[p * lda + i]! : A[i * lda + p]!;
        const b = transB ? B[j * ldb + p]! : B[p * ldb + j]!;
        sum += a * b;
      }
      out[i * ldc + j] = alpha * sum + (beta === 0 ? 0 : beta * C[i * ldc + j]!);
    }
  }
  return out;
}

interface Case {
  transA: boolean;
  transB: boolean;
  M: number;
  N: number;
  K: number;
  alpha: number;
  beta: number;
  padA: number;
  padB: number;
  padC: number;
}

function runCase(c: Case, seed: number): void {
  const random = seededRandom(seed);
  const lda = (c.transA ? c.M : c.K) + c.padA;
  const ldb = (c.transB ? c.K : c.N) + c.padB;
  const ldc = c.N + c.padC;
  const A = randomArray((c.transA ? c.K : c.M) * lda, random);
  const B = randomArray((c.transB ? c.N : c.K) * ldb, random);
  const C = randomArray(c.M * ldc, random);
  const expected = naiveGemm(c.transA, c.transB, c.M, c.N, c.K, c.alpha, A, lda, B, ldb, c.beta, C, ldc);
  sgemm(c.transA, c.transB, c.M, c.N, c.K, c.alpha, A, lda, B, ldb, c.beta, C, ldc);
  for (let i = 0; i < C.length; i++) {
    const tolerance = 1e-6 * (Math.abs(expected[i]!) + Math.sqrt(c.K + 1));
    if (!(Math.abs(C[i]! - expected[i]!) <= tolerance)) {
      throw new Error(`${JSON.stringify(c)} element ${i}: got ${C[i]}, expected ${expected[i]}`);
    }
  }
}

describe('sgemm', () => {
  const transposes = [
    [false, false],
    [true, false],
    [false, true],
    [true, true],
  ] as const;

  it('matches a float64 triple loop for every transpose and odd tails up to 67', () => {
    const sizes = [0, 1, 2, 3, 4, 5, 7, 8, 13, 17, 31, 33, 64, 67];
    let seed = 1;
    for (const [transA, transB] of transposes) {
      for (const M of sizes) {
        for (const N of [0, 1, 5, 16, 67]) {
          for (const K of [0, 1, 3, 33, 67]) {
            runCase({ transA, transB, M, N, K, alpha: 1, beta: 0, padA: 0, padB: 0, padC: 0 }, seed++);
          }
        }
      }
    }
  });

  it('applies alpha and beta, and leading dimensions larger than the rows', () => {
    let seed = 1000;
    for (const [transA, transB] of transposes) {
      for (const [alpha, beta] of [
        [1, 1],
        [0.5, -2],
        [-1.25, 0],
        [0, 0.75],
        [2, 1],
      ] as const) {
        runCase({ transA, transB, M: 37, N: 29, K: 41, alpha, beta, padA: 3, padB: 5, padC: 7 }, seed++);
      }
    }
  });

  it('handles blocks larger than one cache block in every dimension', () => {
    runCase(
      { transA: false, transB: false, M: 131, N: 1030, K: 530, alpha: 1, beta: 0, padA: 0, padB: 0, padC: 0 },
      7,
    );
    runCase(
      { transA: true, transB: true, M: 67, N: 1029, K: 515, alpha: 1, beta: 1, padA: 1, padB: 2, padC: 3 },
      8,
    );
  });

  it('with beta = 0 overwrites C without reading it', () => {
    const A = Float32Array.of(1, 2);
    const B = Float32Array.of(3, 4);
    const C = Float32Array.of(Number.NaN);
    sgemm(false, false, 1, 1, 2, 1, A, 2, B, 1, 0, C, 1);
    expect(C[0]).toBe(11);
  });

  it('with K = 0 only scales C by beta', () => {
    const C = Float32Array.of(1, 2, 3, 4);
    sgemm(false, false, 2, 2, 0, 1, new Float32Array(0), 1, new Float32Array(0), 2, 3, C, 2);
    expect([...C]).toEqual([3, 6, 9, 12]);
  });

  it('leaves C untouched outside the M x N window of a strided C', () => {
    const A = Float32Array.of(1, 1);
    const B = Float32Array.of(1, 1);
    const C = Float32Array.of(0, -7, 0, -7);
    sgemm(false, false, 2, 1, 1, 1, A, 1, B, 1, 0, C, 2);
    expect([...C]).toEqual([1, -7, 1, -7]);
  });

  it('accumulates a dot product once, not per add', () => {
    // 1 + 256 products of 2^-24: rounding each partial sum to fp32 would lose every 2^-24
    // (1 + 2^-24 is a tie that rounds back to 1); one rounding of the exact sum keeps 2^-16.
    const K = 257;
    const A = new Float32Array(K).fill(2 ** -12);
    A[0] = 1;
    const B = new Float32Array(K).fill(2 ** -12);
    B[0] = 1;
    const C = new Float32Array(1);
    sgemm(false, false, 1, 1, K, 1, A, K, B, 1, 0, C, 1);
    expect(C[0]).toBe(1 + 256 * 2 ** -24);
  });

  it('rejects leading dimensions that are too small', () => {
    const A = new Float32Array(6);
    expect(() => sgemm(false, false, 2, 3, 3, 1, A, 2, A, 3, 0, A, 3)).toThrow(RangeError);
  });
});
