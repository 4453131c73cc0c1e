/**
 * Strided walks: how to visit one or more operands in step with a dense row-major output. Planned
 * once at compile time; the run-time loops only read offsets. Broadcasting, transpose and slicing
 * are all a walk with different per-axis strides.
 */
import { runSimOp } from './native-ops';
import { broadcastShapes, contiguousStrides } from './tensor';

/**
 * The output is `rows` contiguous runs of `inner` elements. Operand k's run r starts at
 * `rowOffsets[k][r]` and advances by `innerStrides[k]` per element (0 = broadcast).
 */
export interface StridedLayout {
  readonly rows: number;
  readonly inner: number;
  readonly innerStrides: readonly number[];
  readonly rowOffsets: readonly Int32Array[];
}

/**
 * Plans a walk over `outShape` where operand k's element for output index (i0, i1, ...) sits at
 * `starts[k] + sum_a i_a * strides[k][a]`.
 */
export function planStridedWalk(
  outShape: readonly number[],
  strides: readonly (readonly number[])[],
  starts: readonly number[] = strides.map(() => 0),
): StridedLayout {
  // Merge adjacent axes every operand walks as one (stride[a] == stride[a+1] * dim[a+1]); drop
  // size-1 axes. The innermost run then is as long as possible.
  const dims: number[] = [];
  const merged: number[][] = strides.map(() => []);
  for (let axis = 0; axis < outShape.length; axis++) {
    const dim = outShape[axis]!;
    if (dim === 1) continue;
    const last = dims.length - 1;
    if (last >= 0 && strides.every((s, k) => merged[k]![last] === s[axis]! * dim)) {
      dims[last] = dims[last]! * dim;
      strides.forEach((s, k) => {
        merged[k]![last] = s[axis]!;
      });
    } else {
      dims.push(dim);
      strides.forEach((s, k) => {
        merged[k]!.push(s[axis]!);
      });
    }
  }
  if (outShape.includes(0)) {
    return {
      rows: 0,
      inner: 0,
      innerStrides: strides.map(() => 0),
      rowOffsets: strides.map(() => new Int32Array(0)),
    };
  }
  if (dims.length === 0) {
    return {
      rows: 1,
      inner: 1,
      innerStrides: strides.map(() => 0),
      rowOffsets: starts.map((s) => Int32Array.of(s)),
    };
  }

  const inner = dims[dims.length - 1]!;
  const outerDims = dims.slice(0, -1);
  let rows = 1;
  for (const dim of outerDims) rows *= dim;
  const rowOffsets = merged.map((operandStrides, k) => {
    const offsets = new Int32Array(rows);
    const counter = new Array<number>(outerDims.length).fill(0);
    let offset = starts[k]!;
    for (let row = 0; row < rows; row++) {
      offsets[row] = offset;
      // Odometer step over the outer axes, keeping `offset` in step.
      for (let axis = outerDims.length - 1; axis >= 0; axis--) {
        counter[axis]!++;
        offset += operandStrides[axis]!;
        if (counter[axis]! < outerDims[axis]!) break;
        offset -= operandStrides[axis]! * outerDims[axis]!;
        counter[axis] = 0;
      }
    }
    return offsets;
  });
  return { rows, inner, innerStrides: merged.map((s) => s[s.length - 1]!), rowOffsets };
}

/** Strides that read a dense operand of `shape` broadcast (NumPy rules) to `outShape`. */
export function broadcastStrides(shape: readonly number[], outShape: readonly number[]): number[] {
  const own = contiguousStrides(shape);
  const offset = outShape.length - shape.length;
  return outShape.map((dim, axis) => {
    const ownAxis = axis - offset;
    if (ownAxis < 0) return 0;
    return shape[ownAxis] === 1 && dim !== 1 ? 0 : own[ownAxis]!;
  });
}

/** Plans the walk of dense `operandShapes` broadcast to `outShape`. */
export function planBroadcast(
  outShape: readonly number[],
  operandShapes: readonly (readonly number[])[],
): StridedLayout {
  const expected = broadcastShapes(outShape, ...operandShapes);
  if (expected.length !== outShape.length || expected.some((dim, axis) => dim !== outShape[axis])) {
    throw new RangeError(
      `operands [${operandShapes.map((s) => s.join(', ')).join('], [')}] do not broadcast to [${outShape.join(', ')}]`,
    );
  }
  return planStridedWalk(
    outShape,
    operandShapes.map((shape) => broadcastStrides(shape, outShape)),
  );
}

/** out[dense] = src[walk]: the copy behind transpose, slicing and broadcasting moves. */
export function gatherCopy<T extends Float32Array | Int8Array | Uint8Array | Int32Array>(
  out: T,
  src: T,
  layout: StridedLayout,
): void {
  runSimOp(
    'gather',
    out,
    (ops) => ops.gather(out, src, layout.rows, layout.inner, layout.innerStrides[0]!, layout.rowOffsets[0]!),
    () => gatherCopyTwin(out, src, layout),
  );
}

function gatherCopyTwin<T extends Float32Array | Int8Array | Uint8Array | Int32Array>(
  out: T,
  src: T,
  layout: StridedLayout,
): void {
  const { rows, inner } = layout;
  const stride = layout.innerStrides[0]!;
  const offsets = layout.rowOffsets[0]!;
  for (let row = 0; row < rows; row++) {
    const base = offsets[row]!;
    const start = row * inner;
    // A view per row pays off only for long runs.
    if (stride === 1 && inner >= 64) out.set(src.subarray(base, base + inner) as never, start);
    else for (let i = 0; i < inner; i++) out[start + i] = src[base + i * stride]!;
  }
}
