/**
 * Compile-time values: MIL literals and BLOBFILE constants turned into simulator tensors.
 * Blob payloads are copied out of the weights dictionary (the weights are baked into the
 * compiled program, rule `blob-weights-baked`).
 */
import type { BlobRecord, BlobValue, ScalarData, Value, ValueType } from 'ane-ir/mil';
import { decodeFp16, literalData, readBlobTensor, shapeOf } from 'ane-ir/mil';
import type { MatmulGeometry } from './ops/matmul';
import type { SimDtype, SimTensor } from './tensor';
import { allocateData, elementCount, isSimDtype } from './tensor';

/** A named value while planning: its type, its buffer, and for constants their elements. */
export interface PlannedValue {
  readonly type: ValueType;
  /** Absent only for string values, which exist at compile time only. */
  readonly tensor?: SimTensor;
  /** Known at compile time (literal, const, constexpr, or folded from constants). */
  readonly constant: boolean;
  /** The elements of a constant, as numbers, booleans or strings. */
  readonly elements?: readonly ScalarData[];
  /**
   * The same elements read in place from another tensor (a slice, a transpose): a consumer that
   * takes strided operands (matmul's GEMM) reads them there, and the copy that would make this
   * value dense is then never run (see ProgramPlanner's pruning).
   */
  readonly matrix?: MatrixView;
  /**
   * How a matmul computed this value: a consumer that wants the product transposed (a transpose of
   * the last two axes) computes opᵀ(y)·opᵀ(x) straight into its own buffer instead (the same dot
   * products, so the same bits), and the matmul is then not run when nothing else reads it.
   */
  readonly product?: GemmProduct | BatchedProduct;
}

/** A GEMM operand read in place: op(operand) starts at data[0] with leading dimension `ld`. */
export interface GemmOperand {
  /** The tensor buffer `data` lies in (what the step reads, for pruning). */
  readonly source: Float32Array;
  readonly data: Float32Array;
  readonly ld: number;
  readonly transposed: boolean;
  /**
   * Bound after planning when the operand lies in an fp16 program input that only GEMMs read: the
   * GEMM then reads the input's fp16 bits (widened as it packs them) and the run does not decode
   * that input (SimCompileOptions.halfInputOperands). Shared by the copies of an operand.
   */
  readonly inputHalf: { binding?: HalfInputBinding };
}

/** Per program input, the fp16 bits a run reads in place (set at the start of each run). */
export type HalfInputs = (Uint16Array | undefined)[];

/** Where a GEMM operand lies in an fp16 program input: `views[input]`, from element `offset`. */
export interface HalfInputBinding {
  readonly views: HalfInputs;
  readonly input: number;
  readonly offset: number;
}

/** out [M, N] = op(a) [M, K] · op(b) [K, N], rounded, saturated at `saturateAt` when given. */
export interface GemmProduct {
  readonly a: GemmOperand;
  readonly b: GemmOperand;
  readonly M: number;
  readonly N: number;
  readonly K: number;
  readonly saturateAt: number | undefined;
}

/**
 * A batched matmul's product over dense operands: entry e is op(x at xOffsets[e]) · op(y at
 * yOffsets[e]), written at out[e * M * N] (see MatmulGeometry).
 */
export interface BatchedProduct {
  readonly x: Float32Array;
  readonly y: Float32Array;
  readonly geometry: MatmulGeometry;
  readonly saturateAt: number | undefined;
}

/**
 * A value seen as a matrix [rows, cols] (cols: its last axis; rows: the product of the others)
 * whose element (r, c) is `source[offset + r * rowStride + c * colStride]`.
 */
export interface MatrixView {
  readonly source: Float32Array;
  readonly offset: number;
  readonly rows: number;
  readonly cols: number;
  readonly rowStride: number;
  readonly colStride: number;
}

/** Thrown for what the simulator cannot represent; the compiler turns it into a CompileError. */
export class UnsupportedError extends Error {
  override name = 'UnsupportedError';
}

export function simDtypeOf(type: ValueType): SimDtype {
  if (!isSimDtype(type.dtype)) {
    throw new UnsupportedError(
      `the simulator has no ${type.dtype} tensors (supported: fp16, fp32, int8, uint8, int32, bool)`,
    );
  }
  return type.dtype;
}

/** A tensor holding literal elements (fp16 literals already rounded by `literalData`). */
export function tensorFromElements(type: ValueType, elements: readonly ScalarData[]): SimTensor {
  const dtype = simDtypeOf(type);
  const shape = shapeOf(type);
  // Compared before allocating: a huge declared shape must not allocate first.
  const count = elementCount(shape);
  if (elements.length !== count) {
    throw new UnsupportedError(
      `literal holds ${elements.length} elements, its type ${shape.length === 0 ? 'a scalar' : `[${shape.join(', ')}]`} needs ${count}`,
    );
  }
  const data = allocateData(dtype, count);
  for (let i = 0; i < data.length; i++) {
    const element = elements[i]!;
    data[i] = typeof element === 'boolean' ? (element ? 1 : 0) : Number(element);
  }
  return { dtype, shape, data };
}

/**
 * Decodes the payload of a BLOBFILE constant (a fresh copy, whatever view `bytes` is) into a tensor
 * of its declared type. `record` is the validator's reading of it: for a record another tool wrote,
 * the payload at record + 64 with the declared dtype (the validator has already warned about it).
 */
export function tensorFromBlob(value: BlobValue, record: BlobRecord, bytes: Uint8Array): SimTensor {
  const dtype = simDtypeOf(value.type);
  const shape = value.type.shape;
  const expected = { elementCount: elementCount(shape) };
  const options = { deviations: [] };
  switch (dtype) {
    case 'fp16':
      return {
        dtype,
        shape,
        data: decodeFp16(readBlobTensor(bytes, record.offset, { ...expected, dtype }, options)),
      };
    case 'fp32':
    case 'int8':
    case 'uint8':
    case 'int32':
      return { dtype, shape, data: readBlobTensor(bytes, record.offset, { ...expected, dtype }, options) };
    case 'bool':
      throw new UnsupportedError('bool blobs are not supported');
  }
}

/** A literal or blob `Value` as a planned constant. */
export function plannedConstant(
  value: Value,
  blobs: ReadonlyMap<BlobValue, BlobRecord>,
  weights: ReadonlyMap<string, Uint8Array>,
): PlannedValue {
  if (value.kind === 'blob') {
    const record = blobs.get(value);
    const bytes = weights.get(value.path);
    if (record === undefined || bytes === undefined)
      throw new UnsupportedError(`weight blob '${value.path}' was not resolved`);
    return { type: value.type, tensor: tensorFromBlob(value, record, bytes), constant: true };
  }
  const elements = literalData(value) ?? [];
  if (value.type.dtype === 'string') return { type: value.type, constant: true, elements };
  return { type: value.type, tensor: tensorFromElements(value.type, elements), constant: true, elements };
}
