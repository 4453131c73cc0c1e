/**
 * Staging: moving one value between its host array (graph layout, row-major fp32) and its segment
 * of a kernel's device buffer (`KernelPort`: channels-first `[C, W]`, fp16 or fp32 bytes), as
 * strided blocks through the native conversion kernels, never element by element in JS. The
 * layout rules are ane-ir's (`packInput`/`unpackOutput` are their readable twins, and the tests
 * compare the two).
 *
 * A segment is a `rows x cols` block of the port: 'whole' (the port is the value), 'channel'
 * (channels `[offset, offset + rows)`, all columns) or 'spatial' (columns `[offset, offset + cols)`
 * of every channel). A weight staged transposed holds `Wᵀ`: the value `[out, in]` is written as
 * `[in, out]`.
 */
import type { KernelPort, PackedSegment } from 'ane-ir';
import {
  fp16ToFp32Strided,
  fp16ToFp32Transposed,
  fp32ToFp16Strided,
  fp32ToFp16Transposed,
  hostKernels,
  type StridedBlock,
} from '../kernels';
import { nativeAddon } from '../native/loader';

/** Where a segment sits in its port's buffer, and the value's shape as staged. */
export interface SegmentPlacement {
  /** Rows and columns as staged (`[in, out]` for a transposed weight). */
  readonly rows: number;
  readonly cols: number;
  /** Element offset of staged (0, 0) in the port buffer, and the port's row length. */
  readonly offset: number;
  readonly rowStride: number;
  readonly transposed: boolean;
}

export function segmentPlacement(port: KernelPort, segment: PackedSegment): SegmentPlacement {
  const shape = segment.shape;
  const rest = shape.slice(1).reduce((a, b) => a * b, 1);
  const [valueRows, valueCols] = shape.length <= 1 ? [shape[0] ?? 1, 1] : [shape[0]!, rest];
  const [rows, cols] = segment.transposed ? [valueCols, valueRows] : [valueRows, valueCols];
  const width = port.logicalShape[port.logicalShape.length - 1] ?? 1;
  switch (segment.axis) {
    case 'whole':
      return { rows, cols, offset: 0, rowStride: cols, transposed: segment.transposed };
    case 'channel':
      return { rows, cols, offset: segment.offset * width, rowStride: width, transposed: segment.transposed };
    case 'spatial':
      return { rows, cols, offset: segment.offset, rowStride: width, transposed: segment.transposed };
  }
}

/** A port's buffer as typed elements: fp16 bits or fp32 values. */
export type PortElements =
  | { readonly dtype: 'fp16'; readonly data: Uint16Array }
  | { readonly dtype: 'fp32'; readonly data: Float32Array };

export function portElements(bytes: Uint8Array, dtype: 'fp16' | 'fp32'): PortElements {
  return dtype === 'fp16'
    ? { dtype, data: new Uint16Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 2) }
    : { dtype, data: new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4) };
}

/** Copies a rows x cols block between two fp32 or two fp16 arrays, row by row (one memcpy per row). */
function copyRows<T extends Float32Array | Uint16Array>(src: T, dst: T, block: Required<StridedBlock>): void {
  const { rows, cols, srcOffset, srcRowStride, dstOffset, dstRowStride } = block;
  if (srcRowStride === cols && dstRowStride === cols) {
    dst.set(src.subarray(srcOffset, srcOffset + rows * cols), dstOffset);
    return;
  }
  // Natively (the simulator's row copy, 4- or 1-byte elements): a subarray and a set per row cost
  // far more than the copy when rows are a few hundred bytes.
  const native = nativeAddon().addon?.simOps?.copyRows;
  if (native !== undefined && rows > 1) {
    if (src instanceof Float32Array) {
      native(dst as Float32Array, dstOffset, dstRowStride, src, srcOffset, srcRowStride, rows, cols);
    } else {
      const bytes = (a: Uint16Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
      native(
        bytes(dst as Uint16Array),
        2 * dstOffset,
        2 * dstRowStride,
        bytes(src as Uint16Array),
        2 * srcOffset,
        2 * srcRowStride,
        rows,
        2 * cols,
      );
    }
    return;
  }
  for (let r = 0; r < rows; r++) {
    const from = srcOffset + r * srcRowStride;
    dst.set(src.subarray(from, from + cols), dstOffset + r * dstRowStride);
  }
}

/**
 * The strided block between a value (dense, graph layout) and its segment of a port, in the
 * direction of the copy. A transposed segment holds `[in, out]` of a value `[out, in]`: the value's
 * rows are `place.cols` long, and the transposing kernels read the value's `[out, in]` rows.
 */
function stagingBlock(place: SegmentPlacement, direction: 'into-port' | 'from-port'): Required<StridedBlock> {
  const value = { offset: 0, stride: place.transposed ? place.rows : place.cols };
  const port = { offset: place.offset, stride: place.rowStride };
  const [src, dst] = direction === 'into-port' ? [value, port] : [port, value];
  const [rows, cols] =
    direction === 'into-port' && place.transposed ? [place.cols, place.rows] : [place.rows, place.cols];
  return {
    rows,
    cols,
    srcOffset: src.offset,
    srcRowStride: src.stride,
    dstOffset: dst.offset,
    dstRowStride: dst.stride,
  };
}

/**
 * Writes `values` (the value in graph layout) into its segment of a port. A transposed segment
 * takes the value `[out, in]` and writes `[in, out]` (the native transposing conversion).
 */
export function stageValue(values: Float32Array, port: PortElements, place: SegmentPlacement): void {
  const block = stagingBlock(place, 'into-port');
  if (port.dtype === 'fp16') {
    if (place.transposed) fp32ToFp16Transposed(values, port.data, block);
    else fp32ToFp16Strided(values, port.data, block);
  } else if (place.transposed) transposeFp32(values, port.data, block);
  else copyRows(values, port.data, block);
}

/**
 * `stageValue` for an fp16 port as background work (ane-bridge's background kernels: on Linux a
 * thread of its own, off the pool), the same bits. `values` and the port's memory must stay put
 * until it settles (SharedArrayBuffers are worked on in place).
 */
export function stageValueInBackground(
  values: Float32Array,
  port: PortElements & { dtype: 'fp16' },
  place: SegmentPlacement,
): Promise<void> {
  const block = stagingBlock(place, 'into-port');
  const kernels = hostKernels.active.background;
  return place.transposed
    ? kernels.fp32ToFp16TransposedAsync(values, port.data, block)
    : kernels.fp32ToFp16StridedAsync(values, port.data, block);
}

/** Reads a segment of a port into `out` (the value in graph layout; the inverse of `stageValue`). */
export function unstageValue(port: PortElements, place: SegmentPlacement, out: Float32Array): void {
  const block = stagingBlock(place, 'from-port');
  if (port.dtype === 'fp16') {
    if (place.transposed) fp16ToFp32Transposed(port.data, out, block);
    else fp16ToFp32Strided(port.data, out, block);
  } else if (place.transposed) transposeFp32(port.data, out, block);
  else copyRows(port.data, out, block);
}

/**
 * Copies a value from one kernel's output segment to another kernel's input segment as device
 * bytes (fp16 stays fp16: never decoded and re-encoded). Returns false when the two cannot be
 * copied directly (different dtypes, or one side transposed); the caller then goes through a host
 * fp32 copy.
 */
export function copyDeviceValue(
  from: PortElements,
  fromPlace: SegmentPlacement,
  to: PortElements,
  toPlace: SegmentPlacement,
): boolean {
  if (from.dtype !== to.dtype || fromPlace.transposed || toPlace.transposed) return false;
  const block = {
    rows: toPlace.rows,
    cols: toPlace.cols,
    srcOffset: fromPlace.offset,
    srcRowStride: fromPlace.rowStride,
    dstOffset: toPlace.offset,
    dstRowStride: toPlace.rowStride,
  };
  if (from.dtype === 'fp16') copyRows(from.data, to.data as Uint16Array, block);
  else copyRows(from.data, to.data as Float32Array, block);
  return true;
}

/** dst[dstOffset + c*dstRowStride + r] = src[srcOffset + r*srcRowStride + c] for fp32 ports (rare: fp32 weights staged transposed). */
function transposeFp32(src: Float32Array, dst: Float32Array, block: Required<StridedBlock>): void {
  const { rows, cols, srcOffset, srcRowStride, dstOffset, dstRowStride } = block;
  for (let r = 0; r < rows; r++)
    for (let c = 0; c < cols; c++)
      dst[dstOffset + c * dstRowStride + r] = src[srcOffset + r * srcRowStride + c]!;
}
