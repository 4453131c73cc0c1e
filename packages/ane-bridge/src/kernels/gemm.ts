/**
 * GEMM: the TS twin is the simulator's `sgemm` (src/sim/gemm.ts, BLAS signature, row-major,
 * float64 accumulation per K block), so there is one readable GEMM in the package. This module
 * adds the argument checks the native path runs before handing pointers to C++.
 */
import { checkSgemmArguments, sgemm as simSgemm } from '../sim/gemm';
import type { SgemmArgs } from './types';

export { checkSgemmArguments };

/**
 * C = alpha * op(A) * op(B) + beta * C, row-major with leading dimensions (strided views):
 *   A: [M, K] with row stride lda >= K   (transA: A is [K, M], lda >= M)
 *   B: [K, N] with row stride ldb >= N   (transB: B is [N, K], ldb >= K)
 *   C: [M, N] with row stride ldc >= N
 * beta = 0 writes C without reading it; alpha = 0 or K = 0 only scales C.
 */
export const sgemmTs: (...args: SgemmArgs) => void = simSgemm;
