/**
 * The host-kernel API, implemented twice: by the pure-TS twins (ts.ts) and by the native addon
 * (native.ts). Shapes are in the doc comments of the twins; every array is a typed array, and a
 * strided view is an offset plus a row stride (GEMM's lda/ldb/ldc, or a StridedBlock).
 */
import type { Fp16Options, StridedBlock } from './fp16';
import type { AdamOptions, AdamwOptions, LionOptions, SgdOptions } from './optimizers';

/** C = alpha·op(A)·op(B) + beta·C, row-major with leading dimensions (the BLAS sgemm contract). */
export type SgemmArgs = [
  transA: boolean,
  transB: boolean,
  M: number,
  N: number,
  K: number,
  alpha: number,
  /** fp32 values, or fp16 bits (a Uint16Array: a kernel's output where it lies), read widened. */
  A: Float32Array | Uint16Array,
  lda: number,
  B: Float32Array | Uint16Array,
  ldb: number,
  beta: number,
  C: Float32Array,
  ldc: number,
];

export interface HostKernels {
  sgemm(...args: SgemmArgs): void;
  fp32ToFp16(src: Float32Array, dst: Uint16Array, options?: Fp16Options): void;
  fp16ToFp32(src: Uint16Array, dst: Float32Array): void;
  fp32ToFp16Strided(src: Float32Array, dst: Uint16Array, block: StridedBlock, options?: Fp16Options): void;
  fp16ToFp32Strided(src: Uint16Array, dst: Float32Array, block: StridedBlock): void;
  /** dst[dstOffset + c*dstRowStride + r] = fp16(src[srcOffset + r*srcRowStride + c]) (dst: cols x rows). */
  fp32ToFp16Transposed(src: Float32Array, dst: Uint16Array, block: StridedBlock, options?: Fp16Options): void;
  /** dst[dstOffset + c*dstRowStride + r] = fp32(src[srcOffset + r*srcRowStride + c]) (dst: cols x rows). */
  fp16ToFp32Transposed(src: Uint16Array, dst: Float32Array, block: StridedBlock): void;
  sgdUpdate(
    params: Float32Array,
    grads: Float32Array,
    momentumBuffer: Float32Array | null,
    options: SgdOptions,
    fp16Out?: Uint16Array,
  ): void;
  adamUpdate(
    params: Float32Array,
    grads: Float32Array,
    m: Float32Array,
    v: Float32Array,
    options: AdamOptions,
    fp16Out?: Uint16Array,
  ): void;
  adamwUpdate(
    params: Float32Array,
    grads: Float32Array,
    m: Float32Array,
    v: Float32Array,
    options: AdamwOptions,
    fp16Out?: Uint16Array,
  ): void;
  lionUpdate(
    params: Float32Array,
    grads: Float32Array,
    m: Float32Array,
    options: LionOptions,
    fp16Out?: Uint16Array,
  ): void;
  sumOfSquares(x: Float32Array): number;
  rmsnormForward(
    out: Float32Array,
    rstd: Float32Array,
    x: Float32Array,
    weight: Float32Array,
    C: number,
    S: number,
    eps: number,
  ): void;
  rmsnormBackward(
    dx: Float32Array,
    dweight: Float32Array,
    dout: Float32Array,
    x: Float32Array,
    weight: Float32Array,
    rstd: Float32Array,
    C: number,
    S: number,
  ): void;
  softmaxCrossEntropyForward(
    losses: Float32Array,
    probs: Float32Array,
    logits: Float32Array,
    targets: Int32Array,
    V: number,
    S: number,
  ): void;
  softmaxCrossEntropyBackward(
    dlogits: Float32Array,
    probs: Float32Array,
    targets: Int32Array,
    dlosses: Float32Array,
    V: number,
    S: number,
  ): void;
  softmaxCrossEntropyStats(
    losses: Float32Array,
    maxv: Float32Array,
    inverse: Float32Array,
    logits: Float32Array | Uint16Array,
    targets: Int32Array,
    V: number,
    S: number,
  ): void;
  softmaxCrossEntropyGrad(
    dlogits: Float32Array,
    logits: Float32Array | Uint16Array,
    maxv: Float32Array,
    inverse: Float32Array,
    targets: Int32Array,
    dlosses: Float32Array,
    V: number,
    S: number,
  ): void;
  embeddingForward(
    out: Float32Array,
    table: Float32Array,
    tokens: Int32Array,
    V: number,
    C: number,
    S: number,
  ): void;
  embeddingBackward(
    dtable: Float32Array,
    dout: Float32Array,
    tokens: Int32Array,
    V: number,
    C: number,
    S: number,
  ): void;
  causalSoftmaxForward(
    out: Float32Array,
    scores: Float32Array,
    H: number,
    Tq: number,
    Tk: number,
    scale: number,
  ): void;
  causalSoftmaxBackward(
    dscores: Float32Array,
    probs: Float32Array,
    dout: Float32Array,
    H: number,
    Tq: number,
    Tk: number,
    scale: number,
  ): void;
}

export type HostKernelName = keyof HostKernels;

/**
 * `nameAsync` for every kernel: the same arguments, a Promise of the result. Native: the work runs
 * on a libuv worker thread and the host pool, and the JS thread is free meanwhile (do not touch the
 * arrays until the Promise settles). TS: the work runs synchronously and the Promise is already
 * settled. Argument errors reject the Promise.
 */
export type AsyncHostKernels = {
  [K in HostKernelName as `${K}Async`]: (
    ...args: Parameters<HostKernels[K]>
  ) => Promise<ReturnType<HostKernels[K]>>;
};

/** One implementation of every kernel, synchronous and asynchronous. */
export interface HostKernelSet extends HostKernels, AsyncHostKernels {
  readonly implementation: 'native' | 'ts';
  /**
   * The async kernels again, run as background work: native on Linux, each call runs on a thread
   * of its own (at the usual priority) and never spreads over the pool, so it never takes the
   * pool's threads from the work that does (the same results, bit for bit).
   * For host work beside a simulated device, which shares the CPUs: the plan executor runs weight
   * gradients this way on the `sim` backend. Elsewhere (macOS, the TS twins) they are the plain
   * async kernels.
   */
  readonly background: AsyncHostKernels;
}
