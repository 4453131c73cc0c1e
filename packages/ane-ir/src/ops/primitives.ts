/**
 * The primitive ops as free functions. Each creates one node in its operands' graph, after its shape
 * rule accepts the operands (`ShapeError` otherwise). A plain number operand becomes a scalar
 * constant of the other operand's dtype.
 */
import type { DType } from '../graph/dtype';
import { IrError, ShapeError } from '../graph/errors';
import type { OpOptions } from '../graph/graph';
import type { BinaryFn, CompareFn, Op, ReduceFn, Tensor, UnaryFn } from '../graph/tensor';

/** An op argument: a tensor, or a number (a scalar constant of the other operand's dtype, broadcast). */
export type TensorOrScalar = Tensor | number;

function graphOf(operands: readonly TensorOrScalar[], op: string): Tensor {
  const first = operands.find((o): o is Tensor => typeof o !== 'number');
  if (first === undefined) throw new IrError(`${op}: at least one operand must be a tensor`);
  return first;
}

function asTensor(operand: TensorOrScalar, like: Tensor, name: string | undefined): Tensor {
  if (typeof operand !== 'number') return operand;
  return like.graph.scalar(operand, like.dtype, { name: name === undefined ? 'c' : `${name}_c` });
}

function make(op: Op, inputs: readonly Tensor[], options: OpOptions): Tensor {
  const graph = inputs[0]!.graph;
  return graph.add(op, inputs, options.name === undefined ? {} : { name: options.name });
}

/** `axis` in [-rank, rank) as a non-negative index, or a ShapeError naming `op`. */
export function normalizeAxis(axis: number, rank: number, op: string, x: Tensor): number {
  if (!Number.isInteger(axis) || axis < -rank || axis >= rank) {
    throw new ShapeError(
      op,
      x.name,
      [x.shape],
      `axis ${axis} is out of range for rank ${rank} (expected -${rank}..${rank - 1})`,
    );
  }
  return axis < 0 ? axis + rank : axis;
}

// ---- unary ----

function unary(fn: Exclude<UnaryFn, 'log'>) {
  return (x: Tensor, options: OpOptions = {}): Tensor => make({ kind: 'unary', fn }, [x], options);
}

export const exp = unary('exp');
export const sqrt = unary('sqrt');
export const sigmoid = unary('sigmoid');
export const tanh = unary('tanh');
/** `max(x, 0)`: MIL's `relu` (reported running on the ANE; maderix/ANE PR #40). */
export const relu = unary('relu');

export interface LogOptions extends OpOptions {
  /**
   * Added before the logarithm: `log(x + epsilon)`. Default 0 (the exact logarithm; log(0) = -inf).
   * The MIL `log` always spells it (rule `emit-explicit-params`); on the ANE it is an fp16 constant,
   * so a nonzero epsilon below 2^-24 becomes 0 (rule `num-eps-underflow`): use 1e-7 or more.
   */
  epsilon?: number;
}

/** Natural logarithm, `log(x + epsilon)` elementwise (fp16 or fp32). */
export function log(x: Tensor, options: LogOptions = {}): Tensor {
  return make({ kind: 'unary', fn: 'log', epsilon: options.epsilon ?? 0 }, [x], options);
}

// ---- binary ----

function binary(fn: BinaryFn) {
  return (a: TensorOrScalar, b: TensorOrScalar, options: OpOptions = {}): Tensor => {
    const like = graphOf([a, b], fn);
    return make(
      { kind: 'binary', fn },
      [asTensor(a, like, options.name), asTensor(b, like, options.name)],
      options,
    );
  };
}

export const add = binary('add');
export const sub = binary('sub');
export const mul = binary('mul');
export const div = binary('div');
export const pow = binary('pow');
export const maximum = binary('maximum');
export const minimum = binary('minimum');

// ---- comparisons and select ----

function comparison(fn: CompareFn) {
  return (a: TensorOrScalar, b: TensorOrScalar, options: OpOptions = {}): Tensor => {
    const like = graphOf([a, b], fn);
    return make(
      { kind: 'compare', fn },
      [asTensor(a, like, options.name), asTensor(b, like, options.name)],
      options,
    );
  };
}

/** `a > b` as bool (NumPy broadcasting); a mask for `select`. */
export const greater = comparison('greater');
/** `a < b` as bool (NumPy broadcasting); a mask for `select`. */
export const less = comparison('less');
/** `a == b` as bool (NumPy broadcasting); a mask for `select`. */
export const equal = comparison('equal');

/**
 * `cond ? a : b` elementwise, all three broadcast (NumPy); `cond` is bool (from `greater`, `less`
 * or `equal`), `a` and `b` share a dtype (a plain number takes the other's, or fp16). On the ANE
 * the comparison and its selects run in one kernel: bool never crosses a kernel boundary
 * (rule `dtype-bool`).
 */
export function select(cond: Tensor, a: TensorOrScalar, b: TensorOrScalar, options: OpOptions = {}): Tensor {
  const like = typeof a !== 'number' ? a : typeof b !== 'number' ? b : undefined;
  const scalar = (value: number, role: string): Tensor =>
    cond.graph.scalar(value, like?.dtype ?? 'fp16', {
      name: options.name === undefined ? role : `${options.name}_${role}`,
    });
  return make(
    { kind: 'select' },
    [cond, typeof a === 'number' ? scalar(a, 'a') : a, typeof b === 'number' ? scalar(b, 'b') : b],
    options,
  );
}

// ---- reductions ----

export interface ReduceOptions extends OpOptions {
  /** Keep reduced axes as size 1 (default false). */
  keepDims?: boolean;
}

function reduction(fn: ReduceFn) {
  return (x: Tensor, axes: number | readonly number[], options: ReduceOptions = {}): Tensor => {
    const label = `reduce_${fn}`;
    const list = (typeof axes === 'number' ? [axes] : axes).map((a) => normalizeAxis(a, x.rank, label, x));
    if (new Set(list).size !== list.length) {
      throw new ShapeError(label, x.name, [x.shape], `axes [${list.join(', ')}] repeat an axis`);
    }
    const op: Op = {
      kind: 'reduce',
      fn,
      axes: [...list].sort((a, b) => a - b),
      keepDims: options.keepDims ?? false,
    };
    return make(op, [x], options);
  };
}

export const reduceSum = reduction('sum');
export const reduceMax = reduction('max');

// ---- movement ----

/** Reshape to `shape` (one entry may be -1: inferred from the element count). */
export function reshape(x: Tensor, shape: readonly number[], options: OpOptions = {}): Tensor {
  const unknown = shape.filter((d) => d === -1).length;
  let resolved = [...shape];
  if (unknown === 1) {
    const known = shape.filter((d) => d !== -1).reduce((a, b) => a * b, 1);
    if (known <= 0 || x.size % known !== 0) {
      throw new ShapeError(
        'reshape',
        x.name,
        [x.shape],
        `cannot reshape ${x.size} elements to [${shape.join(', ')}]`,
      );
    }
    resolved = shape.map((d) => (d === -1 ? x.size / known : d));
  }
  return make({ kind: 'reshape', shape: resolved }, [x], options);
}

/** Permute axes (default: reverse them). */
export function transpose(x: Tensor, perm?: readonly number[], options: OpOptions = {}): Tensor {
  const resolved = (perm ?? x.shape.map((_, i) => x.rank - 1 - i)).map((a) =>
    normalizeAxis(a, x.rank, 'transpose', x),
  );
  return make({ kind: 'transpose', perm: resolved }, [x], options);
}

/** `size[i]` elements from `begin[i]` on each axis; a size of -1 runs to the end, a negative begin counts from it. */
export function slice(
  x: Tensor,
  begin: readonly number[],
  size: readonly number[],
  options: OpOptions = {},
): Tensor {
  if (begin.length !== x.rank || size.length !== x.rank) {
    throw new ShapeError(
      'slice',
      x.name,
      [x.shape],
      `begin [${begin.join(', ')}] and size [${size.join(', ')}] need ${x.rank} entries each`,
    );
  }
  const start = begin.map((b, i) => (b < 0 ? b + x.shape[i]! : b));
  const extent = size.map((s, i) => (s === -1 ? x.shape[i]! - start[i]! : s));
  return make({ kind: 'slice', begin: start, size: extent }, [x], options);
}

/** Join along `axis`. */
export function concat(values: readonly Tensor[], axis: number, options: OpOptions = {}): Tensor {
  const first = values[0];
  if (first === undefined) throw new IrError('concat: needs at least one tensor');
  return make({ kind: 'concat', axis: normalizeAxis(axis, first.rank, 'concat', first) }, values, options);
}

// ---- matmul, conv ----

export interface MatmulOptions extends OpOptions {
  transposeX?: boolean;
  transposeY?: boolean;
}

/** Batched matrix product over the last two axes (NumPy broadcasting of the batch axes). */
export function matmul(a: Tensor, b: Tensor, options: MatmulOptions = {}): Tensor {
  const op: Op = {
    kind: 'matmul',
    transposeX: options.transposeX ?? false,
    transposeY: options.transposeY ?? false,
  };
  return make(op, [a, b], options);
}

export interface ConvOptions extends OpOptions {
  strides?: readonly [number, number];
  /** [top, bottom, left, right] */
  pad?: readonly [number, number, number, number];
  dilations?: readonly [number, number];
  groups?: number;
}

/** 2-D convolution of x `[N, C, H, W]` with weight `[OC, C / groups, kH, kW]` (no bias: add it). */
export function conv2d(x: Tensor, weight: Tensor, options: ConvOptions = {}): Tensor {
  const op: Op = {
    kind: 'conv',
    strides: options.strides ?? [1, 1],
    pad: options.pad ?? [0, 0, 0, 0],
    dilations: options.dilations ?? [1, 1],
    groups: options.groups ?? 1,
  };
  return make(op, [x, weight], options);
}

// ---- softmax, cast, gather ----

export function softmax(x: Tensor, axis = -1, options: OpOptions = {}): Tensor {
  return make({ kind: 'softmax', axis: normalizeAxis(axis, x.rank, 'softmax', x) }, [x], options);
}

export interface CastOptions extends OpOptions {
  /** fp16 -> int8 with a scale quantizes (round half to even, saturate); int8 -> fp16 dequantizes. */
  scale?: number;
}

export function cast(x: Tensor, dtype: DType, options: CastOptions = {}): Tensor {
  const op: Op =
    options.scale === undefined ? { kind: 'cast', dtype } : { kind: 'cast', dtype, scale: options.scale };
  return make(op, [x], options);
}

/** `clamp(round_half_even(x / scale), -128, 127)` as int8. */
export function quantize(x: Tensor, scale: number, options: OpOptions = {}): Tensor {
  return cast(x, 'int8', { ...options, scale });
}

/** `q * scale` as fp16. */
export function dequantize(q: Tensor, scale: number, options: OpOptions = {}): Tensor {
  return cast(q, 'fp16', { ...options, scale });
}

/** Rows (`axis` 0) of `table` picked by int32 `indices`. Runs on the host: the ANE has no gather. */
export function gather(table: Tensor, indices: Tensor, axis = 0, options: OpOptions = {}): Tensor {
  return make(
    { kind: 'gather', axis: normalizeAxis(axis, table.rank, 'gather', table) },
    [table, indices],
    options,
  );
}
