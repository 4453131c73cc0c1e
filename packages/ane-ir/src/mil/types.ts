/**
 * MIL element types and value types, as spelled in MIL text.
 *
 * A scalar is written bare in program(1.3) (`fp16`) and as a rank-0 tensor in program(1.0)
 * (`tensor<fp16, []>`); both mean the same value type, and `sameValueType` treats them as equal.
 */

/** Every dtype the text dialect can spell (the proto's DataType enum, by its text names). */
export const MIL_DTYPES = [
  'bool',
  'string',
  'fp16',
  'fp32',
  'fp64',
  'bf16',
  'int4',
  'int8',
  'int16',
  'int32',
  'int64',
  'uint1',
  'uint2',
  'uint3',
  'uint4',
  'uint6',
  'uint8',
  'uint16',
  'uint32',
  'uint64',
] as const;

export type MilDtype = (typeof MIL_DTYPES)[number];

const DTYPE_SET: ReadonlySet<string> = new Set(MIL_DTYPES);

export function isMilDtype(text: string): text is MilDtype {
  return DTYPE_SET.has(text);
}

export const FLOAT_DTYPES: readonly MilDtype[] = ['fp16', 'fp32', 'fp64', 'bf16'];
export const INTEGER_DTYPES: readonly MilDtype[] = MIL_DTYPES.filter(
  (dtype) => dtype !== 'bool' && dtype !== 'string' && !FLOAT_DTYPES.includes(dtype),
);

export function isFloatDtype(dtype: MilDtype): boolean {
  return FLOAT_DTYPES.includes(dtype);
}

export function isIntegerDtype(dtype: MilDtype): boolean {
  return INTEGER_DTYPES.includes(dtype);
}

/** A bare scalar type: `fp16`, `int32`, `bool`, `string`. */
export interface ScalarType {
  readonly kind: 'scalar';
  readonly dtype: MilDtype;
}

/** `tensor<dtype, [d0, d1, ...]>`; rank 0 (`[]`) is the program(1.0) spelling of a scalar. */
export interface TensorType {
  readonly kind: 'tensor';
  readonly dtype: MilDtype;
  readonly shape: readonly number[];
}

export type ValueType = ScalarType | TensorType;

export function scalarType(dtype: MilDtype): ScalarType {
  return { kind: 'scalar', dtype };
}

export function tensorType(dtype: MilDtype, shape: readonly number[]): TensorType {
  return { kind: 'tensor', dtype, shape };
}

/** Shape of a value type: `[]` for a scalar. */
export function shapeOf(type: ValueType): readonly number[] {
  return type.kind === 'scalar' ? [] : type.shape;
}

export function rankOf(type: ValueType): number {
  return shapeOf(type).length;
}

export function isScalarLike(type: ValueType): boolean {
  return rankOf(type) === 0;
}

/** Elements a value of this type holds (1 for a scalar). */
export function elementCountOf(type: ValueType): number {
  let count = 1;
  for (const dim of shapeOf(type)) count *= dim;
  return count;
}

export function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((dim, i) => dim === b[i]);
}

/** Same dtype and shape; a bare scalar equals a rank-0 tensor. */
export function sameValueType(a: ValueType, b: ValueType): boolean {
  return a.dtype === b.dtype && sameShape(shapeOf(a), shapeOf(b));
}

/** The type as MIL text spells it: `fp16`, `tensor<fp16, [1, 64, 1, 32]>`. */
export function formatValueType(type: ValueType): string {
  if (type.kind === 'scalar') return type.dtype;
  return `tensor<${type.dtype}, [${type.shape.join(', ')}]>`;
}

/** Bytes per element in a weight blob or I/O buffer; undefined for sub-byte, bool and string dtypes. */
export function byteWidthOf(dtype: MilDtype): number | undefined {
  switch (dtype) {
    case 'int8':
    case 'uint8':
      return 1;
    case 'fp16':
    case 'bf16':
    case 'int16':
    case 'uint16':
      return 2;
    case 'fp32':
    case 'int32':
    case 'uint32':
      return 4;
    case 'fp64':
    case 'int64':
    case 'uint64':
      return 8;
    default:
      return undefined;
  }
}
