/**
 * Host ops through a registry: each host-op kind of a plan (the composite kinds of ane-ir, or a
 * lone primitive) maps to the native host kernels that compute it (TensorFlow.js's kernel
 * registry, keyed by op). An implementation is bound once per host op at load time (shapes
 * checked, scratch allocated) and then runs every step on the arrays the executor hands it.
 *
 * A host op no registered kernel can run (an unknown kind, or a call whose intermediate values are
 * read outside it) runs in the generic float32 evaluator (ane-ir's `evaluate` with every result
 * rounded to fp32): correct, slow, and flagged in the executable's report.
 */
import { evaluate, type HostOp, type Tensor } from 'ane-ir';
import {
  embeddingBackward,
  embeddingBackwardAsync,
  embeddingForward,
  embeddingForwardAsync,
  type HostKernels,
  hostKernels,
  rmsnormBackward,
  rmsnormBackwardAsync,
  rmsnormForward,
  rmsnormForwardAsync,
  SGD_ADD,
  sgdUpdate,
  sgdUpdateAsync,
  sgemm,
  sgemmAsync,
  softmaxCrossEntropyGrad,
  softmaxCrossEntropyGradAsync,
  softmaxCrossEntropyStats,
  softmaxCrossEntropyStatsAsync,
} from '../kernels';
import { planBroadcast } from '../sim/layout';
import { binaryArithmetic } from '../sim/ops/elementwise';

const NO_MATRIX = new Float32Array(0);

/** A value's host array: fp32 for floating-point values, int32 for integer and bool values. */
export type HostArray = Float32Array | Int32Array;

/** The executor's arrays for the values a host op reads and writes (for the sequence being run). */
export interface HostValues {
  array(tensor: Tensor): HostArray;
  /**
   * The value's fp16 bits where a kernel left them, when it has them (a dense segment of a
   * kernel's fp16 output buffer), else undefined (read `array`). Read them during the op's run
   * only: the kernel rewrites them when it runs again. Optional, like `derived`.
   */
  half?(tensor: Tensor): Uint16Array | undefined;
  /**
   * Where host ops leave arrays derived from a value for later host ops of the same executable
   * (optional: without it each op computes what it needs itself).
   */
  readonly derived?: DerivedValues;
}

/**
 * Arrays a host op derived from a value it reads, kept for other host ops of the same executable:
 * the classifier's loss op leaves the softmax statistics of the logits, and the gradient op on the
 * same logits reuses them instead of recomputing them (same kernel on the same values: the same
 * bits). A record holds only while the value is unchanged: `recall` returns it for the same
 * sequence of a batch, with no step, feed or write having rewritten the value since `record`. The
 * array belongs to the op that recorded it: it `forget`s the record before overwriting the array,
 * records again after, and readers only read it.
 */
export interface DerivedValues {
  /** Records `array` as `what` (e.g. 'softmax') of `value`'s current values, replacing any earlier record. */
  record(value: Tensor, what: string, array: Float32Array): void;
  /** The array recorded as `what` of `value`, if `value` still holds what it held then; else undefined. */
  recall(value: Tensor, what: string): Float32Array | undefined;
  /** Drops the record of `what` of `value` (its array is about to be overwritten). */
  forget(value: Tensor, what: string): void;
}

/**
 * How a host op runs its kernels: `sync` on the calling thread; `async` off the JS thread (the
 * kernels' async entry points); `background` as async, at background priority
 * (`HostKernelSet.background`: host work beside a simulated device, which shares the CPUs).
 */
export type HostRunMode = 'sync' | 'async' | 'background';

/** A host op bound to its kernels. `run` returns a Promise unless in sync mode. */
export interface BoundHostOp {
  /** The native host kernels it calls, or 'generic' (the float32 evaluator). */
  readonly kernels: readonly string[];
  /** Values it reads through `HostValues.half` when they are there: the executor leaves them undecoded. */
  readonly readsHalf?: readonly Tensor[];
  run(values: HostValues, mode: HostRunMode): void | Promise<void>;
}

// The kernels host ops call, through the package's dispatching entry points.
const SYNC_KERNELS = {
  embeddingBackward,
  embeddingForward,
  rmsnormBackward,
  rmsnormForward,
  sgdUpdate,
  sgemm,
  softmaxCrossEntropyGrad,
  softmaxCrossEntropyStats,
};
const ASYNC_KERNELS = {
  embeddingBackward: embeddingBackwardAsync,
  embeddingForward: embeddingForwardAsync,
  rmsnormBackward: rmsnormBackwardAsync,
  rmsnormForward: rmsnormForwardAsync,
  sgdUpdate: sgdUpdateAsync,
  sgemm: sgemmAsync,
  softmaxCrossEntropyGrad: softmaxCrossEntropyGradAsync,
  softmaxCrossEntropyStats: softmaxCrossEntropyStatsAsync,
};

/** `kernel(...args)` in `mode`. */
function runKernel<K extends keyof typeof SYNC_KERNELS>(
  mode: HostRunMode,
  kernel: K,
  ...args: Parameters<HostKernels[K]>
): void | Promise<void> {
  const entry =
    mode === 'sync'
      ? SYNC_KERNELS[kernel]
      : mode === 'async'
        ? ASYNC_KERNELS[kernel]
        : hostKernels.active.background[`${kernel}Async`];
  return (entry as (...a: Parameters<HostKernels[K]>) => void | Promise<void>)(...args);
}

/** Binds a host op of the kind it is registered for, or says why it cannot (then the generic path runs it). */
export type HostOpBinder = (op: HostOp) => BoundHostOp | { readonly unsupported: string };

/**
 * Scratch arrays over a SharedArrayBuffer: the native async kernels use them in place (a plain
 * ArrayBuffer would be copied in and out on every call, since it could be detached meanwhile).
 */
function sharedFloats(length: number): Float32Array {
  return new Float32Array(new SharedArrayBuffer(length * 4));
}

function sharedInts(length: number): Int32Array {
  return new Int32Array(new SharedArrayBuffer(length * 4));
}

/** Duck-typed (ane-ir may be loaded twice, as ESM and CJS, so `instanceof` is not reliable). */
function isTensor(value: unknown): value is Tensor {
  return typeof value === 'object' && value !== null && 'op' in value && 'shape' in value && 'graph' in value;
}

/** The call's operands and result, checked: the op must compute only its call's result. */
function compositeCall(
  op: HostOp,
  operands: readonly string[],
  alsoReturned: readonly Tensor[] = [],
): { args: Record<string, Tensor>; result: Tensor } | string {
  const call = op.composite;
  if (call?.args === undefined || call.result === undefined)
    return `the ${op.kind} call carries no operands (it was not built by ane-ir's composite)`;
  const args: Record<string, Tensor> = {};
  for (const name of operands) {
    const value = call.args[name];
    if (!isTensor(value)) return `the ${op.kind} call has no tensor operand '${name}'`;
    args[name] = value;
  }
  const extra = op.outputs.filter((t) => t !== call.result && !alsoReturned.includes(t));
  if (extra.length > 0 || !op.outputs.includes(call.result))
    return `values inside the call are read outside it (${extra.map((t) => t.name).join(', ')}), and its kernel returns only the result`;
  return { args, result: call.result };
}

function isFloat(tensor: Tensor): boolean {
  return tensor.dtype === 'fp16' || tensor.dtype === 'fp32';
}

/**
 * y [C, S] = x * rsqrt(mean_c x² + eps) * gain: `rmsnormForward` (rstd kept in scratch). In a
 * training graph the backward reads two of the call's inner values (ane-ir's `rmsNorm` nodes
 * `rrms` = rstd `[1, S]` and `xr` = x ⊙ rstd `[C, S]`): the kernel writes rstd straight into
 * `rrms`, and a second call with a unit gain writes `xr`.
 */
const rmsnorm: HostOpBinder = (op) => {
  // The forward's structure (ane-ir composites.ts): out = mul(xr, reshape(gain)); xr = mul(x, rrms).
  const xr = op.composite?.result?.inputs[0];
  const rrms = xr?.op.kind === 'binary' ? xr.inputs[1] : undefined;
  const inner = xr !== undefined && rrms !== undefined ? [xr, rrms] : [];
  const call = compositeCall(op, ['x', 'gain'], inner);
  if (typeof call === 'string') return { unsupported: call };
  const { x, gain } = call.args as { x: Tensor; gain: Tensor };
  const eps = op.composite?.args?.eps;
  if (x.rank !== 2 || gain.rank !== 1 || typeof eps !== 'number' || !isFloat(x) || !isFloat(gain))
    return {
      unsupported: `rmsnorm over ${x.dtype} [${x.shape.join(', ')}]: the kernel takes float [C, S] with a gain [C]`,
    };
  const [C, S] = x.shape as [number, number];
  const returnsR = rrms !== undefined && op.outputs.includes(rrms);
  const returnsXr = xr !== undefined && op.outputs.includes(xr);
  if ((returnsR && rrms!.size !== S) || (returnsXr && xr!.size !== C * S))
    return { unsupported: `rmsnorm '${op.name}': its inner values are not shaped [1, S] and [C, S]` };
  const scratch = sharedFloats(S);
  const ones = returnsXr ? sharedFloats(C).fill(1) : undefined;
  return {
    kernels: ['rmsnormForward'],
    run: (values, mode) => {
      const rstd = returnsR ? (values.array(rrms!) as Float32Array) : scratch;
      const input = values.array(x) as Float32Array;
      const args = [
        values.array(call.result) as Float32Array,
        rstd,
        input,
        values.array(gain) as Float32Array,
        C,
        S,
        eps,
      ] as const;
      const first = runKernel(mode, 'rmsnormForward', ...args);
      if (ones === undefined) return first;
      const normalized = [values.array(xr!) as Float32Array, rstd, input, ones, C, S, eps] as const;
      return then(first, () => runKernel(mode, 'rmsnormForward', ...normalized));
    },
  };
};

/** out [D, S] = table[tokens]ᵀ: `embeddingForward`. */
const embedding: HostOpBinder = (op) => {
  const call = compositeCall(op, ['tokens', 'table']);
  if (typeof call === 'string') return { unsupported: call };
  const { tokens, table } = call.args as { tokens: Tensor; table: Tensor };
  if (tokens.rank !== 1 || tokens.dtype !== 'int32' || table.rank !== 2 || !isFloat(table))
    return {
      unsupported: `embedding of ${tokens.dtype} [${tokens.shape.join(', ')}] tokens: the kernel takes int32 [S] and a table [V, D]`,
    };
  const [V, D] = table.shape as [number, number];
  const S = tokens.shape[0]!;
  return {
    kernels: ['embeddingForward'],
    run: (values, mode) => {
      const args = [
        values.array(call.result) as Float32Array,
        values.array(table) as Float32Array,
        values.array(tokens) as Int32Array,
        V,
        D,
        S,
      ] as const;
      return runKernel(mode, 'embeddingForward', ...args);
    },
  };
};

/**
 * C = op(A)·op(B) (+ beta·C), rank 2, through `sgemm`; an operand computed on the device is read as
 * the fp16 bits the kernel left (exact: the bits of the call on the decoded values).
 */
function gemm(
  values: HostValues,
  mode: HostRunMode,
  a: Tensor,
  transA: boolean,
  b: Tensor,
  transB: boolean,
  out: Tensor,
  beta: number,
): void | Promise<void> {
  const [M, N] = out.shape as [number, number];
  const K = transA ? a.shape[0]! : a.shape[1]!;
  const args = [
    transA,
    transB,
    M,
    N,
    K,
    1,
    floatsOrHalves(values, a),
    a.shape[1]!,
    floatsOrHalves(values, b),
    b.shape[1]!,
    beta,
    values.array(out) as Float32Array,
    N,
  ] as const;
  return runKernel(mode, 'sgemm', ...args);
}

/** y [out, S] = W [out, in] · x [in, S] (+ bias [out]): `sgemm` (the bias pre-filled, beta 1). */
const linear: HostOpBinder = (op) => {
  const call = compositeCall(op, ['x', 'weight']);
  if (typeof call === 'string') return { unsupported: call };
  const { x, weight } = call.args as { x: Tensor; weight: Tensor };
  const bias = op.composite?.args?.bias;
  if (
    x.rank !== 2 ||
    weight.rank !== 2 ||
    !isFloat(x) ||
    !isFloat(weight) ||
    (bias !== undefined && !isTensor(bias))
  )
    return {
      unsupported: `linear of [${x.shape.join(', ')}] by [${weight.shape.join(', ')}]: the kernel takes x [in, S] and W [out, in]`,
    };
  const [rows, S] = call.result.shape as [number, number];
  return {
    kernels: ['sgemm'],
    readsHalf: [weight, x],
    run: (values, mode) => {
      if (bias === undefined) return gemm(values, mode, weight, false, x, false, call.result, 0);
      const y = values.array(call.result) as Float32Array;
      const b = values.array(bias as Tensor) as Float32Array;
      for (let r = 0; r < rows; r++) y.fill(b[r]!, r * S, (r + 1) * S);
      return gemm(values, mode, weight, false, x, false, call.result, 1);
    },
  };
};

/** A lone rank-2 matmul primitive on the host. */
const matmul: HostOpBinder = (op) => {
  const node = op.nodes[0]!;
  if (op.nodes.length !== 1 || node.op.kind !== 'matmul' || node.rank !== 2 || !isFloat(node))
    return { unsupported: 'only a single rank-2 matmul runs on sgemm' };
  const [a, b] = node.inputs as [Tensor, Tensor];
  if (a.rank !== 2 || b.rank !== 2) return { unsupported: 'only a single rank-2 matmul runs on sgemm' };
  const { transposeX, transposeY } = node.op;
  return {
    kernels: ['sgemm'],
    readsHalf: [a, b],
    run: (values, mode) => gemm(values, mode, a, transposeX, b, transposeY, node, 0),
  };
};

/** A value as a kernel reads it: fp16 bits where the device left them (`HostValues.half`), else its host array. */
function floatsOrHalves(values: HostValues, tensor: Tensor): Float32Array | Uint16Array {
  return values.half?.(tensor) ?? (values.array(tensor) as Float32Array);
}

/** Runs `first`, then `next` (after `first` settles in async mode). */
function then(first: void | Promise<void>, next: () => void | Promise<void>): void | Promise<void> {
  return first instanceof Promise ? first.then(next) : next();
}

/**
 * The targets a cross-entropy kernel reads: a negative target is ignored, so an ignore index that is
 * a class (0 ≤ i < V) is mapped to -1 in `scratch`; counted targets must be classes (the
 * composite would pick nothing for them, the kernel refuses them). Returns the targets array and
 * the number of counted positions (the mean's N).
 */
function kernelTargets(
  kind: string,
  targets: Int32Array,
  scratch: Int32Array,
  ignoreIndex: number | undefined,
  V: number,
): { targets: Int32Array; count: number } {
  let count = 0;
  let mapped = false;
  for (let s = 0; s < targets.length; s++) {
    const t = targets[s]!;
    if (ignoreIndex !== undefined && t === ignoreIndex) {
      scratch[s] = -1;
      mapped = mapped || t >= 0;
      continue;
    }
    if (t < 0 || t >= V)
      throw new RangeError(
        `${kind}: targets[${s}] = ${t} is not a class in [0, ${V})${ignoreIndex === undefined ? ' and the loss has no ignoreIndex' : ` nor the ignoreIndex ${ignoreIndex}`}; pass a class, or build the loss with { ignoreIndex } to leave positions out`,
      );
    scratch[s] = t;
    count++;
  }
  return { targets: mapped ? scratch : targets, count };
}

/** The cross-entropy call's operands, checked: float logits [V, S] and int32 targets [S]. */
function crossEntropyOperands(
  op: HostOp,
  operands: readonly string[],
):
  | { call: { args: Record<string, Tensor>; result: Tensor }; V: number; S: number; ignoreIndex?: number }
  | string {
  const call = compositeCall(op, operands);
  if (typeof call === 'string') return call;
  const { logits, targets } = call.args as { logits: Tensor; targets: Tensor };
  const ignoreIndex = op.composite?.args?.ignoreIndex;
  if (
    logits.rank !== 2 ||
    !isFloat(logits) ||
    targets.rank !== 1 ||
    targets.dtype !== 'int32' ||
    targets.shape[0] !== logits.shape[1] ||
    (ignoreIndex !== undefined && typeof ignoreIndex !== 'number')
  )
    return `${op.kind} of ${logits.dtype} [${logits.shape.join(', ')}] logits and ${targets.dtype} [${targets.shape.join(', ')}] targets: the kernel takes float [V, S] and int32 [S]`;
  const [V, S] = logits.shape as [number, number];
  return { call, V, S, ...(ignoreIndex !== undefined ? { ignoreIndex } : {}) };
}

/**
 * What the cross-entropy ops record in `HostValues.derived`: the softmax statistics of the logits
 * over the vocabulary axis, [2, S] (each position's max logit, then 1 / Σ exp(logit − max)).
 */
const SOFTMAX_STATISTICS = 'softmax statistics';

/** The two halves of statistics [2, S]: max and inverse. */
function maxAndInverse(statistics: Float32Array, S: number): [Float32Array, Float32Array] {
  return [statistics.subarray(0, S), statistics.subarray(S)];
}

/**
 * loss [1, 1] = mean over counted positions of logsumexp − the target's logit:
 * `softmaxCrossEntropyStats` (per-position losses and the softmax statistics in scratch), the
 * mean in the binder. The statistics (they depend on the logits only, not on targets or
 * ignoreIndex) are recorded for `softmax_cross_entropy_grad` to reuse. Logits computed on the
 * device are read as the fp16 bits the kernel left: never decoded, never written as probabilities.
 */
const crossEntropyLoss: HostOpBinder = (op) => {
  const operands = crossEntropyOperands(op, ['logits', 'targets']);
  if (typeof operands === 'string') return { unsupported: operands };
  const { call, V, S, ignoreIndex } = operands;
  const { logits, targets } = call.args as { logits: Tensor; targets: Tensor };
  const losses = sharedFloats(S);
  const statistics = sharedFloats(2 * S);
  const scratch = sharedInts(S);
  return {
    kernels: ['softmaxCrossEntropyStats'],
    readsHalf: [logits],
    run: (values, mode) => {
      values.derived?.forget(logits, SOFTMAX_STATISTICS);
      const picked = kernelTargets(
        `${op.kind} '${op.name}'`,
        values.array(targets) as Int32Array,
        scratch,
        ignoreIndex,
        V,
      );
      const [maxv, inverse] = maxAndInverse(statistics, S);
      const args = [losses, maxv, inverse, floatsOrHalves(values, logits), picked.targets, V, S] as const;
      return then(runKernel(mode, 'softmaxCrossEntropyStats', ...args), () => {
        values.derived?.record(logits, SOFTMAX_STATISTICS, statistics);
        let total = 0;
        for (let s = 0; s < S; s++) total += losses[s]!;
        // Every position ignored: 0/0, NaN, as the composite (and PyTorch) gives.
        (values.array(call.result) as Float32Array)[0] = total / picked.count;
      });
    },
  };
};

/**
 * dlogits [V, S] = (softmax − onehot) · dloss / N: `softmaxCrossEntropyGrad` with dloss / N per
 * counted position (it writes 0 for ignored ones), the softmax recomputed from the statistics a
 * `softmax_cross_entropy` op of the same run recorded for these logits (`HostValues.derived`),
 * else from statistics `softmaxCrossEntropyStats` computes into scratch (allocated on first need).
 * Logits are read as the loss op reads them. A constant dloss (the seed of an unscaled loss,
 * folded away by the backward) is read once at load.
 */
const crossEntropyLossGrad: HostOpBinder = (op) => {
  const operands = crossEntropyOperands(op, ['logits', 'targets', 'dloss']);
  if (typeof operands === 'string') return { unsupported: operands };
  const { call, V, S, ignoreIndex } = operands;
  const { logits, targets, dloss } = call.args as { logits: Tensor; targets: Tensor; dloss: Tensor };
  const fed = op.inputs.includes(dloss);
  if (dloss.size !== 1 || !isFloat(dloss) || (!fed && dloss.op.kind !== 'constant'))
    return {
      unsupported: `${op.kind}: dloss '${dloss.name}' [${dloss.shape.join(', ')}] is neither one value the op reads nor a constant`,
    };
  const constant = fed ? undefined : evaluate([dloss])[0]![0]!;
  const dlosses = sharedFloats(S);
  const scratch = sharedInts(S);
  // Only when no recorded statistics are at hand (a plan without the loss op, or run before it).
  let own: { losses: Float32Array; statistics: Float32Array } | undefined;
  return {
    kernels: ['softmaxCrossEntropyStats', 'softmaxCrossEntropyGrad'],
    readsHalf: [logits],
    run: (values, mode) => {
      const picked = kernelTargets(
        `${op.kind} '${op.name}'`,
        values.array(targets) as Int32Array,
        scratch,
        ignoreIndex,
        V,
      );
      const scale = (constant ?? values.array(dloss)[0]!) / picked.count;
      dlosses.fill(scale);
      const out = values.array(call.result) as Float32Array;
      const input = floatsOrHalves(values, logits);
      const grad = (statistics: Float32Array) =>
        runKernel(
          mode,
          'softmaxCrossEntropyGrad',
          out,
          input,
          ...maxAndInverse(statistics, S),
          picked.targets,
          dlosses,
          V,
          S,
        );
      const recorded = values.derived?.recall(logits, SOFTMAX_STATISTICS);
      if (recorded !== undefined) return grad(recorded);
      own ??= { losses: sharedFloats(S), statistics: sharedFloats(2 * S) };
      const { losses, statistics } = own;
      const stats = [losses, ...maxAndInverse(statistics, S), input, picked.targets, V, S] as const;
      return then(runKernel(mode, 'softmaxCrossEntropyStats', ...stats), () => grad(statistics));
    },
  };
};

/**
 * A weight gradient that is a sum over positions (a bias's: `Σ_s dy`, or a gain's: `Σ_s dy ⊙ x̂`):
 * one `reduceSum` over the last axis of a `[C, S]` value, or of a product of two, then reshapes.
 * A bias's runs on `sgemm` (dy · a ones vector), a gain's on `rmsnormBackward`'s dweight (x := x̂,
 * unit rstd; its dx goes to scratch).
 */
function rowSums(op: HostOp, result: Tensor): BoundHostOp | string {
  const nodes = op.nodes;
  const first = nodes[0]!;
  const product = first.op.kind === 'binary' && first.op.fn === 'mul' ? first : undefined;
  const reduce = nodes[product === undefined ? 0 : 1];
  const rest = nodes.slice(product === undefined ? 1 : 2);
  const summed = reduce?.inputs[0];
  if (
    reduce === undefined ||
    summed === undefined ||
    reduce.op.kind !== 'reduce' ||
    reduce.op.fn !== 'sum' ||
    summed.rank !== 2 ||
    reduce.op.axes.length !== 1 ||
    reduce.op.axes[0] !== 1 ||
    (product === undefined ? !op.inputs.includes(summed) : summed !== product) ||
    !rest.every((n) => n.op.kind === 'reshape') ||
    nodes[nodes.length - 1] !== result ||
    !isFloat(summed)
  )
    return `${nodes.map((n) => n.op.kind).join(' + ')}`;
  const [C, S] = summed.shape as [number, number];
  const operands = product?.inputs ?? [];
  if (
    product !== undefined &&
    !operands.every((t) => op.inputs.includes(t) && t.shape[0] === C && t.shape[1] === S && isFloat(t))
  )
    return 'a product of broadcast operands';
  const onesS = sharedFloats(S).fill(1);
  if (product === undefined) {
    return {
      kernels: ['sgemm'],
      run: (values, mode) => {
        const args = [
          false,
          false,
          C,
          1,
          S,
          1,
          values.array(summed) as Float32Array,
          S,
          onesS,
          1,
          0,
          values.array(result) as Float32Array,
          1,
        ] as const;
        return runKernel(mode, 'sgemm', ...args);
      },
    };
  }
  const [a, b] = operands as [Tensor, Tensor];
  const onesC = sharedFloats(C).fill(1);
  const dxScratch = sharedFloats(C * S);
  return {
    kernels: ['rmsnormBackward'],
    run: (values, mode) => {
      const out = values.array(result) as Float32Array;
      out.fill(0); // the kernel accumulates
      const args = [
        dxScratch,
        out,
        values.array(a) as Float32Array,
        values.array(b) as Float32Array,
        onesC,
        onesS,
        C,
        S,
      ] as const;
      return runKernel(mode, 'rmsnormBackward', ...args);
    },
  };
}

/**
 * dW: one rank-2 matmul of dy and x (any transposes) on `sgemm`; a sum over positions (a bias's or
 * a gain's gradient) on `sgemm` or `rmsnormBackward` (`rowSums`). Any other form is unsupported.
 */
const weightGrad: HostOpBinder = (op) => {
  const call = compositeCall(op, ['weight', 'dy', 'x']);
  if (typeof call === 'string') return { unsupported: call };
  const node = op.nodes[0]!;
  if (op.nodes.length === 1 && node === call.result && node.op.kind === 'matmul') {
    const bound = matmul(op);
    return 'unsupported' in bound ? { unsupported: `weight_grad: ${bound.unsupported}` } : bound;
  }
  const sums = rowSums(op, call.result);
  if (typeof sums !== 'string') return sums;
  const folded = headFoldedRowSums(op, call.result);
  if (folded !== undefined) return folded;
  return {
    unsupported: `weight_grad of '${call.args.weight!.name}' is ${sums}, neither one matmul (dW = dy·xᵀ) nor a sum over positions of dy or of dy ⊙ x`,
  };
};

/**
 * dx [C, S] of an RMSNorm (ane-autograd's `rmsnorm_grad` call, which reads the forward's x̂ = x ⊙ r
 * and r): `rmsnormBackward` on x̂ with a unit rstd gives dx / r, which is then scaled by r per
 * position; the kernel's dweight goes to scratch (the gain's gradient is its own weight_grad call).
 */
const rmsnormGrad: HostOpBinder = (op) => {
  const call = compositeCall(op, ['gain', 'dy', 'rrms']);
  if (typeof call === 'string') return { unsupported: call };
  const { gain, dy, rrms } = call.args as { gain: Tensor; dy: Tensor; rrms: Tensor };
  const dx = call.result;
  if (dx.rank !== 2 || gain.rank !== 1 || rrms.size !== dx.shape[1] || !isFloat(dx))
    return {
      unsupported: `rmsnorm_grad of [${dx.shape.join(', ')}]: the kernel takes float [C, S] with a gain [C] and r [1, S]`,
    };
  const [C, S] = dx.shape as [number, number];
  const normalized = op.inputs.find(
    (t) => t !== dy && t.rank === 2 && t.shape[0] === C && t.shape[1] === S && isFloat(t),
  );
  if (normalized === undefined || !op.inputs.includes(dy) || !op.inputs.includes(rrms))
    return { unsupported: `rmsnorm_grad '${op.name}' does not read x̂, dy and r as the kernel needs` };
  const ones = sharedFloats(S).fill(1);
  const dgain = sharedFloats(C);
  return {
    kernels: ['rmsnormBackward'],
    run: (values, mode) => {
      const out = values.array(dx) as Float32Array;
      const r = values.array(rrms) as Float32Array;
      out.fill(0); // the kernel accumulates (llm.c convention)
      dgain.fill(0);
      const args = [
        out,
        dgain,
        values.array(dy) as Float32Array,
        values.array(normalized) as Float32Array,
        values.array(gain) as Float32Array,
        ones,
        C,
        S,
      ] as const;
      return then(runKernel(mode, 'rmsnormBackward', ...args), () => {
        for (let c = 0; c < C; c++) for (let s = 0; s < S; s++) out[c * S + s]! *= r[s]!;
      });
    },
  };
};

/**
 * dTable [V, D] = Σ over positions of dy's rows into their tokens' rows (ane-autograd's
 * `scatter_add` call: int32 indices [S], dy [S, D]): `embeddingBackward`, which reads dy
 * channels-first, so dy is transposed into scratch first.
 */
const scatterAdd: HostOpBinder = (op) => {
  const call = compositeCall(op, ['indices', 'dy']);
  if (typeof call === 'string') return { unsupported: call };
  const { indices, dy } = call.args as { indices: Tensor; dy: Tensor };
  const table = call.result;
  if (
    indices.rank !== 1 ||
    indices.dtype !== 'int32' ||
    table.rank !== 2 ||
    !isFloat(table) ||
    dy.rank !== 2 ||
    dy.shape[0] !== indices.shape[0] ||
    dy.shape[1] !== table.shape[1]
  )
    return {
      unsupported: `scatter_add of ${indices.dtype} [${indices.shape.join(', ')}] indices into [${table.shape.join(', ')}]: the kernel takes int32 [S], dy [S, D] and a table [V, D]`,
    };
  const [V, D] = table.shape as [number, number];
  const S = indices.shape[0]!;
  const transposed = sharedFloats(D * S);
  return {
    kernels: ['embeddingBackward'],
    run: (values, mode) => {
      const rows = values.array(dy) as Float32Array;
      for (let s = 0; s < S; s++) for (let d = 0; d < D; d++) transposed[d * S + s] = rows[s * D + d]!;
      const out = values.array(table) as Float32Array;
      // The kernel accumulates: zero the table first, as sgemm's C = 0·C (BLAS beta = 0), which the
      // native GEMM splits over its threads (a 37 MB table: half the time of a fill on this thread).
      sgemm(false, false, 1, out.length, 0, 0, NO_MATRIX, 1, NO_MATRIX, out.length, 0, out, out.length);
      const args = [out, transposed, values.array(indices) as Int32Array, V, D, S] as const;
      return runKernel(mode, 'embeddingBackward', ...args);
    },
  };
};

/**
 * The sum of a weight's gradient contributions (ane-autograd's `weight_grad_sum` call: a chain of
 * adds of same-shaped fp32 values, e.g. a tied embedding table's scatter_add and classifier dW):
 * the first two added into the result in one pass (the simulator's elementwise add: fp32 values
 * added in float64 and stored once, which is the fp32 sum), each other added in place by
 * `sgdUpdate` as `p += g` (memory-bound, native).
 */
const weightGradSum: HostOpBinder = (op) => {
  const result = op.composite?.result;
  const adds = op.nodes.every((n) => n.op.kind === 'binary' && n.op.fn === 'add');
  const parts = op.inputs;
  if (
    result === undefined ||
    !adds ||
    op.outputs.length !== 1 ||
    op.outputs[0] !== result ||
    parts.length !== op.nodes.length + 1 ||
    !parts.every((t) => t.size === result.size && isFloat(t) && t.op.kind !== 'constant')
  )
    return {
      unsupported: `weight_grad_sum '${op.name}' is not a chain of adds of ${parts.length} same-shaped fp32 values the op reads`,
    };
  const layout = planBroadcast([result.size], [[result.size], [result.size]]);
  return {
    kernels: ['sgdUpdate'],
    run: (values, mode) => {
      const out = values.array(result) as Float32Array;
      const [first, second, ...rest] = parts.map((part) => values.array(part) as Float32Array);
      let chain: void | Promise<void> =
        second === undefined
          ? out.set(first!)
          : binaryArithmetic(
              'add',
              { dtype: 'fp32', shape: [out.length], data: out },
              first!,
              second,
              layout,
            );
      for (const grads of rest) {
        chain = then(chain, () => runKernel(mode, 'sgdUpdate', out, grads, null, SGD_ADD));
      }
      return chain;
    },
  };
};

/** Row block h of a `[H * rows, S]` value (head h's `[rows, S]`), as a view. */
function block(array: Float32Array, h: number, size: number): Float32Array {
  return array.subarray(h * size, (h + 1) * size);
}

/** Runs `step(h)` for h = 0..H-1 in order (each after the previous settles in async mode). */
function eachHead(heads: number, step: (h: number) => void | Promise<void>): void | Promise<void> {
  let chain = step(0);
  for (let h = 1; h < heads; h++) chain = then(chain, () => step(h));
  return chain;
}

/**
 * A per-head RMSNorm (ane-ir's `headRmsNorm`, Qwen3's q/k norm) of x `[H * HD, S]` with a gain
 * `[HD]`: head h is the contiguous row block `[HD, S]`, so `rmsnormForward` runs once per head,
 * writing its rstd straight into row h of `rrms` `[H, S]`; when the backward reads `xr` = x ⊙ r, a
 * second call per head with a unit gain writes it.
 */
const headRmsnorm: HostOpBinder = (op) => {
  // The forward's structure (ane-ir composites.ts): out = reshape(y3); y3 = mul(reshape(xr), g);
  // xr = reshape(xr3); xr3 = mul(x3, reshape(rrms)).
  const xr = op.composite?.result?.inputs[0]?.inputs[0]?.inputs[0];
  const rrms = xr?.inputs[0]?.inputs[1]?.inputs[0];
  const inner = xr !== undefined && rrms !== undefined ? [xr, rrms] : [];
  const call = compositeCall(op, ['x', 'gain'], inner);
  if (typeof call === 'string') return { unsupported: call };
  const { x, gain } = call.args as { x: Tensor; gain: Tensor };
  const heads = op.composite?.args?.heads;
  const eps = op.composite?.args?.eps;
  if (
    x.rank !== 2 ||
    gain.rank !== 1 ||
    typeof heads !== 'number' ||
    typeof eps !== 'number' ||
    x.shape[0] !== heads * gain.shape[0]! ||
    !isFloat(x) ||
    !isFloat(gain)
  )
    return {
      unsupported: `head_rmsnorm over ${x.dtype} [${x.shape.join(', ')}]: the kernel takes float [H * HD, S] with a gain [HD]`,
    };
  const [C, S] = x.shape as [number, number];
  const HD = C / heads;
  const returnsR = rrms !== undefined && op.outputs.includes(rrms);
  const returnsXr = xr !== undefined && op.outputs.includes(xr);
  if ((returnsR && rrms!.size !== heads * S) || (returnsXr && xr!.size !== C * S))
    return {
      unsupported: `head_rmsnorm '${op.name}': its inner values are not shaped [H, S] and [H * HD, S]`,
    };
  const scratch = sharedFloats(heads * S);
  const ones = sharedFloats(HD).fill(1);
  return {
    kernels: ['rmsnormForward'],
    run: (values, mode) => {
      const rstd = returnsR ? (values.array(rrms!) as Float32Array) : scratch;
      const input = values.array(x) as Float32Array;
      const out = values.array(call.result) as Float32Array;
      const g = values.array(gain) as Float32Array;
      const normalized = returnsXr ? (values.array(xr!) as Float32Array) : undefined;
      return eachHead(heads, (h) => {
        const args = [
          block(out, h, HD * S),
          block(rstd, h, S),
          block(input, h, HD * S),
          g,
          HD,
          S,
          eps,
        ] as const;
        const first = runKernel(mode, 'rmsnormForward', ...args);
        if (normalized === undefined) return first;
        const unit = [
          block(normalized, h, HD * S),
          block(rstd, h, S),
          block(input, h, HD * S),
          ones,
          HD,
          S,
          eps,
        ] as const;
        return then(first, () => runKernel(mode, 'rmsnormForward', ...unit));
      });
    },
  };
};

/**
 * dx `[H * HD, S]` of a per-head RMSNorm (ane-autograd's `head_rmsnorm_grad`, reading the
 * forward's x̂ `[H * HD, S]` and r `[H, S]`): per head, `rmsnormBackward` on x̂ with a unit rstd
 * gives dx / r, then scaled by r per position (as `rmsnorm_grad`); its dweight goes to scratch.
 */
const headRmsnormGrad: HostOpBinder = (op) => {
  const call = compositeCall(op, ['gain', 'dy', 'rrms', 'xr']);
  if (typeof call === 'string') return { unsupported: call };
  const { gain, dy, rrms, xr } = call.args as { gain: Tensor; dy: Tensor; rrms: Tensor; xr: Tensor };
  const heads = op.composite?.args?.heads;
  const dx = call.result;
  if (
    typeof heads !== 'number' ||
    dx.rank !== 2 ||
    gain.rank !== 1 ||
    dx.shape[0] !== heads * gain.shape[0]! ||
    rrms.size !== heads * dx.shape[1]! ||
    xr.size !== dx.size ||
    dy.size !== dx.size ||
    !isFloat(dx) ||
    ![dy, rrms, xr].every((t) => op.inputs.includes(t))
  )
    return {
      unsupported: `head_rmsnorm_grad of [${dx.shape.join(', ')}]: the kernel takes float dy and x̂ [H * HD, S], r [H, S] and a gain [HD], all read by the op`,
    };
  const [C, S] = dx.shape as [number, number];
  const HD = C / heads;
  const ones = sharedFloats(S).fill(1);
  const dgain = sharedFloats(HD);
  return {
    kernels: ['rmsnormBackward'],
    run: (values, mode) => {
      const out = values.array(dx) as Float32Array;
      const r = values.array(rrms) as Float32Array;
      const dys = values.array(dy) as Float32Array;
      const normalized = values.array(xr) as Float32Array;
      const g = values.array(gain) as Float32Array;
      out.fill(0); // the kernel accumulates (llm.c convention)
      return then(
        eachHead(heads, (h) => {
          const args = [
            block(out, h, HD * S),
            dgain,
            block(dys, h, HD * S),
            block(normalized, h, HD * S),
            g,
            ones,
            HD,
            S,
          ] as const;
          return runKernel(mode, 'rmsnormBackward', ...args);
        }),
        () => {
          for (let c = 0; c < C; c++) {
            const h = Math.floor(c / HD);
            for (let s = 0; s < S; s++) out[c * S + s]! *= r[h * S + s]!;
          }
        },
      );
    },
  };
};

/**
 * A per-head norm gain's gradient (ane-autograd's head_rmsnorm rule): `Σ_s dy ⊙ x̂` per row of
 * `[H * HD, S]` on `rmsnormBackward`'s dweight (as `rowSums`), then the H rows of each feature
 * summed (H·HD additions).
 */
function headFoldedRowSums(op: HostOp, result: Tensor): BoundHostOp | undefined {
  const [product, rows, byHead, fold] = op.nodes;
  if (
    op.nodes.length !== 4 ||
    product?.op.kind !== 'binary' ||
    product.op.fn !== 'mul' ||
    rows?.op.kind !== 'reduce' ||
    rows.op.fn !== 'sum' ||
    rows.op.axes.length !== 1 ||
    rows.op.axes[0] !== 1 ||
    rows.inputs[0] !== product ||
    byHead?.op.kind !== 'reshape' ||
    byHead.rank !== 2 ||
    fold?.op.kind !== 'reduce' ||
    fold.op.fn !== 'sum' ||
    fold.op.axes.length !== 1 ||
    fold.op.axes[0] !== 0 ||
    fold !== result ||
    product.rank !== 2
  )
    return undefined;
  const [C, S] = product.shape as [number, number];
  const [a, b] = product.inputs as [Tensor, Tensor];
  if (![a, b].every((t) => op.inputs.includes(t) && t.shape[0] === C && t.shape[1] === S && isFloat(t)))
    return undefined;
  const [heads, HD] = byHead.shape as [number, number];
  const onesC = sharedFloats(C).fill(1);
  const onesS = sharedFloats(S).fill(1);
  const dxScratch = sharedFloats(C * S);
  const rowScratch = sharedFloats(C);
  return {
    kernels: ['rmsnormBackward'],
    run: (values, mode) => {
      rowScratch.fill(0); // the kernel accumulates
      const args = [
        dxScratch,
        rowScratch,
        values.array(a) as Float32Array,
        values.array(b) as Float32Array,
        onesC,
        onesS,
        C,
        S,
      ] as const;
      return then(runKernel(mode, 'rmsnormBackward', ...args), () => {
        const out = values.array(result) as Float32Array;
        out.fill(0);
        for (let h = 0; h < heads; h++) for (let d = 0; d < HD; d++) out[d]! += rowScratch[h * HD + d]!;
      });
    },
  };
}

/**
 * The registry: host-op kind → binder. Kinds are ane-ir's composite kinds (`HostOp.kind`) or a
 * primitive's label for a lone primitive.
 */
export const HOST_OP_KERNELS: ReadonlyMap<string, HostOpBinder> = new Map([
  ['rmsnorm', rmsnorm],
  ['embedding', embedding],
  ['linear', linear],
  ['matmul', matmul],
  ['softmax_cross_entropy', crossEntropyLoss],
  ['softmax_cross_entropy_grad', crossEntropyLossGrad],
  ['weight_grad', weightGrad],
  ['rmsnorm_grad', rmsnormGrad],
  ['head_rmsnorm', headRmsnorm],
  ['head_rmsnorm_grad', headRmsnormGrad],
  ['scatter_add', scatterAdd],
  ['weight_grad_sum', weightGradSum],
]);

/**
 * The generic path: ane-ir's evaluator over the op's nodes, every result rounded to fp32, then
 * copied into the executor's arrays. Values the op reads come from `values`; constants and frozen
 * weights from the graph.
 */
export function genericHostOp(op: HostOp): BoundHostOp {
  const fed = op.inputs.filter(
    (t) => t.op.kind !== 'constant' && !(t.op.kind === 'param' && !t.op.trainable),
  );
  return {
    kernels: ['generic'],
    run: (values) => {
      const feeds = new Map(fed.map((t) => [t, values.array(t)] as const));
      const results = evaluate(op.outputs, feeds, { fp32: true });
      op.outputs.forEach((t, i) => {
        values.array(t).set(results[i]!);
      });
    },
  };
}

/** Binds `op` to its registered kernels, or to the generic path with the reason. */
export function bindHostOp(op: HostOp): { bound: BoundHostOp; slowBecause?: string } {
  const binder = HOST_OP_KERNELS.get(op.kind);
  if (binder === undefined)
    return { bound: genericHostOp(op), slowBecause: `no host kernel is registered for '${op.kind}'` };
  const result = binder(op);
  if ('unsupported' in result) return { bound: genericHostOp(op), slowBecause: result.unsupported };
  return { bound: result };
}
