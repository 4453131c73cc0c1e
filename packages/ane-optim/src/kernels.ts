/**
 * The one place ane-optim reaches the update math: ane-bridge's host kernels (native fused loops
 * when the addon is loaded, their readable TypeScript twins otherwise). Nothing in this package
 * re-implements an update rule. A built-in optimizer describes each update as a KernelCall, which
 * runs here or, split by ranges, on worker threads (thread-pool.ts) calling the same kernels.
 */
import { capabilities, type HostKernelSet, hostKernels, SGD_ADD } from 'ane-bridge';
import { describeValue, OptimizerConfigError, OptimizerInputError } from './errors';
import { contiguousSpan } from './tree';

/**
 * Which host kernels run: 'auto' (default) the native ones when ane-bridge's addon is loaded and
 * the TypeScript twins otherwise (ANE_BRIDGE_FORCE_TS=1 forces the twins); 'native' or 'ts' pick one.
 */
export type KernelChoice = 'auto' | 'native' | 'ts';

export type KernelName = 'sgdUpdate' | 'adamUpdate' | 'adamwUpdate' | 'lionUpdate';

/**
 * One fused update: `kernel(params, grads, ...state, options, fp16Out?)`, where `state` names the
 * state buffers in the kernel's argument order (null: a buffer the kernel is passed as null, e.g.
 * SGD's momentum when momentum is 0) and `options` is the kernel's plain-number options object.
 */
export interface KernelCall<F extends string = string> {
  kernel: KernelName;
  state: ReadonlyArray<F | null>;
  options: Readonly<Record<string, number | boolean>>;
}

type KernelFunction = (
  params: Float32Array,
  grads: Float32Array,
  ...rest: Array<Float32Array | null | object | Uint16Array | undefined>
) => void;

/** Throws OptimizerConfigError unless `choice` names kernels that can run here. */
export function checkKernelChoice(choice: unknown, where: string): KernelChoice {
  if (choice !== 'auto' && choice !== 'native' && choice !== 'ts') {
    throw new OptimizerConfigError(
      `${where}: kernels must be 'auto', 'native' or 'ts', got ${describeValue(choice)}`,
      'kernels',
    );
  }
  if (choice === 'native' && hostKernels.native === null) {
    const { reason, fix } = capabilities().hostKernels;
    throw new OptimizerConfigError(
      `${where}: the native kernels were requested but ane-bridge's addon is not loaded: ${reason}${fix === undefined ? '' : `; ${fix}`} (or use kernels: 'auto')`,
      'kernels',
    );
  }
  return choice;
}

let nativeSharedMemory: boolean | undefined;

/** Whether these kernels accept arrays over a SharedArrayBuffer (probed once for the native ones). */
function readsSharedMemory(kernels: HostKernelSet): boolean {
  if (kernels.implementation === 'ts') return true;
  if (nativeSharedMemory === undefined) {
    try {
      kernels.sumOfSquares(new Float32Array(new SharedArrayBuffer(4)));
      nativeSharedMemory = true;
    } catch {
      nativeSharedMemory = false;
    }
  }
  return nativeSharedMemory;
}

export function isShared(array: ArrayBufferView | undefined): boolean {
  return array !== undefined && array.buffer instanceof SharedArrayBuffer;
}

/**
 * The kernel set `choice` names, now. `shared`: the arrays live in shared memory, which the native
 * kernels of some ane-bridge builds cannot read; 'auto' then takes the TypeScript kernels.
 */
export function kernelSet(choice: KernelChoice, shared = false): HostKernelSet {
  let kernels = hostKernels.active;
  if (choice === 'ts') kernels = hostKernels.ts;
  else if (choice === 'native') {
    const native = hostKernels.native;
    if (native === null) checkKernelChoice(choice, 'ane-optim');
    kernels = native ?? kernels;
  }
  if (shared && !readsSharedMemory(kernels)) {
    if (choice === 'auto') return hostKernels.ts;
    throw new OptimizerInputError(
      "the native kernels of this ane-bridge build cannot read arrays over a SharedArrayBuffer; use kernels: 'auto' or 'ts' for a shared arena, or an arena without { shared: true } (the native kernels have their own threads: ANE_BRIDGE_THREADS)",
    );
  }
  return kernels;
}

/** Runs `call` with `kernels` over the given buffers (all the same length), on this thread. */
export function runKernelCall(
  kernels: HostKernelSet,
  call: KernelCall,
  grad: Float32Array,
  param: Float32Array,
  buffers: (field: string) => Float32Array,
  fp16Out: Uint16Array | undefined,
): void {
  const state = call.state.map((field) => (field === null ? null : buffers(field)));
  (kernels[call.kernel] as KernelFunction)(param, grad, ...state, call.options, fp16Out);
}

/** sum(x^2) in float64 with the chosen kernels. */
export function sumOfSquares(x: Float32Array, choice: KernelChoice = 'auto'): number {
  return kernelSet(choice, isShared(x)).sumOfSquares(x);
}

const NO_MATRIX = new Float32Array(0);

/**
 * x *= factor in place, each product rounded once to fp32 (as torch's `mul_`, and as the loop
 * `x[i] = x[i] * factor` for an fp32 `factor`; another factor is rounded to fp32 first, as the
 * native kernel takes a float). Runs as ane-bridge's sgemm with K = 0, which BLAS defines as C = beta·C and which
 * both implementations compute as exactly that loop (the native one vectorized, and split over its
 * threads when long: a 98 MB gradient set is a memory-bound pass).
 */
export function scaleInPlace(x: Float32Array, factor: number, choice: KernelChoice = 'auto'): void {
  if (x.length === 0) return;
  const beta = Math.fround(factor);
  // C: [1, n] = 0·A[1, 0]·B[0, n] + factor·C
  kernelSet(choice, isShared(x)).sgemm(
    false,
    false,
    1,
    x.length,
    0,
    0,
    NO_MATRIX,
    1,
    NO_MATRIX,
    x.length,
    beta,
    x,
    x.length,
  );
}

/**
 * Every leaf *= factor in place (scaleInPlace per leaf): one kernel call over their span when the
 * leaves lie back to back in one buffer (the scaling is element by element, so the bits are the
 * same), one call per leaf otherwise.
 */
export function scaleLeaves(
  leaves: ReadonlyArray<readonly [string, Float32Array]>,
  factor: number,
  choice: KernelChoice = 'auto',
): void {
  const span = contiguousSpan(leaves);
  if (span !== null) scaleInPlace(span, factor, choice);
  else for (const [, leaf] of leaves) scaleInPlace(leaf, factor, choice);
}

/**
 * target += addend in place, each sum rounded once to fp32 (the loop `t[i] = t[i] + a[i]`, signed
 * zeros included). Runs as ane-bridge's fused SGD update with learning rate −1 and nothing else,
 * `p = p + 1·g` (one rounding: the native kernel's fma(1, g, p), the TypeScript one's fround).
 */
export function addInPlace(target: Float32Array, addend: Float32Array, choice: KernelChoice = 'auto'): void {
  if (target.length === 0) return;
  const kernels = kernelSet(choice, isShared(target) || isShared(addend));
  kernels.sgdUpdate(target, addend, null, SGD_ADD);
}
