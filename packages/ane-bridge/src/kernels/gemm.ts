/**
 * GEMM: the TS twin is the simulator's `sgemm` (src/sim/gemm.ts, BLAS signature, row-major,
 * float64 accumulation per K block), so there is one readable GEMM in the package. This module
 * adds the argument check that the TS twin and the native path both run before touching memory.
 */
import { checkSgemmArguments as checkSgemmShapes, sgemm as simSgemm } from '../sim/gemm';
import {
  checkBoolean,
  checkFloatsOrHalves,
  checkNoOverlap,
  checkNumber,
  checkTypedArray,
  isUint16Array,
} from './checks';
import { fp16ToFp32 } from './fp16';
import type { SgemmArgs } from './types';

/**
 * The shared check of sgemm: the kinds of every argument, the shapes and leading dimensions (the
 * simulator's check), and that C shares no memory with A or B (GEMM reads them while writing C).
 */
export function checkSgemmArguments(...args: SgemmArgs): void {
  const [transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc] = args;
  checkBoolean('sgemm', 'transA', transA);
  checkBoolean('sgemm', 'transB', transB);
  checkFloatsOrHalves('sgemm', 'A', A);
  checkFloatsOrHalves('sgemm', 'B', B);
  checkTypedArray('sgemm', 'C', C, 'Float32Array');
  checkNumber('sgemm', 'alpha', alpha);
  checkNumber('sgemm', 'beta', beta);
  for (const [name, value] of [
    ['M', M],
    ['N', N],
    ['K', K],
    ['lda', lda],
    ['ldb', ldb],
    ['ldc', ldc],
  ] as const) {
    checkNumber('sgemm', name, value);
  }
  checkSgemmShapes(transA, transB, M, N, K, A, lda, B, ldb, C, ldc);
  if (M > 0 && N > 0) {
    checkNoOverlap('sgemm', 'C', C, 'A', A);
    checkNoOverlap('sgemm', 'C', C, 'B', B);
  }
}

/**
 * C = alpha * op(A) * op(B) + beta * C, row-major with leading dimensions (strided views):
 *   A: [M, K] with row stride lda >= K   (transA: A is [K, M], lda >= M)
 *   B: [K, N] with row stride ldb >= N   (transB: B is [N, K], ldb >= K)
 *   C: [M, N] with row stride ldc >= N
 * beta = 0 writes C without reading it; alpha = 0 or K = 0 only scales C. C must not share memory
 * with A or B. A or B may be fp16 bits (a Uint16Array), read as the fp32 values they widen to
 * (exactly), so the result has the bits of the call on the widened operands.
 */
export function sgemmTs(...args: SgemmArgs): void {
  checkSgemmArguments(...args);
  const [transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc] = args;
  simSgemm(transA, transB, M, N, K, alpha, widened(A), lda, widened(B), ldb, beta, C, ldc);
}

function widened(operand: Float32Array | Uint16Array): Float32Array {
  if (!isUint16Array(operand)) return operand;
  const values = new Float32Array(operand.length);
  fp16ToFp32(operand, values);
  return values;
}
