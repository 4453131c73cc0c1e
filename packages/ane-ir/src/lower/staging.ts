/**
 * Host-side staging of packed kernel I/O: the values a kernel input packs, written into its
 * channels-first buffer, and the values a packed output holds, read back out. The layout is the
 * one `planIo` chose (`KernelPort.segments`); buffers are row-major `[C, W]` (element (c, w) at
 * `c*W + w`), the device layout of `[1, C, 1, W]`.
 */
import { IrError } from '../graph/errors';
import type { KernelPort, PackedSegment } from './io';

/** Values of a segment's source as `[rows, cols]` in staged orientation. */
function stagedShape(segment: PackedSegment): [number, number] {
  const shape = segment.shape;
  if (shape.length === 1) return [shape[0]!, 1];
  const [a, b] = [shape[0]!, shape.slice(1).reduce((x, y) => x * y, 1)];
  return segment.transposed ? [b, a] : [a, b];
}

function readStaged(values: ArrayLike<number>, segment: PackedSegment, row: number, col: number): number {
  if (!segment.transposed) {
    const cols = stagedShape(segment)[1];
    return values[row * cols + col]!;
  }
  // Staged [in, out] from a source [out, in]: element (i, o) is source (o, i).
  const inFeatures = segment.shape[1]!;
  return values[col * inFeatures + row]!;
}

/**
 * Packs the values named by each segment's `source` into one kernel input, as numbers in the
 * port's logical `[C, W]` layout (convert to fp16 bytes to write a device buffer).
 */
export function packInput(
  port: KernelPort,
  values: (source: string) => ArrayLike<number>,
  out: Float32Array = new Float32Array(port.logicalShape.reduce((a, b) => a * b, 1)),
): Float32Array {
  const width = port.logicalShape[port.logicalShape.length - 1] ?? 1;
  for (const segment of port.segments) {
    const data = values(segment.source);
    const count = segment.shape.reduce((a, b) => a * b, 1);
    if (data.length !== count) {
      throw new IrError(
        `packInput '${port.spec.name}': '${segment.source}' needs ${count} values (shape [${segment.shape.join(', ')}], row-major, as the graph declares it), got ${data.length}; pass the value's own array`,
      );
    }
    const [rows, cols] = stagedShape(segment);
    if (segment.axis === 'whole') {
      for (let r = 0; r < rows; r++)
        for (let c = 0; c < cols; c++) out[r * cols + c] = readStaged(data, segment, r, c);
    } else if (segment.axis === 'channel') {
      for (let r = 0; r < rows; r++)
        for (let c = 0; c < cols; c++)
          out[(segment.offset + r) * width + c] = readStaged(data, segment, r, c);
    } else {
      for (let r = 0; r < rows; r++)
        for (let c = 0; c < cols; c++) out[r * width + segment.offset + c] = readStaged(data, segment, r, c);
    }
  }
  return out;
}

/**
 * Splits a kernel output (numbers in the port's `[C, W]` layout) into the values it holds, by
 * source, each in the graph's own layout (the inverse of `packInput`: a weight staged `Wᵀ` comes
 * back `[out, in]`).
 */
export function unpackOutput(port: KernelPort, data: ArrayLike<number>): Map<string, Float32Array> {
  const width = port.logicalShape[port.logicalShape.length - 1] ?? 1;
  const size = port.logicalShape.reduce((a, b) => a * b, 1);
  if (data.length !== size) {
    throw new IrError(
      `unpackOutput '${port.spec.name}': the port holds ${size} values ([${port.logicalShape.join(', ')}]), got ${data.length}; pass the whole buffer the kernel returned for this port`,
    );
  }
  const result = new Map<string, Float32Array>();
  for (const segment of port.segments) {
    const [rows, cols] = stagedShape(segment);
    const values = new Float32Array(rows * cols);
    for (let r = 0; r < rows; r++)
      for (let c = 0; c < cols; c++) {
        const index =
          segment.axis === 'whole'
            ? r * cols + c
            : segment.axis === 'channel'
              ? (segment.offset + r) * width + c
              : r * width + segment.offset + c;
        // Staged (r, c) of a transposed weight is source (c, r) of `[out, in]` = `[cols, rows]`.
        values[segment.transposed ? c * rows + r : r * cols + c] = data[index]!;
      }
    result.set(segment.source, values);
  }
  return result;
}
