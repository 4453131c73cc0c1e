/**
 * The simulator's hot ops, run by the native addon (native/kernels/sim_ops.cc) when it is loaded and
 * by their readable TS twins (./ops) otherwise. Both give the same bits (NaN payloads aside: a NaN
 * stays a NaN). `compare` mode runs both and throws SimOpsMismatchError on the first differing
 * element: the ir-sim and autograd suites run in it, so every op they execute is held to its twin.
 *
 * The mode comes from `ANE_BRIDGE_SIM_OPS` (native | ts | compare) and can be changed with
 * `setSimOpsMode`; without the addon (or with ANE_BRIDGE_FORCE_TS=1) only `ts` is possible.
 */
import { SIM_OPS_MODES, type SimOpsMode } from '../native/environment';
import type { NativeSimOpsBindings } from '../native/loader';
import { nativeAddon } from '../native/loader';

export type { SimOpsMode } from '../native/environment';

/** A native op and its TS twin disagreed (compare mode): a bug in one of them. */
export class SimOpsMismatchError extends Error {
  override readonly name = 'SimOpsMismatchError';
  constructor(
    readonly op: string,
    readonly index: number,
    readonly nativeValue: number,
    readonly tsValue: number,
  ) {
    super(
      `simulator op ${op}: the native op and its TS twin differ at element ${index} (native ${nativeValue}, ts ${tsValue}); please report this with the program`,
    );
  }
}

let bindings: NativeSimOpsBindings | null | undefined;
let mode: SimOpsMode | undefined;

/** Every function the simulator calls: an addon built before one of them existed is not used. */
const REQUIRED: readonly (keyof NativeSimOpsBindings)[] = [
  'binary',
  'unary',
  'roundToFp16',
  'saturateToInfinity',
  'gather',
  'softmax',
  'reduce',
  'copyRows',
  'matmul',
  'gemm',
  'fused',
];

function loadBindings(): NativeSimOpsBindings | null {
  if (bindings === undefined) {
    const ops = nativeAddon().addon?.simOps;
    bindings = ops !== undefined && REQUIRED.every((name) => typeof ops[name] === 'function') ? ops : null;
  }
  return bindings;
}

function initialMode(): SimOpsMode {
  const requested = process.env.ANE_BRIDGE_SIM_OPS;
  const wanted = SIM_OPS_MODES.includes(requested as SimOpsMode) ? (requested as SimOpsMode) : 'native';
  return loadBindings() === null ? 'ts' : wanted;
}

/** The mode in use: `ts` whenever the native ops are not available. */
export function simOpsMode(): SimOpsMode {
  mode ??= initialMode();
  return mode;
}

/**
 * Sets the mode; returns the mode now in use (`ts` when `native` or `compare` was asked for and
 * the addon is not loaded). Anything but the three modes is a RangeError.
 */
export function setSimOpsMode(next: SimOpsMode): SimOpsMode {
  if (!SIM_OPS_MODES.includes(next)) {
    throw new RangeError(`setSimOpsMode: expected one of ${SIM_OPS_MODES.join(', ')}, got ${String(next)}`);
  }
  mode = loadBindings() === null ? 'ts' : next;
  return mode;
}

type SimArray = Float32Array | Int32Array | Int8Array | Uint8Array;

/** The first index where `a` and `b` differ in bits (any NaN equals any NaN), or -1. */
function firstDifference(a: SimArray, b: SimArray): number {
  if (a instanceof Float32Array) {
    const bitsA = new Uint32Array(a.buffer, a.byteOffset, a.length);
    const bitsB = new Uint32Array(b.buffer, b.byteOffset, b.length);
    for (let i = 0; i < a.length; i++) {
      if (bitsA[i] !== bitsB[i] && !(Number.isNaN(a[i]) && Number.isNaN(b[i]))) return i;
    }
    return -1;
  }
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return i;
  return -1;
}

/**
 * Runs one op: `native(ops)` or `twin()`, which both write `out` (and nothing else). In compare
 * mode the native result is kept aside, the twin runs, and the two are compared element by element.
 */
export function runSimOp(
  op: string,
  out: SimArray,
  native: (ops: NativeSimOpsBindings) => void,
  twin: () => void,
): void {
  runSimOpWriting(op, [out], native, twin);
}

/** runSimOp for an op that writes several arrays (a fused chain): compare mode checks each. */
export function runSimOpWriting(
  op: string,
  outs: readonly SimArray[],
  native: (ops: NativeSimOpsBindings) => void,
  twin: () => void,
): void {
  const current = simOpsMode();
  if (current === 'ts') {
    twin();
    return;
  }
  const ops = bindings!;
  if (current === 'native') {
    native(ops);
    return;
  }
  // Both write the arrays from the same starting contents (in-place ops read them).
  const before = outs.map((out) => out.slice());
  native(ops);
  const nativeResults = outs.map((out) => out.slice());
  outs.forEach((out, k) => {
    out.set(before[k] as never);
  });
  twin();
  outs.forEach((out, k) => {
    const i = firstDifference(nativeResults[k]!, out);
    if (i >= 0) throw new SimOpsMismatchError(op, i, nativeResults[k]![i]!, out[i]!);
  });
}
