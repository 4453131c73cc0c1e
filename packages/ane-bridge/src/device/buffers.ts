/**
 * A kernel's own I/O buffer: dense little-endian bytes of one TensorSpec, with conversions from and
 * to numbers. fp16 conversion rounds to nearest even (ane-ir/mil's fp16 helpers).
 */
import {
  byteLength,
  bytesPerElement,
  copyBytes,
  decodeFp16,
  elementCount,
  encodeFp16,
  type TensorSpec,
} from 'ane-ir/mil';
import { KernelInputError } from '../errors';

/** What a caller may pass for one tensor: raw device bytes, or values to convert. */
export type TensorData = Uint8Array | Uint16Array | Float32Array | Float64Array | readonly number[];

export class TensorBuffer {
  readonly bytes: Uint8Array;
  readonly elementCount: number;

  constructor(readonly spec: TensorSpec) {
    // Shared memory: the simulator's device thread runs kernels on these bytes in place.
    this.bytes = new Uint8Array(new SharedArrayBuffer(byteLength(spec)));
    this.elementCount = elementCount(spec.shape);
  }

  /**
   * Fills the buffer. A `Uint8Array` is taken as device bytes and must have exactly the buffer's
   * size; a `Uint16Array` as fp16 bit patterns (fp16 buffers only); anything else as values.
   */
  write(data: TensorData): void {
    const { spec } = this;
    const where = `tensor '${spec.name}' (${spec.dtype} [${spec.shape.join(', ')}])`;
    if (data instanceof Uint8Array) {
      if (data.byteLength !== this.bytes.byteLength) {
        throw new KernelInputError(
          `${where} takes ${this.bytes.byteLength} bytes, got ${data.byteLength}: pass the dense little-endian bytes of the declared shape, or a Float32Array of ${this.elementCount} values`,
        );
      }
      this.bytes.set(data);
      return;
    }
    if (data.length !== this.elementCount) {
      throw new KernelInputError(`${where} takes ${this.elementCount} values, got ${data.length}`);
    }
    if (data instanceof Uint16Array) {
      if (spec.dtype !== 'fp16') {
        throw new KernelInputError(
          `${where} is fp32: a Uint16Array of fp16 bit patterns does not fit; pass values`,
        );
      }
      this.bytes.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
      return;
    }
    if (spec.dtype === 'fp16') encodeFp16(data, this.fp16View());
    else this.fp32View().set(data);
  }

  /** The buffer's values as numbers. */
  read(out: Float32Array = new Float32Array(this.elementCount)): Float32Array {
    return decodeDeviceBytes(this.bytes, this.spec.dtype, out);
  }

  private fp16View(): Uint16Array {
    return new Uint16Array(this.bytes.buffer, this.bytes.byteOffset, this.elementCount);
  }

  private fp32View(): Float32Array {
    return new Float32Array(this.bytes.buffer, this.bytes.byteOffset, this.elementCount);
  }
}

/** Dense little-endian device bytes of `dtype` as numbers. `bytes` may be any view (a Node Buffer from `fs.readFileSync`, at any byte offset). */
export function decodeDeviceBytes(
  bytes: Uint8Array,
  dtype: TensorSpec['dtype'],
  out: Float32Array = new Float32Array(bytes.byteLength / bytesPerElement(dtype)),
): Float32Array {
  const size = bytesPerElement(dtype);
  // A typed array over `bytes` needs an element-aligned offset; otherwise copy into a fresh buffer
  // (not `bytes.slice()`: on a Node Buffer that is another view at the same offset).
  const aligned = bytes.byteOffset % size === 0 ? bytes : copyBytes(bytes);
  const count = Math.floor(aligned.byteLength / size);
  if (dtype === 'fp16') {
    return decodeFp16(new Uint16Array(aligned.buffer, aligned.byteOffset, count), out);
  }
  out.set(new Float32Array(aligned.buffer, aligned.byteOffset, count));
  return out;
}
