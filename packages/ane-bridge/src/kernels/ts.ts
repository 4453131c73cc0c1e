/** The pure-TS host kernels as one HostKernelSet: the fallback, and the reference in tests. */
import { causalSoftmaxBackward, causalSoftmaxForward } from './causal-softmax';
import {
  softmaxCrossEntropyBackward,
  softmaxCrossEntropyForward,
  softmaxCrossEntropyGrad,
  softmaxCrossEntropyStats,
} from './cross-entropy';
import { embeddingBackward, embeddingForward } from './embedding';
import {
  fp16ToFp32,
  fp16ToFp32Strided,
  fp16ToFp32Transposed,
  fp32ToFp16,
  fp32ToFp16Strided,
  fp32ToFp16Transposed,
} from './fp16';
import { sgemmTs } from './gemm';
import { rmsnormBackward, rmsnormForward } from './norms';
import { adamUpdate, adamwUpdate, lionUpdate, sgdUpdate, sumOfSquares } from './optimizers';
import type { AsyncHostKernels, HostKernelName, HostKernelSet, HostKernels } from './types';

const sync: HostKernels = {
  sgemm: sgemmTs,
  fp32ToFp16,
  fp16ToFp32,
  fp32ToFp16Strided,
  fp16ToFp32Strided,
  fp32ToFp16Transposed,
  fp16ToFp32Transposed,
  sgdUpdate,
  adamUpdate,
  adamwUpdate,
  lionUpdate,
  sumOfSquares,
  rmsnormForward,
  rmsnormBackward,
  softmaxCrossEntropyForward,
  softmaxCrossEntropyBackward,
  softmaxCrossEntropyStats,
  softmaxCrossEntropyGrad,
  embeddingForward,
  embeddingBackward,
  causalSoftmaxForward,
  causalSoftmaxBackward,
};

/** Async twins that run the sync kernel at once and settle (errors reject, never throw). */
export function settledAsync(kernels: HostKernels): AsyncHostKernels {
  const entries = (Object.keys(kernels) as HostKernelName[]).map((name) => {
    const fn = kernels[name] as (...args: unknown[]) => unknown;
    const run = async (...args: unknown[]) => fn(...args);
    return [`${name}Async`, run] as const;
  });
  return Object.fromEntries(entries) as unknown as AsyncHostKernels;
}

const tsAsync = settledAsync(sync);

export const tsKernels: HostKernelSet = Object.freeze({
  implementation: 'ts' as const,
  ...sync,
  ...tsAsync,
  background: tsAsync,
});
