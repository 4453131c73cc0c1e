/**
 * Ops that reduce along axes: reduce_* , softmax and layer_norm.
 *
 * Every one of them views its input as [outer, reduced, inner] (the reduced axes contiguous);
 * reductions over non-adjacent axes first transpose the reduced axes to the end into a planned
 * scratch buffer. Sums accumulate in float64 and are rounded once, unless `narrow` asks for the
 * fp16-per-add accumulation of the rule `num.accumulator-width`.
 */
import { roundToFp16 } from 'ane-ir/mil';
import type { StridedLayout } from '../layout';
import { runSimOp } from '../native-ops';
import { finishFloat } from '../numerics';
import type { FloatTensor } from '../tensor';
import { contiguousStrides, normalizeAxis } from '../tensor';
import { planTranspose, transpose } from './movement';

export interface ReductionGeometry {
  readonly outer: number;
  readonly reduced: number;
  readonly inner: number;
  /** Set when the reduced axes are not adjacent: move them last (into scratch) before reducing. */
  readonly gather?: { readonly layout: StridedLayout; readonly scratch: Float32Array };
}

/** Sorted, de-duplicated, non-negative axes; `undefined` means every axis. */
export function normalizeAxes(axes: readonly number[] | undefined, rank: number): number[] {
  if (axes === undefined) return Array.from({ length: rank }, (_, i) => i);
  return [...new Set(axes.map((axis) => normalizeAxis(axis, rank)))].sort((a, b) => a - b);
}

/** Shape after reducing `axes` (normalized), with or without the reduced axes kept as 1. */
export function reducedShape(shape: readonly number[], axes: readonly number[], keepDims: boolean): number[] {
  const reduced = new Set(axes);
  const out: number[] = [];
  shape.forEach((dim, axis) => {
    if (!reduced.has(axis)) out.push(dim);
    else if (keepDims) out.push(1);
  });
  return out;
}

/** Plans the [outer, reduced, inner] view of `shape` reduced over normalized `axes`. */
export function planReduction(
  shape: readonly number[],
  axes: readonly number[],
  /** Allocates the gather scratch (the planner counts it against the simulator's memory limit). */
  scratch: (length: number) => Float32Array = (length) => new Float32Array(length),
): ReductionGeometry {
  const reducedSet = new Set(axes);
  // Size-1 axes never break adjacency: drop them before checking.
  const significant = shape.map((dim, axis) => ({ dim, axis })).filter(({ dim }) => dim !== 1);
  const positions = significant.flatMap(({ axis }, i) => (reducedSet.has(axis) ? [i] : []));
  let outer = 1;
  let reduced = 1;
  let inner = 1;
  for (const { dim, axis } of significant) {
    if (reducedSet.has(axis)) reduced *= dim;
  }
  const adjacent =
    positions.length === 0 || positions[positions.length - 1]! - positions[0]! === positions.length - 1;
  if (adjacent) {
    const firstPosition = positions[0] ?? significant.length;
    significant.forEach(({ dim, axis }, i) => {
      if (reducedSet.has(axis)) return;
      if (i < firstPosition) outer *= dim;
      else inner *= dim;
    });
    return { outer, reduced, inner };
  }
  // Not adjacent: permute to (kept axes..., reduced axes...) and reduce the trailing block.
  const kept = shape.map((_, axis) => axis).filter((axis) => !reducedSet.has(axis));
  const perm = [...kept, ...axes];
  for (const axis of kept) outer *= shape[axis]!;
  const { layout } = planTranspose(shape, perm);
  return { outer, reduced, inner: 1, gather: { layout, scratch: scratch(outer * reduced) } };
}

export type ReductionKind =
  | 'sum'
  | 'mean'
  | 'max'
  | 'min'
  | 'prod'
  | 'sum_square'
  | 'l1_norm'
  | 'l2_norm'
  | 'log_sum_exp';

// Per-column accumulators for the inner > 1 case, reused across calls.
let accumulators = new Float64Array(256);
function accumulatorRow(length: number): Float64Array {
  if (accumulators.length < length) accumulators = new Float64Array(length);
  return accumulators;
}

function initialValue(kind: ReductionKind): number {
  if (kind === 'max') return Number.NEGATIVE_INFINITY;
  if (kind === 'min') return Number.POSITIVE_INFINITY;
  if (kind === 'prod') return 1;
  return 0;
}

function finalValue(kind: ReductionKind, acc: number, count: number): number {
  if (kind === 'mean') return acc / count;
  if (kind === 'l2_norm') return Math.sqrt(acc);
  return acc;
}

/**
 * out[outer, inner] = reduce over x[outer, reduced, inner].
 * `narrow`: round the running sum to fp16 after every add (sum-like kinds), in index order.
 */
export function reduce(
  kind: ReductionKind,
  out: FloatTensor,
  x: Float32Array,
  g: ReductionGeometry,
  narrow = false,
): void {
  let src = x;
  if (g.gather !== undefined) {
    transpose(g.gather.scratch, x, g.gather.layout);
    src = g.gather.scratch;
  }
  const code = NATIVE_REDUCTIONS.indexOf(kind);
  // log_sum_exp and the fp16-accumulating sums stay TypeScript (neither is on a hot path).
  if (code < 0 || (narrow && kind !== 'max' && kind !== 'min' && kind !== 'prod')) {
    reduceTwin(kind, out, src, g, narrow);
    return;
  }
  runSimOp(
    `reduce_${kind}`,
    out.data,
    (ops) => ops.reduce(code, out.data, src, g.outer, g.reduced, g.inner, out.dtype === 'fp16'),
    () => reduceTwin(kind, out, src, g, narrow),
  );
}

/** The reductions the native addon runs, in its op-code order (native/kernels/sim_ops.h). */
const NATIVE_REDUCTIONS: readonly ReductionKind[] = [
  'sum',
  'mean',
  'sum_square',
  'l1_norm',
  'l2_norm',
  'max',
  'min',
  'prod',
];

/** reduce over the (already gathered) src. */
function reduceTwin(
  kind: ReductionKind,
  out: FloatTensor,
  src: Float32Array,
  g: ReductionGeometry,
  narrow: boolean,
): void {
  const { outer, reduced, inner } = g;
  const o = out.data;
  if (kind === 'log_sum_exp') {
    logSumExp(o, src, outer, reduced, inner);
    finishFloat(out);
    return;
  }
  const start = initialValue(kind);
  const round = narrow && kind !== 'max' && kind !== 'min' && kind !== 'prod';
  const acc = accumulatorRow(inner);
  for (let b = 0; b < outer; b++) {
    acc.fill(start, 0, inner);
    for (let r = 0; r < reduced; r++) {
      const row = (b * reduced + r) * inner;
      for (let i = 0; i < inner; i++) {
        const v = src[row + i]!;
        let a = acc[i]!;
        switch (kind) {
          case 'sum':
          case 'mean':
            a += v;
            break;
          case 'sum_square':
          case 'l2_norm':
            a += v * v;
            break;
          case 'l1_norm':
            a += Math.abs(v);
            break;
          case 'max':
            a = v > a || Number.isNaN(v) ? v : a;
            break;
          case 'min':
            a = v < a || Number.isNaN(v) ? v : a;
            break;
          case 'prod':
            a *= v;
            break;
        }
        acc[i] = round ? roundToFp16(a) : a;
      }
    }
    for (let i = 0; i < inner; i++) o[b * inner + i] = finalValue(kind, acc[i]!, reduced);
  }
  finishFloat(out);
}

function logSumExp(o: Float32Array, x: Float32Array, outer: number, reduced: number, inner: number): void {
  for (let b = 0; b < outer; b++) {
    for (let i = 0; i < inner; i++) {
      let max = Number.NEGATIVE_INFINITY;
      for (let r = 0; r < reduced; r++) max = Math.max(max, x[(b * reduced + r) * inner + i]!);
      let sum = 0;
      for (let r = 0; r < reduced; r++) sum += Math.exp(x[(b * reduced + r) * inner + i]! - max);
      o[b * inner + i] = max === Number.NEGATIVE_INFINITY ? max : max + Math.log(sum);
    }
  }
}

/** The [outer, reduced, inner] view of `shape` around the single axis `axis`. */
export function planAxis(shape: readonly number[], axis: number): ReductionGeometry {
  const a = normalizeAxis(axis, shape.length);
  const strides = contiguousStrides(shape);
  const inner = strides[a]!;
  const reduced = shape[a]!;
  const total = shape.reduce((x, y) => x * y, 1);
  return { outer: reduced * inner === 0 ? 0 : total / (reduced * inner), reduced, inner };
}

/**
 * softmax over the reduced axis of x[outer, reduced, inner], evaluated in float64 (max-shifted),
 * each exp stored in fp32, the quotient rounded once.
 */
export function softmax(out: FloatTensor, x: Float32Array, g: ReductionGeometry): void {
  runSimOp(
    'softmax',
    out.data,
    (ops) => ops.softmax(out.data, x, g.outer, g.reduced, g.inner, out.dtype === 'fp16'),
    () => softmaxTwin(out, x, g),
  );
}

function softmaxTwin(out: FloatTensor, x: Float32Array, g: ReductionGeometry): void {
  const { outer, reduced, inner } = g;
  const o = out.data;
  if (inner === 1) {
    softmaxLastAxis(o, x, outer, reduced);
    finishFloat(out);
    return;
  }
  const maxRow = accumulatorRow(2 * inner);
  for (let b = 0; b < outer; b++) {
    const base = b * reduced * inner;
    for (let i = 0; i < inner; i++) {
      maxRow[i] = Number.NEGATIVE_INFINITY;
      maxRow[inner + i] = 0;
    }
    for (let r = 0; r < reduced; r++) {
      const row = base + r * inner;
      for (let i = 0; i < inner; i++) if (x[row + i]! > maxRow[i]!) maxRow[i] = x[row + i]!;
    }
    for (let r = 0; r < reduced; r++) {
      const row = base + r * inner;
      for (let i = 0; i < inner; i++) {
        o[row + i] = Math.exp(x[row + i]! - maxRow[i]!);
        maxRow[inner + i] = maxRow[inner + i]! + o[row + i]!;
      }
    }
    for (let r = 0; r < reduced; r++) {
      const row = base + r * inner;
      for (let i = 0; i < inner; i++) o[row + i] = o[row + i]! / maxRow[inner + i]!;
    }
  }
  finishFloat(out);
}

/** softmax over contiguous rows x[rows, length] (the last axis): the same arithmetic as above. */
function softmaxLastAxis(o: Float32Array, x: Float32Array, rows: number, length: number): void {
  for (let row = 0; row < rows; row++) {
    const start = row * length;
    const end = start + length;
    let max = Number.NEGATIVE_INFINITY;
    for (let j = start; j < end; j++) if (x[j]! > max) max = x[j]!;
    let sum = 0;
    for (let j = start; j < end; j++) {
      o[j] = Math.exp(x[j]! - max);
      sum += o[j]!;
    }
    for (let j = start; j < end; j++) o[j] = o[j]! / sum;
  }
}

/**
 * layer_norm over the reduced block of x[outer, reduced, inner]:
 *   y = (x - mean) / sqrt(var + epsilon) * gamma[r] + beta[r]   (biased variance)
 * gamma/beta are [reduced] (the shape of the normalized axes) or absent; evaluated in float64,
 * rounded once.
 */
export function layerNorm(
  out: FloatTensor,
  x: Float32Array,
  gamma: Float32Array | undefined,
  beta: Float32Array | undefined,
  epsilon: number,
  g: ReductionGeometry,
): void {
  const { outer, reduced, inner } = g;
  const o = out.data;
  for (let b = 0; b < outer; b++) {
    for (let i = 0; i < inner; i++) {
      const base = b * reduced * inner + i;
      let sum = 0;
      for (let r = 0; r < reduced; r++) sum += x[base + r * inner]!;
      const mean = sum / reduced;
      let squares = 0;
      for (let r = 0; r < reduced; r++) {
        const d = x[base + r * inner]! - mean;
        squares += d * d;
      }
      const scale = 1 / Math.sqrt(squares / reduced + epsilon);
      for (let r = 0; r < reduced; r++) {
        const normalized = (x[base + r * inner]! - mean) * scale;
        o[base + r * inner] =
          normalized * (gamma === undefined ? 1 : gamma[r]!) + (beta === undefined ? 0 : beta[r]!);
      }
    }
  }
  finishFloat(out);
}
