/**
 * Data movement: transpose, slice_by_size, slice_by_index, concat (plain and interleaved), split,
 * band_part. They move fp16 values without arithmetic, so nothing is rounded. `reshape` and
 * `identity` need no kernel: the interpreter aliases their output to their input buffer.
 *
 * Planning (shapes, offsets) happens at compile time and returns a `StridedLayout` or a small
 * geometry object; the run-time kernels are plain loops.
 */
import type { StridedLayout } from '../layout';
import { gatherCopy, planStridedWalk } from '../layout';
import { runSimOp } from '../native-ops';
import type { SimData } from '../tensor';
import { contiguousStrides, normalizeAxis } from '../tensor';

// ---------------------------------------------------------------------------------------------
// transpose

/** out = x.transpose(perm): out.shape[a] = x.shape[perm[a]]. */
export function planTranspose(
  xShape: readonly number[],
  perm: readonly number[],
): { outShape: number[]; layout: StridedLayout } {
  const rank = xShape.length;
  if (perm.length !== rank)
    throw new RangeError(`transpose: perm [${perm.join(', ')}] has ${perm.length} entries for rank ${rank}`);
  const axes = perm.map((axis) => normalizeAxis(axis, rank));
  if (new Set(axes).size !== rank)
    throw new RangeError(`transpose: perm [${perm.join(', ')}] is not a permutation`);
  const xStrides = contiguousStrides(xShape);
  const outShape = axes.map((axis) => xShape[axis]!);
  return { outShape, layout: planStridedWalk(outShape, [axes.map((axis) => xStrides[axis]!)]) };
}

export function transpose(out: SimData, x: SimData, layout: StridedLayout): void {
  gatherCopy(out, x as typeof out, layout);
}

// ---------------------------------------------------------------------------------------------
// slices

/** A slice as per-axis start and step over x; the result shape is `outShape`. */
export interface SliceSpec {
  readonly begin: readonly number[];
  readonly step: readonly number[];
  readonly outShape: readonly number[];
}

/**
 * slice_by_size: begin[a] (negative counts from the end) and size[a] (-1 = to the end).
 */
export function sliceBySizeSpec(
  xShape: readonly number[],
  begin: readonly number[],
  size: readonly number[],
): SliceSpec {
  const rank = xShape.length;
  if (begin.length !== rank || size.length !== rank) {
    throw new RangeError(
      `slice_by_size: begin and size need ${rank} entries, got ${begin.length} and ${size.length}`,
    );
  }
  const start = begin.map((b, axis) => (b < 0 ? b + xShape[axis]! : b));
  const outShape = size.map((s, axis) => (s === -1 ? xShape[axis]! - start[axis]! : s));
  outShape.forEach((extent, axis) => {
    const dim = xShape[axis]!;
    if (start[axis]! < 0 || extent < 0 || start[axis]! + extent > dim) {
      throw new RangeError(
        `slice_by_size: axis ${axis} of extent ${dim} cannot take begin ${begin[axis]} size ${size[axis]}`,
      );
    }
  });
  return { begin: start, step: new Array<number>(rank).fill(1), outShape };
}

export interface SliceByIndexParams {
  readonly begin: readonly number[];
  readonly end: readonly number[];
  readonly stride?: readonly number[];
  readonly beginMask?: readonly boolean[];
  readonly endMask?: readonly boolean[];
  readonly squeezeMask?: readonly boolean[];
}

/**
 * slice_by_index with NumPy semantics: per axis begin:end:stride, negative indices count from the
 * end, a set begin_mask/end_mask bit means "from the start"/"to the end" in the stride's direction,
 * and squeeze_mask drops the axis (which then holds the element at begin). `outShape` keeps
 * squeezed axes as 1; `squeezedShape` removes them.
 */
export function sliceByIndexSpec(
  xShape: readonly number[],
  params: SliceByIndexParams,
): SliceSpec & { squeezedShape: number[] } {
  const rank = xShape.length;
  const begin: number[] = [];
  const step: number[] = [];
  const outShape: number[] = [];
  const squeezedShape: number[] = [];
  for (let axis = 0; axis < rank; axis++) {
    const dim = xShape[axis]!;
    const stride = params.stride?.[axis] ?? 1;
    if (stride === 0) throw new RangeError(`slice_by_index: stride on axis ${axis} is 0`);
    const squeeze = params.squeezeMask?.[axis] ?? false;
    let first = params.begin[axis] ?? 0;
    let last = params.end[axis] ?? dim;
    if (first < 0) first += dim;
    if (last < 0) last += dim;
    if (squeeze) {
      if (first < 0 || first >= dim)
        throw new RangeError(
          `slice_by_index: squeezed index ${params.begin[axis]} out of range on axis ${axis}`,
        );
      begin.push(first);
      step.push(1);
      outShape.push(1);
      continue;
    }
    if (stride > 0) {
      if (params.beginMask?.[axis]) first = 0;
      if (params.endMask?.[axis]) last = dim;
      first = Math.min(Math.max(first, 0), dim);
      last = Math.min(Math.max(last, 0), dim);
    } else {
      if (params.beginMask?.[axis]) first = dim - 1;
      if (params.endMask?.[axis]) last = -1;
      first = Math.min(Math.max(first, -1), dim - 1);
      last = Math.min(Math.max(last, -1), dim - 1);
    }
    const extent = Math.max(0, Math.ceil((last - first) / stride));
    begin.push(extent === 0 ? 0 : first);
    step.push(stride);
    outShape.push(extent);
    squeezedShape.push(extent);
  }
  return { begin, step, outShape, squeezedShape };
}

export function planSlice(xShape: readonly number[], spec: SliceSpec): StridedLayout {
  const xStrides = contiguousStrides(xShape);
  let start = 0;
  for (let axis = 0; axis < xShape.length; axis++) start += spec.begin[axis]! * xStrides[axis]!;
  return planStridedWalk(spec.outShape, [xStrides.map((s, axis) => s * spec.step[axis]!)], [start]);
}

export function slice(out: SimData, x: SimData, layout: StridedLayout): void {
  gatherCopy(out, x as typeof out, layout);
}

// ---------------------------------------------------------------------------------------------
// concat and split

/**
 * Operands viewed as [outer, extent_k * inner] blocks along `axis`; the output row is their
 * concatenation. With `interleave`, every operand has the same extent d and output index
 * j * count + k along the axis comes from operand k's index j.
 */
export interface ConcatGeometry {
  readonly outer: number;
  readonly inner: number;
  readonly extents: readonly number[];
  readonly interleave: boolean;
}

export function planConcat(
  shapes: readonly (readonly number[])[],
  axis: number,
  interleave: boolean,
): { outShape: number[]; geometry: ConcatGeometry } {
  const first = shapes[0];
  if (first === undefined) throw new RangeError('concat: needs at least one value');
  const rank = first.length;
  const a = normalizeAxis(axis, rank);
  for (const shape of shapes) {
    if (shape.length !== rank || shape.some((dim, i) => i !== a && dim !== first[i])) {
      throw new RangeError(
        `concat: shapes [${shapes.map((s) => s.join(', ')).join('], [')}] differ off axis ${axis}`,
      );
    }
    if (interleave && shape[a] !== first[a])
      throw new RangeError('concat: interleave needs identical shapes');
  }
  const extents = shapes.map((shape) => shape[a]!);
  const outShape = [...first];
  outShape[a] = extents.reduce((x, y) => x + y, 0);
  let outer = 1;
  for (let i = 0; i < a; i++) outer *= first[i]!;
  let inner = 1;
  for (let i = a + 1; i < rank; i++) inner *= first[i]!;
  return { outShape, geometry: { outer, inner, extents, interleave } };
}

export function concat(out: SimData, values: readonly SimData[], g: ConcatGeometry): void {
  runSimOp(
    'concat',
    out,
    (ops) => {
      const { outer, inner, extents } = g;
      const count = values.length;
      if (!g.interleave) {
        const outRow = extents.reduce((x, y) => x + y, 0) * inner;
        let column = 0;
        values.forEach((src, k) => {
          const chunk = extents[k]! * inner;
          ops.copyRows(out, column, outRow, src as typeof out, 0, chunk, outer, chunk);
          column += chunk;
        });
        return;
      }
      const rows = outer * (extents[0] ?? 0);
      values.forEach((src, k) => {
        ops.copyRows(out, k * inner, count * inner, src as typeof out, 0, inner, rows, inner);
      });
    },
    () => concatTwin(out, values, g),
  );
}

function concatTwin(out: SimData, values: readonly SimData[], g: ConcatGeometry): void {
  const { outer, inner, extents } = g;
  const count = values.length;
  if (!g.interleave) {
    const outRow = extents.reduce((x, y) => x + y, 0) * inner;
    let column = 0;
    for (let k = 0; k < count; k++) {
      const src = values[k]!;
      const chunk = extents[k]! * inner;
      for (let o = 0; o < outer; o++) {
        out.set(src.subarray(o * chunk, o * chunk + chunk) as never, o * outRow + column);
      }
      column += chunk;
    }
    return;
  }
  const extent = extents[0] ?? 0;
  for (let o = 0; o < outer; o++) {
    for (let j = 0; j < extent; j++) {
      for (let k = 0; k < count; k++) {
        const src = values[k]!;
        const from = (o * extent + j) * inner;
        const to = ((o * extent + j) * count + k) * inner;
        for (let i = 0; i < inner; i++) out[to + i] = src[from + i]!;
      }
    }
  }
}

/** split: the inverse of a plain concat; `sizes` are the extents along the axis. */
export function planSplit(
  xShape: readonly number[],
  axis: number,
  sizes: readonly number[],
): { outShapes: number[][]; geometry: ConcatGeometry } {
  const a = normalizeAxis(axis, xShape.length);
  const total = sizes.reduce((x, y) => x + y, 0);
  if (total !== xShape[a])
    throw new RangeError(`split: sizes [${sizes.join(', ')}] do not add up to ${xShape[a]}`);
  const outShapes = sizes.map((size) => xShape.map((dim, i) => (i === a ? size : dim)));
  return { outShapes, geometry: planConcat(outShapes, a, false).geometry };
}

export function split(outs: readonly SimData[], x: SimData, g: ConcatGeometry): void {
  const { outer, inner, extents } = g;
  const row = extents.reduce((a, b) => a + b, 0) * inner;
  let column = 0;
  outs.forEach((out, k) => {
    const chunk = extents[k]! * inner;
    const start = column;
    runSimOp(
      'split',
      out,
      (ops) => ops.copyRows(out, 0, chunk, x as typeof out, start, row, outer, chunk),
      () => {
        for (let o = 0; o < outer; o++)
          out.set(x.subarray(o * row + start, o * row + start + chunk) as never, o * chunk);
      },
    );
    column += chunk;
  });
}

// ---------------------------------------------------------------------------------------------
// band_part

/**
 * band_part over the last two axes [M, N]: keeps x[.., m, n] where (lower < 0 or m - n <= lower)
 * and (upper < 0 or n - m <= upper), zero elsewhere.
 */
export function bandPart(
  out: Float32Array,
  x: Float32Array,
  shape: readonly number[],
  lower: number,
  upper: number,
): void {
  const rank = shape.length;
  const M = rank >= 2 ? shape[rank - 2]! : 1;
  const N = shape[rank - 1] ?? 1;
  const batches = M * N === 0 ? 0 : x.length / (M * N);
  for (let b = 0; b < batches; b++) {
    for (let m = 0; m < M; m++) {
      const row = (b * M + m) * N;
      for (let n = 0; n < N; n++) {
        const keep = (lower < 0 || m - n <= lower) && (upper < 0 || n - m <= upper);
        out[row + n] = keep ? x[row + n]! : 0;
      }
    }
  }
}
