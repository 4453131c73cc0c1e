/**
 * The native host kernels as a HostKernelSet: each call runs the TS twin's argument checks (same
 * errors, same messages), derives the scalars exactly as the twin does, and hands positional
 * arguments to the addon (native/kernels/napi_kernels.cc).
 */
import type { NativeKernelBindings } from '../native/loader';
import { checkCausalBackwardArguments, checkCausalForwardArguments } from './causal-softmax';
import { HostKernelBufferError } from './checks';
import {
  checkCrossEntropyBackwardArguments,
  checkCrossEntropyForwardArguments,
  checkCrossEntropyGradArguments,
  checkCrossEntropyStatsArguments,
} from './cross-entropy';
import { checkEmbeddingBackwardArguments, checkEmbeddingForwardArguments } from './embedding';
import {
  checkFp16ToFp32Arguments,
  checkFp16ToFp32StridedArguments,
  checkFp16ToFp32TransposedArguments,
  checkFp32ToFp16Arguments,
  checkFp32ToFp16StridedArguments,
  checkFp32ToFp16TransposedArguments,
} from './fp16';
import { checkSgemmArguments } from './gemm';
import { checkRmsnormBackwardArguments, checkRmsnormForwardArguments } from './norms';
import { adamScalars, checkAdamArguments, checkSgdArguments, checkSumOfSquaresArguments } from './optimizers';
import type { HostKernelName, HostKernelSet, HostKernels } from './types';

type BindingName = {
  [K in keyof NativeKernelBindings]: K extends `${string}Async`
    ? never
    : NativeKernelBindings[K] extends (...args: infer _A) => infer R
      ? R extends Promise<unknown>
        ? never
        : K
      : never;
}[keyof NativeKernelBindings];

/** A validated call: which binding, with which positional arguments. */
interface Call {
  binding: Exclude<
    BindingName,
    'hostThreads' | 'setHostThreads' | 'simdLevel' | 'bestSimdLevel' | 'setSimdLevel'
  >;
  args: unknown[];
}

type Preparers = { [K in HostKernelName]: (...args: Parameters<HostKernels[K]>) => Call };

const f = Math.fround;

const prepare: Preparers = {
  sgemm(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc) {
    checkSgemmArguments(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    return { binding: 'sgemm', args: [transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc] };
  },
  fp32ToFp16(src, dst, options) {
    const saturate = checkFp32ToFp16Arguments(src, dst, options);
    const n = src.length;
    return { binding: 'fp32ToFp16', args: [src, 0, n, dst, 0, n, 1, n, saturate] };
  },
  fp16ToFp32(src, dst) {
    checkFp16ToFp32Arguments(src, dst);
    const n = src.length;
    return { binding: 'fp16ToFp32', args: [src, 0, n, dst, 0, n, 1, n] };
  },
  fp32ToFp16Strided(src, dst, block, options) {
    const { block: b, saturate } = checkFp32ToFp16StridedArguments(src, dst, block, options);
    return {
      binding: 'fp32ToFp16',
      args: [src, b.srcOffset, b.srcRowStride, dst, b.dstOffset, b.dstRowStride, b.rows, b.cols, saturate],
    };
  },
  fp16ToFp32Strided(src, dst, block) {
    const b = checkFp16ToFp32StridedArguments(src, dst, block);
    return {
      binding: 'fp16ToFp32',
      args: [src, b.srcOffset, b.srcRowStride, dst, b.dstOffset, b.dstRowStride, b.rows, b.cols],
    };
  },
  fp32ToFp16Transposed(src, dst, block, options) {
    const { block: b, saturate } = checkFp32ToFp16TransposedArguments(src, dst, block, options);
    return {
      binding: 'fp32ToFp16Transposed',
      args: [src, b.srcOffset, b.srcRowStride, dst, b.dstOffset, b.dstRowStride, b.rows, b.cols, saturate],
    };
  },
  fp16ToFp32Transposed(src, dst, block) {
    const b = checkFp16ToFp32TransposedArguments(src, dst, block);
    return {
      binding: 'fp16ToFp32Transposed',
      args: [src, b.srcOffset, b.srcRowStride, dst, b.dstOffset, b.dstRowStride, b.rows, b.cols],
    };
  },
  sgdUpdate(params, grads, momentumBuffer, o, fp16Out) {
    checkSgdArguments(params, grads, momentumBuffer, o, fp16Out);
    return {
      binding: 'sgdUpdate',
      args: [
        params,
        grads,
        o.momentum !== 0 ? momentumBuffer : null,
        f(-o.lr),
        f(o.weightDecay),
        f(o.momentum),
        f(1 - o.dampening),
        o.nesterov,
        o.firstStep,
        f(o.gradScale ?? 1),
        fp16Out ?? null,
      ],
    };
  },
  adamUpdate(params, grads, m, v, o, fp16Out) {
    checkAdamArguments('adamUpdate', params, grads, m, v, o, fp16Out);
    const s = adamScalars(o, false);
    return {
      binding: 'adamUpdate',
      args: [params, grads, m, v, ...adamArgs(s), f(o.gradScale ?? 1), fp16Out ?? null],
    };
  },
  adamwUpdate(params, grads, m, v, o, fp16Out) {
    checkAdamArguments('adamwUpdate', params, grads, m, v, o, fp16Out);
    const s = adamScalars(o, true);
    return {
      binding: 'adamUpdate',
      args: [params, grads, m, v, ...adamArgs(s), f(o.gradScale ?? 1), fp16Out ?? null],
    };
  },
  lionUpdate(params, grads, m, o, fp16Out) {
    checkAdamArguments('lionUpdate', params, grads, m, null, o, fp16Out);
    return {
      binding: 'lionUpdate',
      args: [
        params,
        grads,
        m,
        f(1 - o.lr * o.weightDecay),
        f(-o.lr),
        f(o.beta1),
        f(1 - o.beta1),
        f(o.beta2),
        f(1 - o.beta2),
        f(o.gradScale ?? 1),
        fp16Out ?? null,
      ],
    };
  },
  sumOfSquares(x) {
    checkSumOfSquaresArguments(x);
    return { binding: 'sumOfSquares', args: [x] };
  },
  rmsnormForward(out, rstd, x, weight, C, S, eps) {
    checkRmsnormForwardArguments(out, rstd, x, weight, C, S, eps);
    return { binding: 'rmsnormForward', args: [out, rstd, x, weight, C, S, eps] };
  },
  rmsnormBackward(dx, dweight, dout, x, weight, rstd, C, S) {
    checkRmsnormBackwardArguments(dx, dweight, dout, x, weight, rstd, C, S);
    return { binding: 'rmsnormBackward', args: [dx, dweight, dout, x, weight, rstd, C, S] };
  },
  softmaxCrossEntropyForward(losses, probs, logits, targets, V, S) {
    checkCrossEntropyForwardArguments(losses, probs, logits, targets, V, S);
    return { binding: 'softmaxCrossEntropyForward', args: [losses, probs, logits, targets, V, S] };
  },
  softmaxCrossEntropyBackward(dlogits, probs, targets, dlosses, V, S) {
    checkCrossEntropyBackwardArguments(dlogits, probs, targets, dlosses, V, S);
    return { binding: 'softmaxCrossEntropyBackward', args: [dlogits, probs, targets, dlosses, V, S] };
  },
  softmaxCrossEntropyStats(losses, maxv, inverse, logits, targets, V, S) {
    checkCrossEntropyStatsArguments(losses, maxv, inverse, logits, targets, V, S);
    return { binding: 'softmaxCrossEntropyStats', args: [losses, maxv, inverse, logits, targets, V, S] };
  },
  softmaxCrossEntropyGrad(dlogits, logits, maxv, inverse, targets, dlosses, V, S) {
    checkCrossEntropyGradArguments(dlogits, logits, maxv, inverse, targets, dlosses, V, S);
    return {
      binding: 'softmaxCrossEntropyGrad',
      args: [dlogits, logits, maxv, inverse, targets, dlosses, V, S],
    };
  },
  embeddingForward(out, table, tokens, V, C, S) {
    checkEmbeddingForwardArguments(out, table, tokens, V, C, S);
    return { binding: 'embeddingForward', args: [out, table, tokens, V, C, S] };
  },
  embeddingBackward(dtable, dout, tokens, V, C, S) {
    checkEmbeddingBackwardArguments(dtable, dout, tokens, V, C, S);
    return { binding: 'embeddingBackward', args: [dtable, dout, tokens, V, C, S] };
  },
  causalSoftmaxForward(out, scores, H, Tq, Tk, scale) {
    checkCausalForwardArguments(out, scores, H, Tq, Tk, scale);
    return { binding: 'causalSoftmaxForward', args: [out, scores, H, Tq, Tk, scale] };
  },
  causalSoftmaxBackward(dscores, probs, dout, H, Tq, Tk, scale) {
    checkCausalBackwardArguments(dscores, probs, dout, H, Tq, Tk, scale);
    return { binding: 'causalSoftmaxBackward', args: [dscores, probs, dout, H, Tq, Tk, scale] };
  },
};

function adamArgs(s: ReturnType<typeof adamScalars>): number[] {
  return [
    s.negStepSize,
    s.biasCorrection2Sqrt,
    s.oneMinusBeta1,
    s.beta2,
    s.oneMinusBeta2,
    s.eps,
    s.l2,
    s.decay,
  ];
}

/**
 * The addon rejects an async call whose output array was detached while the kernel ran (its result
 * is discarded) with code ERR_ANE_BRIDGE_DETACHED: that becomes a HostKernelBufferError naming the
 * public kernel.
 */
function asBufferError(error: unknown, kernel: string): unknown {
  const code = (error as { code?: unknown } | null)?.code;
  if (code !== 'ERR_ANE_BRIDGE_DETACHED' && code !== 'ERR_ANE_BRIDGE_RESIZABLE_BUFFER') return error;
  const message = String((error as Error).message).replace(/^\w+Async:/, `${kernel}Async:`);
  return new HostKernelBufferError(message, code);
}

/** Wraps the addon's bindings as a HostKernelSet. */
export function createNativeKernels(bindings: NativeKernelBindings): HostKernelSet {
  const table = bindings as unknown as Record<string, (...args: unknown[]) => unknown>;
  const set: Record<string, unknown> = { implementation: 'native' };
  const background: Record<string, unknown> = {};
  for (const name of Object.keys(prepare) as HostKernelName[]) {
    const prepareCall = prepare[name] as (...args: unknown[]) => Call;
    set[name] = (...args: unknown[]) => {
      const call = prepareCall(...args);
      return (table[call.binding] as (...a: unknown[]) => unknown)(...call.args);
    };
    const asyncEntry =
      (suffix: 'Async' | 'AsyncBackground') =>
      async (...args: unknown[]) => {
        const call = prepareCall(...args);
        try {
          return await (table[`${call.binding}${suffix}`] as (...a: unknown[]) => Promise<unknown>)(
            ...call.args,
          );
        } catch (error) {
          throw asBufferError(error, name);
        }
      };
    set[`${name}Async`] = asyncEntry('Async');
    background[`${name}Async`] = asyncEntry('AsyncBackground');
  }
  set.background = Object.freeze(background);
  return Object.freeze(set) as unknown as HostKernelSet;
}
