/**
 * GEMM: the TS twin is the simulator's `sgemm` (src/sim/gemm.ts, BLAS signature, row-major,
 * float64 accumulation per K block), so there is one readable GEMM in the package. This module
 * adds the argument checks the native path runs before handing pointers to C++.
 */
import { sgemm as simSgemm } from '../sim/gemm';

/**
 * C = alpha * op(A) * op(B) + beta * C, row-major with leading dimensions (strided views):
 *   A: [M, K] with row stride lda >= K   (transA: A is [K, M], lda >= M)
 *   B: [K, N] with row stride ldb >= N   (transB: B is [N, K], ldb >= K)
 *   C: [M, N] with row stride ldc >= N
 * beta = 0 writes C without reading it; alpha = 0 or K = 0 only scales C.
 */
export const sgemmTs: (
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
) => void = simSgemm;

function checkDimension(name: string, value: number): void {
  if (!Number.isInteger(value) || value < 0) {
    throw new RangeError(`sgemm: ${name} = ${value} must be an integer >= 0`);
  }
}

/** The checks of the TS twin, with the same messages, for the native path. */
export function checkSgemmArguments(
  transA: boolean,
  transB: boolean,
  M: number,
  N: number,
  K: number,
  A: Float32Array,
  lda: number,
  B: Float32Array,
  ldb: number,
  C: Float32Array,
  ldc: number,
): void {
  checkDimension('M', M);
  checkDimension('N', N);
  checkDimension('K', K);
  for (const [name, value] of [
    ['lda', lda],
    ['ldb', ldb],
    ['ldc', ldc],
  ] as const) {
    if (!Number.isInteger(value) || value < 0)
      throw new RangeError(`sgemm: ${name} = ${value} must be an integer >= 0`);
  }
  if (M === 0 || N === 0) return;
  const aRows = transA ? K : M;
  const aCols = transA ? M : K;
  const bRows = transB ? N : K;
  const bCols = transB ? K : N;
  if (K > 0) {
    if (lda < Math.max(1, aCols)) throw new RangeError(`sgemm: lda = ${lda} < ${aCols}`);
    if (ldb < Math.max(1, bCols)) throw new RangeError(`sgemm: ldb = ${ldb} < ${bCols}`);
    if (A.length < (aRows - 1) * lda + aCols)
      throw new RangeError(`sgemm: A holds ${A.length} elements, too few`);
    if (B.length < (bRows - 1) * ldb + bCols)
      throw new RangeError(`sgemm: B holds ${B.length} elements, too few`);
  }
  if (ldc < N) throw new RangeError(`sgemm: ldc = ${ldc} < N = ${N}`);
  if (C.length < (M - 1) * ldc + N) throw new RangeError(`sgemm: C holds ${C.length} elements, too few`);
}
