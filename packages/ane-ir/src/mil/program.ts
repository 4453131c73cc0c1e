/**
 * The contract between the IR and a device (DESIGN.md): MIL text, its weight blobs and the typed
 * signature of `main`. Buffers are dense, row-major, little-endian bytes of the declared shape; a
 * `[1, C, 1, S]` tensor puts element (c, s) at `c*S + s`.
 */
import { MilError } from './errors';

export interface TensorSpec {
  name: string;
  dtype: 'fp16' | 'fp32';
  shape: number[];
}

export interface Program {
  /** MIL text in the dialect of reference/maderix-ane.md §2. */
  mil: string;
  /** Weights dictionary: BLOBFILE path (e.g. '@model_path/weights/w.bin') -> blob file bytes. */
  weights: Map<string, Uint8Array>;
  /** Function parameters, in declaration order. */
  inputs: TensorSpec[];
  /** Returned values, in return order. */
  outputs: TensorSpec[];
}

/**
 * Bytes one element of a device I/O dtype takes. Program I/O is fp16 or fp32 only; any other dtype
 * (int8, uint8, int16, ... from untyped callers) is refused rather than sized as 4 bytes.
 */
export function bytesPerElement(dtype: TensorSpec['dtype']): number {
  if (dtype === 'fp16') return 2;
  if (dtype === 'fp32') return 4;
  throw new MilError(
    `TensorSpec dtype must be 'fp16' or 'fp32', got ${JSON.stringify(dtype)}: device buffers hold dense fp16 or fp32; declare the program's I/O as fp16 and cast inside the program`,
  );
}

/** Number of elements of a shape (1 for a scalar `[]`). */
export function elementCount(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Size in bytes of a dense buffer holding `spec`. */
export function byteLength(spec: TensorSpec): number {
  return elementCount(spec.shape) * bytesPerElement(spec.dtype);
}
