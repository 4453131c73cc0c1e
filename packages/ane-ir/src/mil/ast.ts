/**
 * The MIL AST: plain, readonly data that the parser builds, the printer prints, the validator checks
 * and the simulator interprets. Every node carries the `position` (1-based line and column) where
 * its text starts.
 *
 *   MilProgram { version: '1.0' | '1.3' | ..., buildInfo?, functions: Func[] }
 *   Func       { name: 'main', opset: 'ios18', params: Param[], body: Statement[], returns: ReturnRef[] }
 *   Statement  { kind: 'op', outputs: OpOutput[] (several for split), op: 'conv',
 *                args: Map<param, Argument>    // `conv(x=x, weight=W)`, in written order
 *                attributes: Map<name, Value>  // `[name=string("cv"), val=...]`, in written order }
 *   Argument   = RefArgument `x` | Value (inline literal) | TupleArgument `values=(a, b)`
 *   Value      = ScalarValue `int32(1)` / `tensor<int32, []>(1)`
 *              | TensorValue `tensor<int32, [2]>([1, 1])` (data flattened row-major)
 *              | BlobValue   `tensor<fp16, [..]>(BLOBFILE(path=string("@model_path/..."), offset=uint64(64)))`
 *
 * `const()` keeps its value in `attributes.get('val')`; attribute-only ops such as
 * `constexpr_affine_dequantize()[axis=..., quantized_data=..., scale=..., zero_point=...]` keep
 * their parameters in `attributes` too (the validator accepts a parameter from either place).
 *
 * Numbers are kept as written (`fp16(0.176777)` holds 0.176777); `literalNumber` gives the value the
 * literal denotes in its dtype (0.1767578125).
 */
import { roundToFp16 } from './fp16';
import type { MilDtype, ScalarType, TensorType, ValueType } from './types';

export interface SourcePosition {
  /** 1-based line. */
  readonly line: number;
  /** 1-based column, in UTF-16 code units. */
  readonly column: number;
}

/** One element of a literal: numbers for numeric dtypes, booleans for bool, strings for string. */
export type ScalarData = number | boolean | string;

/** `int32(1)`, `string("valid")`, `bool(true)`, or the program(1.0) spelling `tensor<int32, []>(1)`. */
export interface ScalarValue {
  readonly kind: 'scalar';
  /** A `ScalarType`, or a rank-0 `TensorType` when written `tensor<T, []>(...)`. */
  readonly type: ScalarType | TensorType;
  readonly value: ScalarData;
  readonly position: SourcePosition;
}

/** `tensor<int32, [4]>([0, 1, 3, 2])`: `data` holds every element, flattened row-major. */
export interface TensorValue {
  readonly kind: 'tensor';
  readonly type: TensorType;
  readonly data: readonly ScalarData[];
  readonly position: SourcePosition;
}

/** `tensor<fp16, [128, 64, 1, 1]>(BLOBFILE(path=string("@model_path/weights/w.bin"), offset=uint64(64)))`. */
export interface BlobValue {
  readonly kind: 'blob';
  readonly type: TensorType;
  /** Weights-dictionary key, e.g. `@model_path/weights/w.bin`. */
  readonly path: string;
  /** Byte offset of the 64-byte blob record (not of the payload). */
  readonly offset: number;
  readonly position: SourcePosition;
}

export type Value = ScalarValue | TensorValue | BlobValue;

/** A reference to a function parameter or an earlier statement's output. */
export interface RefArgument {
  readonly kind: 'ref';
  readonly name: string;
  readonly position: SourcePosition;
}

/** `values=(a, b, c)`: a tuple of references or literals (concat's variadic input). */
export interface TupleArgument {
  readonly kind: 'tuple';
  readonly items: readonly (RefArgument | Value)[];
  readonly position: SourcePosition;
}

export type Argument = RefArgument | TupleArgument | Value;

/** One declared result: `tensor<fp16, [1, 128, 1, 32]> out`. */
export interface OpOutput {
  readonly name: string;
  readonly type: ValueType;
  readonly position: SourcePosition;
}

/** `TYPE out = op(param=arg, ...)[attr=value, ...];`, or with several typed outputs (split). */
export interface OpStatement {
  readonly kind: 'op';
  readonly outputs: readonly OpOutput[];
  readonly op: string;
  readonly args: ReadonlyMap<string, Argument>;
  readonly attributes: ReadonlyMap<string, Value>;
  readonly position: SourcePosition;
}

export type Statement = OpStatement;

export interface Param {
  readonly name: string;
  readonly type: ValueType;
  readonly position: SourcePosition;
}

export interface ReturnRef {
  readonly name: string;
  readonly position: SourcePosition;
}

/** `func main<ios18>(params) { body } -> (returns);` */
export interface Func {
  readonly name: string;
  /** Opset tag, e.g. `ios16`, `ios17`, `ios18`. */
  readonly opset: string;
  readonly params: readonly Param[];
  readonly body: readonly Statement[];
  readonly returns: readonly ReturnRef[];
  readonly position: SourcePosition;
}

/** `[buildInfo = dict<string, string>({{"k", "v"}, ...})]`; the key/value types keep the 1.0 or 1.3 spelling. */
export interface BuildInfo {
  readonly keyType: ValueType;
  readonly valueType: ValueType;
  readonly entries: readonly { readonly key: string; readonly value: string }[];
  readonly position: SourcePosition;
}

/** A parsed MIL program (`Program` in `./program` is the IR-to-device contract that carries its text). */
export interface MilProgram {
  /** The `program(...)` version as written: `'1.0'`, `'1.3'`. */
  readonly version: string;
  readonly buildInfo?: BuildInfo;
  readonly functions: readonly Func[];
  readonly position: SourcePosition;
}

/** The `[name=string("...")]` attribute of a statement, when present. */
export function statementName(statement: OpStatement): string | undefined {
  const name = statement.attributes.get('name');
  return name?.kind === 'scalar' && typeof name.value === 'string' ? name.value : undefined;
}

/**
 * The number a literal element denotes in its dtype: fp16 rounds to nearest even
 * (`fp16(0.176777)` → 0.1767578125), fp32 to binary32; other dtypes keep the written number.
 */
export function literalNumber(dtype: MilDtype, written: number): number {
  if (dtype === 'fp16') return roundToFp16(written);
  if (dtype === 'fp32') return Math.fround(written);
  return written;
}
