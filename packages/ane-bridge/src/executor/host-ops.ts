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
  embeddingForward,
  embeddingForwardAsync,
  rmsnormForward,
  rmsnormForwardAsync,
  sgemm,
  sgemmAsync,
} from '../kernels';

/** A value's host array: fp32 for floating-point values, int32 for integer and bool values. */
export type HostArray = Float32Array | Int32Array;

/** The executor's arrays for the values a host op reads and writes (for the sequence being run). */
export interface HostValues {
  array(tensor: Tensor): HostArray;
}

/** A host op bound to its kernels. `run` returns a Promise in async mode (native kernels off the JS thread). */
export interface BoundHostOp {
  /** The native host kernels it calls, or 'generic' (the float32 evaluator). */
  readonly kernels: readonly string[];
  run(values: HostValues, mode: 'sync' | 'async'): void | Promise<void>;
}

/** Binds a host op of the kind it is registered for, or says why it cannot (then the generic path runs it). */
export type HostOpBinder = (op: HostOp) => BoundHostOp | { readonly unsupported: string };

/** Duck-typed (ane-ir may be loaded twice, as ESM and CJS, so `instanceof` is not reliable). */
function isTensor(value: unknown): value is Tensor {
  return typeof value === 'object' && value !== null && 'op' in value && 'shape' in value && 'graph' in value;
}

/** The call's operands and result, checked: the op must compute only its call's result. */
function compositeCall(
  op: HostOp,
  operands: readonly string[],
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
  const extra = op.outputs.filter((t) => t !== call.result);
  if (extra.length > 0 || !op.outputs.includes(call.result))
    return `values inside the call are read outside it (${extra.map((t) => t.name).join(', ')}), and its kernel returns only the result`;
  return { args, result: call.result };
}

function isFloat(tensor: Tensor): boolean {
  return tensor.dtype === 'fp16' || tensor.dtype === 'fp32';
}

/** y [C, S] = x * rsqrt(mean_c x² + eps) * gain: `rmsnormForward` (rstd kept in scratch). */
const rmsnorm: HostOpBinder = (op) => {
  const call = compositeCall(op, ['x', 'gain']);
  if (typeof call === 'string') return { unsupported: call };
  const { x, gain } = call.args as { x: Tensor; gain: Tensor };
  const eps = op.composite?.args?.eps;
  if (x.rank !== 2 || gain.rank !== 1 || typeof eps !== 'number' || !isFloat(x) || !isFloat(gain))
    return {
      unsupported: `rmsnorm over ${x.dtype} [${x.shape.join(', ')}]: the kernel takes float [C, S] with a gain [C]`,
    };
  const [C, S] = x.shape as [number, number];
  const rstd = new Float32Array(S);
  return {
    kernels: ['rmsnormForward'],
    run: (values, mode) => {
      const args = [
        values.array(call.result) as Float32Array,
        rstd,
        values.array(x) as Float32Array,
        values.array(gain) as Float32Array,
        C,
        S,
        eps,
      ] as const;
      return mode === 'sync' ? rmsnormForward(...args) : rmsnormForwardAsync(...args);
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
      return mode === 'sync' ? embeddingForward(...args) : embeddingForwardAsync(...args);
    },
  };
};

/** C = op(A)·op(B) (+ beta·C), rank 2, through `sgemm`. */
function gemm(
  values: HostValues,
  mode: 'sync' | 'async',
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
    values.array(a) as Float32Array,
    a.shape[1]!,
    values.array(b) as Float32Array,
    b.shape[1]!,
    beta,
    values.array(out) as Float32Array,
    N,
  ] as const;
  return mode === 'sync' ? sgemm(...args) : sgemmAsync(...args);
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
    run: (values, mode) => gemm(values, mode, a, transposeX, b, transposeY, node, 0),
  };
};

/**
 * The registry: host-op kind → binder. Kinds are ane-ir's composite kinds (`HostOp.kind`) or a
 * primitive's label for a lone primitive.
 */
export const HOST_OP_KERNELS: ReadonlyMap<string, HostOpBinder> = new Map([
  ['rmsnorm', rmsnorm],
  ['embedding', embedding],
  ['linear', linear],
  ['matmul', matmul],
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
