/**
 * The one place ane-optim reaches the update math: ane-bridge's host kernels (native fused loops
 * when the addon is loaded, their readable TypeScript twins otherwise). Nothing in this package
 * re-implements an update rule. A built-in optimizer describes each update as a KernelCall, which
 * runs here or, split by ranges, on worker threads (thread-pool.ts) calling the same kernels.
 */
import { capabilities, type HostKernelSet, hostKernels } from 'ane-bridge';
import { describeValue, OptimizerConfigError, OptimizerInputError } from './errors';

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
