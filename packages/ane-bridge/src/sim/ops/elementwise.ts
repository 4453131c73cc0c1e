/**
 * Elementwise ops: unary activations and math, NumPy-broadcast binary arithmetic and comparisons,
 * and `select`. Every kernel evaluates in float64, stores fp32 and rounds an fp16 result once
 * (`finishFloat`); see ../numerics.ts.
 */

import type { StridedLayout } from '../layout';
import { runSimOp } from '../native-ops';
import { erfc, finishFloat } from '../numerics';
import type { FloatTensor, SimTensor } from '../tensor';

// ---------------------------------------------------------------------------------------------
// Binary ops

export type BinaryArithmeticOp = 'add' | 'sub' | 'mul' | 'real_div' | 'pow' | 'maximum' | 'minimum';
export type ComparisonOp = 'equal' | 'not_equal' | 'less' | 'less_equal' | 'greater' | 'greater_equal';

export const BINARY_ARITHMETIC_OPS: readonly BinaryArithmeticOp[] = [
  'add',
  'sub',
  'mul',
  'real_div',
  'pow',
  'maximum',
  'minimum',
];
export const COMPARISON_OPS: readonly ComparisonOp[] = [
  'equal',
  'not_equal',
  'less',
  'less_equal',
  'greater',
  'greater_equal',
];

/** out = x OP y with NumPy broadcasting; out, x, y are fp16 or fp32 (evaluated in float64, rounded once). */
export function binaryArithmetic(
  op: BinaryArithmeticOp,
  out: FloatTensor,
  x: Float32Array,
  y: Float32Array,
  layout: StridedLayout,
): void {
  runSimOp(
    op,
    out.data,
    (ops) =>
      ops.binary(
        BINARY_ARITHMETIC_OPS.indexOf(op),
        out.data,
        x,
        y,
        layout.rows,
        layout.inner,
        layout.innerStrides[0]!,
        layout.innerStrides[1]!,
        layout.rowOffsets[0]!,
        layout.rowOffsets[1]!,
        out.dtype === 'fp16',
      ),
    () => binaryArithmeticTwin(op, out, x, y, layout),
  );
}

export function binaryArithmeticTwin(
  op: BinaryArithmeticOp,
  out: FloatTensor,
  x: Float32Array,
  y: Float32Array,
  layout: StridedLayout,
): void {
  const o = out.data;
  const { rows, inner } = layout;
  const xStride = layout.innerStrides[0]!;
  const yStride = layout.innerStrides[1]!;
  const xRows = layout.rowOffsets[0]!;
  const yRows = layout.rowOffsets[1]!;
  for (let row = 0; row < rows; row++) {
    let xi = xRows[row]!;
    let yi = yRows[row]!;
    const start = row * inner;
    const end = start + inner;
    // One loop per op (the switch sits outside the innermost loop).
    switch (op) {
      case 'add':
        for (let i = start; i < end; i++, xi += xStride, yi += yStride) o[i] = x[xi]! + y[yi]!;
        break;
      case 'sub':
        for (let i = start; i < end; i++, xi += xStride, yi += yStride) o[i] = x[xi]! - y[yi]!;
        break;
      case 'mul':
        for (let i = start; i < end; i++, xi += xStride, yi += yStride) o[i] = x[xi]! * y[yi]!;
        break;
      case 'real_div':
        for (let i = start; i < end; i++, xi += xStride, yi += yStride) o[i] = x[xi]! / y[yi]!;
        break;
      case 'pow':
        for (let i = start; i < end; i++, xi += xStride, yi += yStride) o[i] = x[xi]! ** y[yi]!;
        break;
      case 'maximum':
        for (let i = start; i < end; i++, xi += xStride, yi += yStride) o[i] = Math.max(x[xi]!, y[yi]!);
        break;
      case 'minimum':
        for (let i = start; i < end; i++, xi += xStride, yi += yStride) o[i] = Math.min(x[xi]!, y[yi]!);
        break;
    }
  }
  finishFloat(out);
}

/** out = x CMP y as bool (0/1) with NumPy broadcasting. */
export function comparison(
  op: ComparisonOp,
  out: Uint8Array,
  x: Float32Array,
  y: Float32Array,
  layout: StridedLayout,
): void {
  const { rows, inner } = layout;
  const xStride = layout.innerStrides[0]!;
  const yStride = layout.innerStrides[1]!;
  for (let row = 0; row < rows; row++) {
    let xi = layout.rowOffsets[0]![row]!;
    let yi = layout.rowOffsets[1]![row]!;
    const end = row * inner + inner;
    for (let i = row * inner; i < end; i++, xi += xStride, yi += yStride) {
      const a = x[xi]!;
      const b = y[yi]!;
      let result: boolean;
      switch (op) {
        case 'equal':
          result = a === b;
          break;
        case 'not_equal':
          result = a !== b;
          break;
        case 'less':
          result = a < b;
          break;
        case 'less_equal':
          result = a <= b;
          break;
        case 'greater':
          result = a > b;
          break;
        case 'greater_equal':
          result = a >= b;
          break;
      }
      out[i] = result ? 1 : 0;
    }
  }
}

/** out = cond ? a : b, all three broadcast; cond is bool (or any number, nonzero = true). */
export function select(
  out: SimTensor,
  cond: ArrayLike<number>,
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  layout: StridedLayout,
): void {
  const o = out.data;
  const { rows, inner } = layout;
  const [cStride, aStride, bStride] = layout.innerStrides as [number, number, number];
  for (let row = 0; row < rows; row++) {
    let ci = layout.rowOffsets[0]![row]!;
    let ai = layout.rowOffsets[1]![row]!;
    let bi = layout.rowOffsets[2]![row]!;
    const end = row * inner + inner;
    for (let i = row * inner; i < end; i++, ci += cStride, ai += aStride, bi += bStride) {
      o[i] = cond[ci]! !== 0 ? a[ai]! : b[bi]!;
    }
  }
  // Operands are already of the result dtype, so nothing needs rounding.
}

// ---------------------------------------------------------------------------------------------
// Unary ops

export type UnaryOp =
  | 'exp'
  | 'log'
  | 'sqrt'
  | 'rsqrt'
  | 'inverse'
  | 'tanh'
  | 'sigmoid'
  | 'silu'
  | 'relu'
  | 'gelu_exact'
  | 'gelu_tanh'
  | 'gelu_sigmoid';

export interface UnaryParams {
  /** log: log(x + epsilon); rsqrt: 1/sqrt(x + epsilon); inverse: 1/(x + epsilon). */
  readonly epsilon?: number;
}

const SQRT_TWO_OVER_PI = Math.sqrt(2 / Math.PI);

function sigmoidOf(v: number): number {
  // Both branches keep exp from overflowing, so sigmoid(±large) is exactly 1 or 0.
  if (v >= 0) return 1 / (1 + Math.exp(-v));
  const e = Math.exp(v);
  return e / (1 + e);
}

/** The float64 value of a unary op at v (before fp32/fp16 rounding). */
export function unaryValue(op: UnaryOp, v: number, params: UnaryParams = {}): number {
  const epsilon = params.epsilon ?? 0;
  switch (op) {
    case 'exp':
      return Math.exp(v);
    case 'log':
      return Math.log(v + epsilon);
    case 'sqrt':
      return Math.sqrt(v);
    case 'rsqrt':
      return 1 / Math.sqrt(v + epsilon);
    case 'inverse':
      return 1 / (v + epsilon);
    case 'tanh':
      return Math.tanh(v);
    case 'sigmoid':
      return sigmoidOf(v);
    case 'silu':
      return v * sigmoidOf(v);
    case 'relu':
      // max(v, 0) that keeps NaN and turns -0 into +0.
      return v > 0 || Number.isNaN(v) ? v : 0;
    case 'gelu_exact':
      // 0.5 x (1 + erf(x / sqrt 2)) written with erfc, which keeps its precision for x << 0.
      return 0.5 * v * erfc(-v * Math.SQRT1_2);
    case 'gelu_tanh':
      return 0.5 * v * (1 + Math.tanh(SQRT_TWO_OVER_PI * (v + 0.044715 * v * v * v)));
    case 'gelu_sigmoid':
      return v * sigmoidOf(1.702 * v);
  }
}

/** The unary ops the native addon runs, in its op-code order (native/kernels/sim_ops.h). */
export const NATIVE_UNARY_OPS: readonly UnaryOp[] = [
  'exp',
  'log',
  'sqrt',
  'rsqrt',
  'inverse',
  'tanh',
  'sigmoid',
  'silu',
  'relu',
];

/** out = f(x) elementwise; out and x have the same element count. */
export function unary(op: UnaryOp, out: FloatTensor, x: Float32Array, params: UnaryParams = {}): void {
  const code = NATIVE_UNARY_OPS.indexOf(op);
  // The gelu forms stay TS-only: their erfc and tanh polynomials are not on a hot path.
  if (code < 0) {
    unaryTwin(op, out, x, params);
    return;
  }
  runSimOp(
    op,
    out.data,
    (ops) => ops.unary(code, out.data, x, params.epsilon ?? 0, out.dtype === 'fp16'),
    () => unaryTwin(op, out, x, params),
  );
}

export function unaryTwin(op: UnaryOp, out: FloatTensor, x: Float32Array, params: UnaryParams): void {
  const o = out.data;
  const n = o.length;
  switch (op) {
    // The activations of the hot paths get their own loops; the rest go through unaryValue.
    case 'exp':
      for (let i = 0; i < n; i++) o[i] = Math.exp(x[i]!);
      break;
    case 'sigmoid':
      for (let i = 0; i < n; i++) o[i] = sigmoidOf(x[i]!);
      break;
    case 'silu':
      for (let i = 0; i < n; i++) {
        const v = x[i]!;
        o[i] = v * sigmoidOf(v);
      }
      break;
    default:
      for (let i = 0; i < n; i++) o[i] = unaryValue(op, x[i]!, params);
  }
  finishFloat(out);
}

// ---------------------------------------------------------------------------------------------
// cast

/**
 * out = cast(x). To fp16: nearest even; to fp32: exact for fp16 sources; to integers: truncation
 * toward zero, saturated to the type's range (NaN to 0); to bool: x != 0.
 */
export function cast(out: SimTensor, x: SimTensor): void {
  const o = out.data;
  const src = x.data;
  const n = o.length;
  switch (out.dtype) {
    case 'fp16':
    case 'fp32':
      for (let i = 0; i < n; i++) o[i] = src[i]!;
      finishFloat(out as FloatTensor);
      return;
    case 'bool':
      for (let i = 0; i < n; i++) o[i] = src[i] !== 0 ? 1 : 0;
      return;
    default: {
      const [low, high] = INTEGER_RANGES[out.dtype];
      for (let i = 0; i < n; i++) {
        const v = Math.trunc(src[i]!);
        o[i] = Number.isNaN(v) ? 0 : Math.min(high, Math.max(low, v));
      }
    }
  }
}

const INTEGER_RANGES = {
  int8: [-128, 127],
  uint8: [0, 255],
  int32: [-(2 ** 31), 2 ** 31 - 1],
} as const;
