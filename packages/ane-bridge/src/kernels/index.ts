/**
 * Host kernels: every entry point runs the native addon's kernel when the addon is loaded and its
 * pure-TS twin otherwise (ANE_BRIDGE_FORCE_TS=1 forces the twins). `hostKernels.ts` and
 * `hostKernels.native` pick one explicitly (tests, benchmarks).
 */
import { nativeAddon, type SimdLevel } from '../native/loader';
import { createNativeKernels } from './native';
import { tsKernels } from './ts';
import type { AsyncHostKernels, HostKernelSet, HostKernels } from './types';

export { HostKernelBufferError } from './checks';
export type { Fp16Options, StridedBlock } from './fp16';
export { fp16BitsToFp32, fp32ToFp16Bits } from './fp16';
export type { AdamOptions, AdamwOptions, GradScaleOption, LionOptions, SgdOptions } from './optimizers';
export { SGD_ADD } from './optimizers';
export type { AsyncHostKernels, HostKernelName, HostKernelSet, HostKernels } from './types';

let nativeSet: HostKernelSet | null | undefined;

function loadNativeSet(): HostKernelSet | null {
  if (nativeSet === undefined) {
    const bindings = nativeAddon().addon?.kernels;
    nativeSet = bindings === undefined ? null : createNativeKernels(bindings);
  }
  return nativeSet;
}

/** The implementations: `ts` always, `native` when the addon is loaded, `active` the one in use. */
export const hostKernels: {
  readonly ts: HostKernelSet;
  readonly native: HostKernelSet | null;
  readonly active: HostKernelSet;
} = {
  ts: tsKernels,
  get native() {
    return loadNativeSet();
  },
  get active() {
    return loadNativeSet() ?? tsKernels;
  },
};

function active(): HostKernelSet {
  return loadNativeSet() ?? tsKernels;
}

// ---- the dispatching entry points (synchronous) -------------------------------------------------

export const sgemm: HostKernels['sgemm'] = (...a) => active().sgemm(...a);
export const fp32ToFp16: HostKernels['fp32ToFp16'] = (...a) => active().fp32ToFp16(...a);
export const fp16ToFp32: HostKernels['fp16ToFp32'] = (...a) => active().fp16ToFp32(...a);
export const fp32ToFp16Strided: HostKernels['fp32ToFp16Strided'] = (...a) => active().fp32ToFp16Strided(...a);
export const fp16ToFp32Strided: HostKernels['fp16ToFp32Strided'] = (...a) => active().fp16ToFp32Strided(...a);
export const fp32ToFp16Transposed: HostKernels['fp32ToFp16Transposed'] = (...a) =>
  active().fp32ToFp16Transposed(...a);
export const fp16ToFp32Transposed: HostKernels['fp16ToFp32Transposed'] = (...a) =>
  active().fp16ToFp32Transposed(...a);
export const sgdUpdate: HostKernels['sgdUpdate'] = (...a) => active().sgdUpdate(...a);
export const adamUpdate: HostKernels['adamUpdate'] = (...a) => active().adamUpdate(...a);
export const adamwUpdate: HostKernels['adamwUpdate'] = (...a) => active().adamwUpdate(...a);
export const lionUpdate: HostKernels['lionUpdate'] = (...a) => active().lionUpdate(...a);
export const sumOfSquares: HostKernels['sumOfSquares'] = (...a) => active().sumOfSquares(...a);
export const rmsnormForward: HostKernels['rmsnormForward'] = (...a) => active().rmsnormForward(...a);
export const rmsnormBackward: HostKernels['rmsnormBackward'] = (...a) => active().rmsnormBackward(...a);
export const softmaxCrossEntropyForward: HostKernels['softmaxCrossEntropyForward'] = (...a) =>
  active().softmaxCrossEntropyForward(...a);
export const softmaxCrossEntropyBackward: HostKernels['softmaxCrossEntropyBackward'] = (...a) =>
  active().softmaxCrossEntropyBackward(...a);
export const softmaxCrossEntropyStats: HostKernels['softmaxCrossEntropyStats'] = (...a) =>
  active().softmaxCrossEntropyStats(...a);
export const softmaxCrossEntropyGrad: HostKernels['softmaxCrossEntropyGrad'] = (...a) =>
  active().softmaxCrossEntropyGrad(...a);
export const embeddingForward: HostKernels['embeddingForward'] = (...a) => active().embeddingForward(...a);
export const embeddingBackward: HostKernels['embeddingBackward'] = (...a) => active().embeddingBackward(...a);
export const causalSoftmaxForward: HostKernels['causalSoftmaxForward'] = (...a) =>
  active().causalSoftmaxForward(...a);
export const causalSoftmaxBackward: HostKernels['causalSoftmaxBackward'] = (...a) =>
  active().causalSoftmaxBackward(...a);

// ---- asynchronous: off the JS thread when native ---------------------------------------------------

export const sgemmAsync: AsyncHostKernels['sgemmAsync'] = (...a) => active().sgemmAsync(...a);
export const fp32ToFp16Async: AsyncHostKernels['fp32ToFp16Async'] = (...a) => active().fp32ToFp16Async(...a);
export const fp16ToFp32Async: AsyncHostKernels['fp16ToFp32Async'] = (...a) => active().fp16ToFp32Async(...a);
export const fp32ToFp16StridedAsync: AsyncHostKernels['fp32ToFp16StridedAsync'] = (...a) =>
  active().fp32ToFp16StridedAsync(...a);
export const fp16ToFp32StridedAsync: AsyncHostKernels['fp16ToFp32StridedAsync'] = (...a) =>
  active().fp16ToFp32StridedAsync(...a);
export const fp32ToFp16TransposedAsync: AsyncHostKernels['fp32ToFp16TransposedAsync'] = (...a) =>
  active().fp32ToFp16TransposedAsync(...a);
export const fp16ToFp32TransposedAsync: AsyncHostKernels['fp16ToFp32TransposedAsync'] = (...a) =>
  active().fp16ToFp32TransposedAsync(...a);
export const sgdUpdateAsync: AsyncHostKernels['sgdUpdateAsync'] = (...a) => active().sgdUpdateAsync(...a);
export const adamUpdateAsync: AsyncHostKernels['adamUpdateAsync'] = (...a) => active().adamUpdateAsync(...a);
export const adamwUpdateAsync: AsyncHostKernels['adamwUpdateAsync'] = (...a) =>
  active().adamwUpdateAsync(...a);
export const lionUpdateAsync: AsyncHostKernels['lionUpdateAsync'] = (...a) => active().lionUpdateAsync(...a);
export const sumOfSquaresAsync: AsyncHostKernels['sumOfSquaresAsync'] = (...a) =>
  active().sumOfSquaresAsync(...a);
export const rmsnormForwardAsync: AsyncHostKernels['rmsnormForwardAsync'] = (...a) =>
  active().rmsnormForwardAsync(...a);
export const rmsnormBackwardAsync: AsyncHostKernels['rmsnormBackwardAsync'] = (...a) =>
  active().rmsnormBackwardAsync(...a);
export const softmaxCrossEntropyForwardAsync: AsyncHostKernels['softmaxCrossEntropyForwardAsync'] = (...a) =>
  active().softmaxCrossEntropyForwardAsync(...a);
export const softmaxCrossEntropyBackwardAsync: AsyncHostKernels['softmaxCrossEntropyBackwardAsync'] = (
  ...a
) => active().softmaxCrossEntropyBackwardAsync(...a);
export const softmaxCrossEntropyStatsAsync: AsyncHostKernels['softmaxCrossEntropyStatsAsync'] = (...a) =>
  active().softmaxCrossEntropyStatsAsync(...a);
export const softmaxCrossEntropyGradAsync: AsyncHostKernels['softmaxCrossEntropyGradAsync'] = (...a) =>
  active().softmaxCrossEntropyGradAsync(...a);
export const embeddingForwardAsync: AsyncHostKernels['embeddingForwardAsync'] = (...a) =>
  active().embeddingForwardAsync(...a);
export const embeddingBackwardAsync: AsyncHostKernels['embeddingBackwardAsync'] = (...a) =>
  active().embeddingBackwardAsync(...a);
export const causalSoftmaxForwardAsync: AsyncHostKernels['causalSoftmaxForwardAsync'] = (...a) =>
  active().causalSoftmaxForwardAsync(...a);
export const causalSoftmaxBackwardAsync: AsyncHostKernels['causalSoftmaxBackwardAsync'] = (...a) =>
  active().causalSoftmaxBackwardAsync(...a);

// ---- the native pool and SIMD path -----------------------------------------------------------------

/** Threads of the native host-kernel pool (1 with the TS fallbacks, which run on the JS thread). */
export function hostThreads(): number {
  return nativeAddon().addon?.kernels?.hostThreads() ?? 1;
}

/** The most threads the native pool may have (native/kernels/thread_pool.h, kMaxHostThreads). */
export const MAX_HOST_THREADS = 256;

/**
 * Sizes the native pool (the calling thread counts as one); 0 restores the default: the CPUs this
 * process may use, or the environment variable ANE_BRIDGE_THREADS (both capped at
 * MAX_HOST_THREADS). Returns the new size, which is smaller than asked when the system refused to
 * start some threads (the pool then runs on those that started). 1 and no effect with the TS
 * fallbacks. A count outside [0, MAX_HOST_THREADS] is a RangeError.
 */
export function setHostThreads(threads: number): number {
  if (!Number.isInteger(threads) || threads < 0 || threads > MAX_HOST_THREADS) {
    throw new RangeError(
      `setHostThreads: threads must be an integer in [0, ${MAX_HOST_THREADS}] (0 = default), got ${threads}`,
    );
  }
  return nativeAddon().addon?.kernels?.setHostThreads(threads) ?? 1;
}

/** The SIMD path the native kernels take ('scalar' means portable C++; null: no native addon). */
export function hostSimdLevel(): SimdLevel | null {
  return nativeAddon().addon?.kernels?.simdLevel() ?? null;
}

/** The widest SIMD path this CPU runs (what setHostSimdLevel restores); null without the addon. */
export function hostBestSimdLevel(): SimdLevel | null {
  return nativeAddon().addon?.kernels?.bestSimdLevel() ?? null;
}

/**
 * Narrows the native kernels to a SIMD path this CPU supports (tests and benchmarks compare paths
 * this way); returns false, changing nothing, when the CPU cannot run it or the addon is absent.
 */
export function setHostSimdLevel(level: SimdLevel): boolean {
  return nativeAddon().addon?.kernels?.setSimdLevel(level) ?? false;
}
