/**
 * Constant tensor data: what `Graph.constant` and frozen `Graph.param`s hold. Stored in the dtype's
 * own typed array; fp16 as bit patterns (a Uint16Array), so weight blobs are written exactly.
 */
import { decodeFp16, encodeFp16, numberFromFp16Bits } from '../mil/fp16';
import type { DType } from './dtype';
import { IrError } from './errors';

/**
 * Values a caller may pass for a tensor: numbers in any array, or, for fp16, a Uint16Array of fp16
 * bit patterns (the same convention as device buffers).
 */
export type TensorValues =
  | Float32Array
  | Float64Array
  | Int32Array
  | Int8Array
  | Uint8Array
  | Uint16Array
  | readonly number[];

export type StoredValues = Uint16Array | Float32Array | Int32Array | Int8Array | Uint8Array;

export interface ConstantData {
  /** Storage dtype (int8 for quantized weights, whose value dtype is fp16). */
  readonly dtype: DType;
  /** fp16: bit patterns; fp32: Float32Array; int32: Int32Array; int8: Int8Array; bool: Uint8Array (0/1). */
  readonly values: StoredValues;
}

/** Converts caller values into stored data of `dtype`, checking the element count. */
export function toConstantData(
  values: TensorValues,
  dtype: DType,
  count: number,
  what: string,
): ConstantData {
  if (values.length !== count) {
    throw new IrError(`${what}: expected ${count} values for its shape, got ${values.length}`);
  }
  switch (dtype) {
    case 'fp16':
      if (values instanceof Uint16Array) return { dtype, values: values.slice() };
      return { dtype, values: encodeFp16(values) };
    case 'fp32':
      return { dtype, values: Float32Array.from(values as ArrayLike<number>) };
    case 'int32':
      return { dtype, values: Int32Array.from(checkIntegers(values, -(2 ** 31), 2 ** 31 - 1, what)) };
    case 'int8':
      return { dtype, values: Int8Array.from(checkIntegers(values, -128, 127, what)) };
    case 'bool':
      return { dtype, values: Uint8Array.from(values as ArrayLike<number>, (v) => (v ? 1 : 0)) };
  }
}

function checkIntegers(values: TensorValues, min: number, max: number, what: string): ArrayLike<number> {
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (!Number.isInteger(v) || v < min || v > max) {
      throw new IrError(`${what}: value ${v} at index ${i} is not an integer in [${min}, ${max}]`);
    }
  }
  return values as ArrayLike<number>;
}

/** The stored values as numbers (fp16 decoded). */
export function constantNumbers(data: ConstantData): Float64Array {
  if (data.dtype === 'fp16') return Float64Array.from(decodeFp16(data.values as Uint16Array));
  return Float64Array.from(data.values as ArrayLike<number>);
}

/** One element as a number. */
export function constantElement(data: ConstantData, index: number): number {
  const raw = data.values[index]!;
  return data.dtype === 'fp16' ? numberFromFp16Bits(raw) : raw;
}

const MAX_ABS = new WeakMap<ConstantData, number>();

/** Largest magnitude of the data (0 for empty data); computed once per data object. */
export function constantMaxAbs(data: ConstantData): number {
  const known = MAX_ABS.get(data);
  if (known !== undefined) return known;
  let max = 0;
  for (let i = 0; i < data.values.length; i++) {
    const v = Math.abs(constantElement(data, i));
    if (v > max || Number.isNaN(v)) max = v;
  }
  MAX_ABS.set(data, max);
  return max;
}

/** Data permuted like `transpose(perm)` of a tensor of `shape`. */
export function transposeData(
  data: ConstantData,
  shape: readonly number[],
  perm: readonly number[],
): ConstantData {
  const outShape = perm.map((axis) => shape[axis]!);
  const inStrides = stridesOf(shape);
  const outValues = new (data.values.constructor as new (n: number) => StoredValues)(data.values.length);
  gatherStrided(
    data.values,
    outShape,
    perm.map((axis) => inStrides[axis]!),
    0,
    outValues,
  );
  return { dtype: data.dtype, values: outValues };
}

/** Data of `slice(begin, size)` of a tensor of `shape`. */
export function sliceData(
  data: ConstantData,
  shape: readonly number[],
  begin: readonly number[],
  size: readonly number[],
): ConstantData {
  const strides = stridesOf(shape);
  let base = 0;
  for (let axis = 0; axis < shape.length; axis++) base += begin[axis]! * strides[axis]!;
  const outValues = new (data.values.constructor as new (n: number) => StoredValues)(
    size.reduce((a, b) => a * b, 1),
  );
  gatherStrided(data.values, size, strides, base, outValues);
  return { dtype: data.dtype, values: outValues };
}

/**
 * The one strided walk behind every transpose and slice (of constants and in the reference
 * interpreter): `out[flat] = x[base + Σ index[axis] * strides[axis]]` over the row-major indices of
 * `outShape`. A transpose permutes the strides; a slice starts at its corner.
 */
export function gatherStrided<T extends { [index: number]: number; readonly length: number }>(
  x: ArrayLike<number>,
  outShape: readonly number[],
  strides: readonly number[],
  base: number,
  out: T,
): T {
  const rank = outShape.length;
  const index = new Array<number>(rank).fill(0);
  let source = base;
  for (let flat = 0; flat < out.length; flat++) {
    out[flat] = x[source]!;
    for (let axis = rank - 1; axis >= 0; axis--) {
      index[axis]!++;
      source += strides[axis]!;
      if (index[axis]! < outShape[axis]!) break;
      source -= strides[axis]! * outShape[axis]!;
      index[axis] = 0;
    }
  }
  return out;
}

/** Row-major strides of a shape, in elements. */
export function stridesOf(shape: readonly number[]): number[] {
  const strides = new Array<number>(shape.length);
  let stride = 1;
  for (let axis = shape.length - 1; axis >= 0; axis--) {
    strides[axis] = stride;
    stride *= shape[axis]!;
  }
  return strides;
}
