/**
 * The contract between the IR and a device (DESIGN.md): MIL text, its weight blobs and the typed
 * signature of `main`. Buffers are dense, row-major, little-endian bytes of the declared shape; a
 * `[1, C, 1, S]` tensor puts element (c, s) at `c*S + s`.
 */
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

/** Bytes one element of a device I/O dtype takes. */
export function bytesPerElement(dtype: TensorSpec['dtype']): number {
  return dtype === 'fp16' ? 2 : 4;
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
