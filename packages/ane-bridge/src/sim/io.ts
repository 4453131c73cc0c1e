/**
 * Device I/O buffers <-> simulator tensors. A device buffer is dense, row-major, little-endian fp16
 * or fp32 of the declared shape (DESIGN.md, "The contract between the IR and the bridge"), in any
 * Uint8Array view (a Node Buffer at any byte offset included).
 *
 * fp16 conversion is the host kernels' (`fp32ToFp16` / `fp16ToFp32`: native F16C when the addon is
 * loaded, else its TypeScript twin, ane-ir's fp16 codec): round to nearest even, as the ANE stores.
 */
import { copyBytes, encodeFp16 } from 'ane-ir/mil';
import { fp16ToFp32, fp32ToFp16 } from '../kernels';

const littleEndian = new Uint8Array(Uint16Array.of(1).buffer)[0] === 1;

/** Typed-array view of `bytes` when aligned (no copy), else undefined. */
function alignedView<T extends Uint16Array | Float32Array>(
  bytes: Uint8Array,
  ArrayType: {
    new (buffer: ArrayBufferLike, byteOffset: number, length: number): T;
    BYTES_PER_ELEMENT: number;
  },
  count: number,
): T | undefined {
  if (!littleEndian || bytes.byteOffset % ArrayType.BYTES_PER_ELEMENT !== 0) return undefined;
  return new ArrayType(bytes.buffer, bytes.byteOffset, count);
}

/** out[i] = fp16 element i of `bytes`. */
export function readFp16Buffer(bytes: Uint8Array, out: Float32Array): void {
  // Misaligned: copy into a fresh, aligned buffer first.
  const bits =
    alignedView(bytes, Uint16Array, out.length) ??
    new Uint16Array(copyBytes(bytes, 0, 2 * out.length).buffer, 0, out.length);
  fp16ToFp32(bits, out);
}

/** out[i] = fp32 element i of `bytes`. */
export function readFp32Buffer(bytes: Uint8Array, out: Float32Array): void {
  const view = alignedView(bytes, Float32Array, out.length);
  if (view !== undefined) {
    out.set(view);
    return;
  }
  const data = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let i = 0; i < out.length; i++) out[i] = data.getFloat32(4 * i, true);
}

/** Writes `values` (rounded to fp16, nearest even) as fp16 into `bytes`. */
export function writeFp16Buffer(values: Float32Array, bytes: Uint8Array): void {
  const view = alignedView(bytes, Uint16Array, values.length);
  if (view !== undefined) {
    fp32ToFp16(values, view);
    return;
  }
  const bits = new Uint16Array(values.length);
  fp32ToFp16(values, bits);
  bytes.set(new Uint8Array(bits.buffer), 0);
}

/** Writes `values` as fp32 into `bytes`. */
export function writeFp32Buffer(values: Float32Array, bytes: Uint8Array): void {
  const view = alignedView(bytes, Float32Array, values.length);
  if (view !== undefined) {
    view.set(values);
    return;
  }
  const data = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let i = 0; i < values.length; i++) data.setFloat32(4 * i, values[i]!, true);
}

/** Encodes numbers (each rounded once to fp16, nearest even) as an fp16 device buffer (tests and tools). */
export function encodeFp16Buffer(values: ArrayLike<number>): Uint8Array {
  return new Uint8Array(encodeFp16(values).buffer);
}

/** Decodes an fp16 device buffer into numbers (tests and tools). */
export function decodeFp16Buffer(bytes: Uint8Array): Float32Array {
  const out = new Float32Array(Math.floor(bytes.byteLength / 2));
  readFp16Buffer(bytes, out);
  return out;
}
