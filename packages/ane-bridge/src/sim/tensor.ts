/**
 * The simulator's tensor: a dtype, a shape and a dense row-major typed array.
 *
 * Floating tensors live in Float32Array. An `fp16` tensor holds only values that are exactly
 * representable in fp16 (every op rounds its result before the next op reads it), so the array is
 * the fp16 tensor widened exactly; an `fp32` tensor holds any binary32 value.
 */
export type SimDtype = 'fp16' | 'fp32' | 'int8' | 'uint8' | 'int32' | 'bool';

export type SimData = Float32Array | Int8Array | Uint8Array | Int32Array;

export interface SimTensor {
  readonly dtype: SimDtype;
  readonly shape: readonly number[];
  readonly data: SimData;
}

/** A floating tensor (fp16 or fp32): the operand type of every arithmetic op. */
export interface FloatTensor extends SimTensor {
  readonly dtype: 'fp16' | 'fp32';
  readonly data: Float32Array;
}

const SIM_DTYPES: ReadonlySet<string> = new Set<SimDtype>(['fp16', 'fp32', 'int8', 'uint8', 'int32', 'bool']);

export function isSimDtype(dtype: string): dtype is SimDtype {
  return SIM_DTYPES.has(dtype);
}

export function isFloatDtype(dtype: SimDtype): dtype is 'fp16' | 'fp32' {
  return dtype === 'fp16' || dtype === 'fp32';
}

export function elementCount(shape: readonly number[]): number {
  let count = 1;
  for (const dim of shape) count *= dim;
  return count;
}

/** Row-major strides of a dense tensor of `shape`. */
export function contiguousStrides(shape: readonly number[]): number[] {
  const strides = new Array<number>(shape.length);
  let stride = 1;
  for (let axis = shape.length - 1; axis >= 0; axis--) {
    strides[axis] = stride;
    stride *= shape[axis]!;
  }
  return strides;
}

/** A zero-filled array for `count` elements of `dtype`. */
export function allocateData(dtype: SimDtype, count: number): SimData {
  switch (dtype) {
    case 'fp16':
    case 'fp32':
      return new Float32Array(count);
    case 'int8':
      return new Int8Array(count);
    case 'uint8':
    case 'bool':
      return new Uint8Array(count);
    case 'int32':
      return new Int32Array(count);
  }
}

export function allocateTensor(dtype: SimDtype, shape: readonly number[]): SimTensor {
  return { dtype, shape: [...shape], data: allocateData(dtype, elementCount(shape)) };
}

/** `axis` in [-rank, rank) as a non-negative axis; throws a RangeError outside. */
export function normalizeAxis(axis: number, rank: number): number {
  const normalized = axis < 0 ? axis + rank : axis;
  if (!Number.isInteger(normalized) || normalized < 0 || normalized >= rank) {
    throw new RangeError(`axis ${axis} is out of range for rank ${rank}`);
  }
  return normalized;
}

/** NumPy broadcasting of several shapes; throws a RangeError when they are incompatible. */
export function broadcastShapes(...shapes: readonly (readonly number[])[]): number[] {
  const rank = Math.max(0, ...shapes.map((shape) => shape.length));
  const result = new Array<number>(rank).fill(1);
  for (const shape of shapes) {
    const offset = rank - shape.length;
    for (let axis = 0; axis < shape.length; axis++) {
      const dim = shape[axis]!;
      const current = result[offset + axis]!;
      if (dim === current || dim === 1) continue;
      if (current === 1) result[offset + axis] = dim;
      else throw new RangeError(`shapes [${shapes.map((s) => s.join(', ')).join('], [')}] do not broadcast`);
    }
  }
  return result;
}

export function shapeText(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}
