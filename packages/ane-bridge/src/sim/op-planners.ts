/**
 * One planner per MIL op: reads the op's operands and constant parameters once, at compile time,
 * computes its geometry, allocates its outputs and returns the closure a run executes (or nothing,
 * for ops that only alias a buffer). The kernels live in ./ops; the hardware behaviours of the
 * chip arrive as `node.settings`.
 */
import type { ScalarData, ValueType } from 'ane-ir/mil';
import { roundToFp16 } from 'ane-ir/mil';
import type { BehaviourSettings } from './behaviours';
import { saturateToInfinity } from './behaviours';
import type { BatchedProduct, GemmOperand, GemmProduct, MatrixView, PlannedValue } from './constants';
import { UnsupportedError } from './constants';
import type { ElementwiseRecipe } from './fusion';
import type { StridedLayout } from './layout';
import { gatherCopy, planBroadcast } from './layout';
import { planAttention, scaledDotProductAttention } from './ops/attention';
import type { ConvPadType } from './ops/conv';
import { conv, planConv } from './ops/conv';
import type { BinaryArithmeticOp, ComparisonOp, UnaryOp } from './ops/elementwise';
import {
  BINARY_ARITHMETIC_OPS,
  binaryArithmetic,
  COMPARISON_OPS,
  cast,
  comparison,
  NATIVE_UNARY_OPS,
  select,
  unary,
} from './ops/elementwise';
import type { FusedOperand } from './ops/fused';
import { linear, matmul, matmulStrided, planMatmul } from './ops/matmul';
import type { SliceSpec } from './ops/movement';
import {
  bandPart,
  concat,
  planConcat,
  planSlice,
  planSplit,
  planTranspose,
  slice,
  sliceByIndexSpec,
  sliceBySizeSpec,
  split,
  transpose,
} from './ops/movement';
import type { QuantizedDtype } from './ops/quantization';
import { dequantize, quantize } from './ops/quantization';
import type { ReductionGeometry, ReductionKind } from './ops/reduce';
import {
  layerNorm,
  normalizeAxes,
  planAxis,
  planReduction,
  reduce,
  reducedShape,
  softmax,
} from './ops/reduce';
import type { FloatTensor, SimData, SimTensor } from './tensor';
import { contiguousStrides, elementCount, normalizeAxis } from './tensor';

/** What a run executes for one op. */
export type RunStep = () => void;

/**
 * A step with nothing to do at run time (a concat whose inputs were all computed in place): kept
 * while planning for what it reads, so the steps computing its inputs stay; never run.
 */
export const NO_WORK: RunStep = () => {};

/** The view of one statement that a planner works on. */
export interface OpNode {
  readonly op: string;
  readonly settings: BehaviourSettings;
  readonly outputCount: number;
  has(param: string): boolean;
  /** A single (non-tuple) operand. */
  value(param: string): PlannedValue;
  tensor(param: string): SimTensor;
  /** An fp16 or fp32 operand. */
  floatTensor(param: string): FloatTensor;
  optionalFloatTensor(param: string): FloatTensor | undefined;
  tuple(param: string): SimTensor[];
  /**
   * The items of a float tuple operand as matrices over where their elements lie (a slice's view
   * into its source, else the item's own data); undefined when an item is not a float tensor or
   * concats are not planned in place. Nothing is taken as read: see readsThrough.
   */
  tupleMatrices(param: string): { shape: readonly number[]; view: MatrixView }[] | undefined;
  /** The step reads `view`'s source where the view lies (instead of the value the view stands for). */
  readsThrough(view: MatrixView): void;
  /** Elements of a constant operand; throws when the operand is a runtime value. */
  constant(param: string): readonly ScalarData[] | undefined;
  outputType(index: number): ValueType;
  /** Allocates output `index` of its declared type, checking the planner's shape against it. */
  output(index: number, shape: readonly number[]): SimTensor;
  floatOutput(index: number, shape: readonly number[]): FloatTensor;
  /** Output `index` shares `value`'s buffer (reshape, identity, const). */
  alias(index: number, value: PlannedValue): void;
  /** A zeroed scratch buffer of the op, counted against the simulator's memory limit. */
  scratch(length: number, what: string): Float32Array;
  /**
   * A float operand as a strided matrix (its MatrixView, or its own dense buffer), read in place
   * by the step: taking an operand this way instead of as a tensor lets the copy behind a view go.
   */
  matrix(param: string): MatrixView | undefined;
  /** The step reads operand `param` (taken as a tensor) only where `view` (a view of it) lies. */
  readsWithin(param: string, view: MatrixView): void;
  /** Output `index` (already allocated) can also be read in place through `view`. */
  viewOutput(index: number, view: MatrixView): void;
  /**
   * A float operand's GemmProduct when this op is its only reader (the product's operand buffers
   * then count as read instead of the operand), else undefined.
   */
  product(param: string): GemmProduct | BatchedProduct | undefined;
  /** Output `index` (already allocated) is the product `recipe`. */
  productOutput(index: number, recipe: GemmProduct | BatchedProduct): void;
  /** Declares that the step is a GEMM reading its tensors only through these in-place operands. */
  gemm(a: GemmOperand, b: GemmOperand): void;
  /** The name this op's step is timed under with `profileOps` (default: the MIL op). */
  profileAs(label: string): void;
  /**
   * This op's step is elementwise as `recipe` says (operands by parameter, each through its walk),
   * so it may run fused with its neighbours (../fusion.ts).
   */
  elementwise(recipe: ElementwiseDraft): void;
}

/** An ElementwiseRecipe before the executable finds the operands' in-place views. */
export interface ElementwiseDraft extends Omit<ElementwiseRecipe, 'operands'> {
  readonly operands: readonly { readonly param: string; readonly walk: FusedOperand }[];
}

/** Operand k of a planned walk as a fused-chain operand. */
function walkOf(data: Float32Array, layout: StridedLayout, k: number): FusedOperand {
  return { data, inner: layout.inner, stride: layout.innerStrides[k]!, rowOffsets: layout.rowOffsets[k]! };
}

const DENSE_ROW = new Int32Array(1);

export type OpPlanner = (node: OpNode) => RunStep | undefined;

// ---- constant parameter readers ----------------------------------------------------------------

function numbers(node: OpNode, param: string): number[] | undefined {
  const elements = node.constant(param);
  if (elements === undefined) return undefined;
  return elements.map((element) => {
    if (typeof element === 'string')
      throw new UnsupportedError(`'${param}' must be numeric, got "${element}"`);
    return typeof element === 'boolean' ? (element ? 1 : 0) : element;
  });
}

function requiredNumbers(node: OpNode, param: string): number[] {
  const values = numbers(node, param);
  if (values === undefined) throw new UnsupportedError(`missing '${param}'`);
  return values;
}

function scalarNumber(node: OpNode, param: string): number | undefined {
  return numbers(node, param)?.[0];
}

function bool(node: OpNode, param: string): boolean | undefined {
  const element = node.constant(param)?.[0];
  return element === undefined ? undefined : element === true || element === 1;
}

function bools(node: OpNode, param: string): boolean[] | undefined {
  return node.constant(param)?.map((element) => element === true || element === 1);
}

function string(node: OpNode, param: string): string | undefined {
  const element = node.constant(param)?.[0];
  if (element !== undefined && typeof element !== 'string')
    throw new UnsupportedError(`'${param}' must be a string`);
  return element;
}

function floatArray(node: OpNode, param: string): Float32Array {
  return Float32Array.from(requiredNumbers(node, param));
}

/** A default epsilon as the operand's dtype denotes it (the default 1e-45 of log is 0 in fp16). */
function epsilon(node: OpNode, fallback: number): number {
  const given = scalarNumber(node, 'epsilon');
  if (given !== undefined) return given;
  return node.floatTensor('x').dtype === 'fp16' ? roundToFp16(fallback) : Math.fround(fallback);
}

// ---- planners ------------------------------------------------------------------------------------

const passThrough =
  (param: string): OpPlanner =>
  (node) => {
    node.alias(0, node.value(param));
    return undefined;
  };

function planCast(node: OpNode): RunStep | undefined {
  const x = node.tensor('x');
  const out = node.output(0, x.shape);
  if (out.dtype === x.dtype) {
    node.alias(0, node.value('x'));
    return undefined;
  }
  return () => cast(out, x);
}

function planConvOp(node: OpNode): RunStep {
  const x = node.floatTensor('x');
  const weight = node.floatTensor('weight');
  const bias = node.optionalFloatTensor('bias');
  const strides = numbers(node, 'strides');
  const pad = numbers(node, 'pad');
  const dilations = numbers(node, 'dilations');
  const groups = scalarNumber(node, 'groups');
  const { outShape, geometry } = planConv(x.shape, weight.shape, {
    padType: (string(node, 'pad_type') ?? 'valid') as ConvPadType,
    ...(strides === undefined ? {} : { strides }),
    ...(pad === undefined ? {} : { pad }),
    ...(dilations === undefined ? {} : { dilations }),
    ...(groups === undefined ? {} : { groups }),
  });
  const out = node.floatOutput(0, outShape);
  const scratch = node.scratch(geometry.scratchLength, 'im2col');
  return () => conv(out, x.data, weight.data, bias?.data, geometry, scratch);
}

function planMatmulOp(node: OpNode): RunStep {
  const transposeX = bool(node, 'transpose_x') ?? false;
  const transposeY = bool(node, 'transpose_y') ?? false;
  const strided = planStridedMatmul(node, transposeX, transposeY);
  if (strided !== undefined) return strided;
  const x = node.floatTensor('x');
  const y = node.floatTensor('y');
  const { outShape, geometry } = planMatmul(x.shape, y.shape, transposeX, transposeY);
  const out = node.floatOutput(0, outShape);
  const threshold = node.settings.matmulInfinityThreshold;
  const rank = outShape.length;
  if (rank >= 2 && outShape[rank - 2] === geometry.M && outShape[rank - 1] === geometry.N)
    node.productOutput(0, { x: x.data, y: y.data, geometry, saturateAt: threshold });
  return () => matmul(out, x.data, y.data, geometry, 1, threshold);
}

/**
 * A single (unbatched) matmul whose operands are read in place through their MatrixViews: a weight
 * sliced out of a packed input, an activation transposed for the GEMM. The GEMM gets the source
 * with a leading dimension and a transpose flag instead of a copy, which gives the same operands
 * and so the same bits (the GEMM packs its panels the same way whatever the layout).
 */
function planStridedMatmul(node: OpNode, transposeX: boolean, transposeY: boolean): RunStep | undefined {
  const xType = shapeOfType(node.value('x').type);
  const yType = shapeOfType(node.value('y').type);
  if (xType.length < 2 || yType.length < 2) return undefined;
  const { outShape, geometry } = planMatmul(xType, yType, transposeX, transposeY);
  if (geometry.xOffsets.length !== 1 || geometry.yOffsets.length !== 1) return undefined;
  const xView = node.matrix('x');
  const yView = node.matrix('y');
  if (xView === undefined || yView === undefined) return undefined;
  const a = gemmOperand(xView, xType, transposeX);
  const b = gemmOperand(yView, yType, transposeY);
  if (a === undefined || b === undefined) return undefined;
  const out = node.floatOutput(0, outShape);
  const { M, N, K } = geometry;
  const recipe: GemmProduct = { a, b, M, N, K, saturateAt: node.settings.matmulInfinityThreshold };
  node.productOutput(0, recipe);
  node.gemm(a, b);
  return () => matmulStrided(out, a, b, M, N, K, recipe.saturateAt);
}

/** A view of an operand stored as [rows, cols] (the last two axes) as a GEMM operand. */
function gemmOperand(
  view: MatrixView,
  shape: readonly number[],
  transposed: boolean,
): GemmOperand | undefined {
  const rows = shape[shape.length - 2]!;
  const cols = shape[shape.length - 1]!;
  if (view.rows !== rows || view.cols !== cols || rows === 0 || cols === 0) return undefined;
  const data = view.source.subarray(view.offset);
  const source = view.source;
  // Row-major with a row stride, or column-major (a transposed copy would be row-major).
  if (view.colStride === 1 && view.rowStride >= cols)
    return { source, data, ld: view.rowStride, transposed, inputHalf: {} };
  if (view.rowStride === 1 && view.colStride >= rows)
    return { source, data, ld: view.colStride, transposed: !transposed, inputHalf: {} };
  return undefined;
}

function planLinear(node: OpNode): RunStep {
  const x = node.floatTensor('x');
  const weight = node.floatTensor('weight');
  const bias = node.optionalFloatTensor('bias');
  const [outFeatures, inFeatures] = weight.shape as [number, number];
  const out = node.floatOutput(0, [...x.shape.slice(0, -1), outFeatures]);
  return () => linear(out, x.data, weight.data, bias?.data, outFeatures, inFeatures);
}

function planBinary(op: BinaryArithmeticOp): OpPlanner {
  return (node) => {
    const x = node.floatTensor('x');
    const y = node.floatTensor('y');
    const outShape = node.outputType(0);
    const out = node.floatOutput(0, shapeOfType(outShape));
    const layout = planBroadcast(out.shape, [x.shape, y.shape]);
    if (out.data.length > 0) {
      node.elementwise({
        kind: 'binary',
        op,
        out,
        epsilon: 0,
        operands: [
          { param: 'x', walk: walkOf(x.data, layout, 0) },
          { param: 'y', walk: walkOf(y.data, layout, 1) },
        ],
      });
    }
    return () => binaryArithmetic(op, out, x.data, y.data, layout);
  };
}

function planComparison(op: ComparisonOp): OpPlanner {
  return (node) => {
    const x = node.floatTensor('x');
    const y = node.floatTensor('y');
    const out = node.output(0, shapeOfType(node.outputType(0)));
    const layout = planBroadcast(out.shape, [x.shape, y.shape]);
    return () => comparison(op, out.data as Uint8Array, x.data, y.data, layout);
  };
}

function planUnary(op: UnaryOp, defaultEpsilon?: number): OpPlanner {
  return (node) => {
    const x = node.floatTensor('x');
    const out = node.floatOutput(0, x.shape);
    const params = defaultEpsilon === undefined ? {} : { epsilon: epsilon(node, defaultEpsilon) };
    if (NATIVE_UNARY_OPS.includes(op) && out.data.length > 0) {
      node.elementwise({
        kind: 'unary',
        op,
        out,
        epsilon: params.epsilon ?? 0,
        operands: [
          { param: 'x', walk: { data: x.data, inner: out.data.length, stride: 1, rowOffsets: DENSE_ROW } },
        ],
      });
    }
    return () => unary(op, out, x.data, params);
  };
}

const GELU_MODES: Readonly<Record<string, UnaryOp>> = {
  EXACT: 'gelu_exact',
  TANH_APPROXIMATION: 'gelu_tanh',
  SIGMOID_APPROXIMATION: 'gelu_sigmoid',
};

function planGelu(node: OpNode): RunStep {
  const mode = string(node, 'mode') ?? 'EXACT';
  const op = GELU_MODES[mode];
  if (op === undefined)
    throw new UnsupportedError(`gelu mode "${mode}" (expected ${Object.keys(GELU_MODES).join(', ')})`);
  return planUnary(op)(node)!;
}

function planSoftmax(node: OpNode): RunStep {
  const x = node.floatTensor('x');
  const out = node.floatOutput(0, x.shape);
  const geometry = planAxis(x.shape, scalarNumber(node, 'axis') ?? -1);
  return () => softmax(out, x.data, geometry);
}

function planReduce(kind: ReductionKind): OpPlanner {
  return (node) => {
    const x = node.floatTensor('x');
    const axes = normalizeAxes(numbers(node, 'axes'), x.shape.length);
    const out = node.floatOutput(0, reducedShape(x.shape, axes, bool(node, 'keep_dims') ?? false));
    const geometry = planReduction(x.shape, axes, (length) => node.scratch(length, 'reduction gather'));
    const narrow = kind === 'sum' && node.settings.narrowReduceSum;
    return () => reduce(kind, out, x.data as Float32Array, geometry, narrow);
  };
}

function planReshape(node: OpNode): undefined {
  const x = node.value('x');
  const count = elementCount(shapeOfType(x.type));
  const target = shapeOfType(node.outputType(0));
  if (elementCount(target) !== count) {
    throw new RangeError(`reshape: ${count} elements cannot take the shape [${target.join(', ')}]`);
  }
  node.alias(0, x);
  return undefined;
}

function planTransposeOp(node: OpNode): RunStep {
  const xShape = shapeOfType(node.value('x').type);
  const perm = requiredNumbers(node, 'perm');
  const { outShape, layout } = planTranspose(xShape, perm);
  const out = node.output(0, outShape);
  // Swapping the last two axes of an (effectively) 2-D value: also readable in place, transposed.
  const rank = xShape.length;
  const swapsLastAxes =
    rank >= 2 &&
    perm.every((axis, i) => (axis < 0 ? axis + rank : axis) === (i < rank - 2 ? i : 2 * rank - 3 - i));
  const swapsLastTwo = swapsLastAxes && xShape.slice(0, -2).every((dim) => dim === 1);
  // The transpose of a matmul's product, when it is the product's only reader: computed directly
  // as opᵀ(y)·opᵀ(x), no copy, and the matmul itself is pruned.
  const product = swapsLastAxes && out.data instanceof Float32Array ? node.product('x') : undefined;
  if (product !== undefined && 'geometry' in product) {
    const g = product.geometry;
    const geometry = {
      M: g.N,
      N: g.M,
      K: g.K,
      transposeX: !g.transposeY,
      transposeY: !g.transposeX,
      xOffsets: g.yOffsets,
      yOffsets: g.xOffsets,
    };
    const transposed: BatchedProduct = {
      x: product.y,
      y: product.x,
      geometry,
      saturateAt: product.saturateAt,
    };
    node.productOutput(0, transposed);
    node.profileAs('matmul');
    const result = out as FloatTensor;
    return () => matmul(result, transposed.x, transposed.y, geometry, 1, transposed.saturateAt);
  }
  if (product !== undefined && swapsLastTwo) {
    const flip = (operand: GemmOperand): GemmOperand => ({ ...operand, transposed: !operand.transposed });
    const transposed: GemmProduct = {
      a: flip(product.b),
      b: flip(product.a),
      M: product.N,
      N: product.M,
      K: product.K,
      saturateAt: product.saturateAt,
    };
    node.productOutput(0, transposed);
    node.gemm(transposed.a, transposed.b);
    node.profileAs('matmul');
    const result = out as FloatTensor;
    const { a, b, M, N, K, saturateAt } = transposed;
    return () => matmulStrided(result, a, b, M, N, K, saturateAt);
  }
  const view = swapsLastTwo ? node.matrix('x') : undefined;
  if (view !== undefined) {
    node.viewOutput(0, {
      source: view.source,
      offset: view.offset,
      rows: view.cols,
      cols: view.rows,
      rowStride: view.colStride,
      colStride: view.rowStride,
    });
  }
  // x a slice of another value: the walk goes through the slice's view, and the slice's copy is
  // not run (a head split of a packed input).
  const sliced = node.value('x').matrix;
  const through = sliced === undefined ? undefined : walkThroughView(layout, sliced);
  if (sliced !== undefined && through !== undefined && out.data instanceof Float32Array) {
    // Taken through the view: the step reads its source, not the slice.
    node.matrix('x');
    const result = out.data;
    return () => transpose(result, sliced.source, through);
  }
  const x = node.tensor('x');
  return () => transpose(out.data, x.data, layout);
}

/**
 * A one-operand walk over a dense value, as the same walk over where a view keeps that value's
 * elements; undefined when a row of the walk does not stay one stride apart in the view's source
 * (it crosses a view row at an offset that is not a whole number of rows).
 */
function walkThroughView(layout: StridedLayout, view: MatrixView): StridedLayout | undefined {
  const stride = layout.innerStrides[0]!;
  const offsets = layout.rowOffsets[0]!;
  const { cols } = view;
  let sourceStride: number | undefined;
  const sourceOffsets = new Int32Array(layout.rows);
  for (let row = 0; row < layout.rows; row++) {
    const at = offsets[row]!;
    const r = Math.floor(at / cols);
    const c = at - r * cols;
    sourceOffsets[row] = view.offset + r * view.rowStride + c * view.colStride;
    if (layout.inner <= 1) continue;
    let rowStride: number;
    if (stride % cols === 0) rowStride = (stride / cols) * view.rowStride;
    else if (c + (layout.inner - 1) * stride < cols) rowStride = stride * view.colStride;
    else return undefined;
    if (sourceStride !== undefined && rowStride !== sourceStride) return undefined;
    sourceStride = rowStride;
  }
  return {
    rows: layout.rows,
    inner: layout.inner,
    innerStrides: [sourceStride ?? 1],
    rowOffsets: [sourceOffsets],
  };
}

function constantIndices(node: OpNode, param: string, op: string): number[] {
  const values = numbers(node, param);
  if (values === undefined)
    throw new UnsupportedError(`${op}: the simulator needs '${param}' to be a constant`);
  return values;
}

function planSliceBySize(node: OpNode): RunStep {
  const x = node.tensor('x');
  const begin = constantIndices(node, 'begin', 'slice_by_size');
  const spec = sliceBySizeSpec(x.shape, begin, constantIndices(node, 'size', 'slice_by_size'));
  const out = node.output(0, spec.outShape);
  const layout = planSlice(x.shape, spec);
  const limit = node.settings.widthSliceSaturationLimit;
  const lastAxis = x.shape.length - 1;
  const widthOffset = lastAxis >= 0 && spec.begin[lastAxis] !== 0;
  if (limit === undefined || !widthOffset || !(out.data instanceof Float32Array)) {
    if (out.data instanceof Float32Array && x.data instanceof Float32Array) {
      const view = sliceView(x.shape, spec, x.data as Float32Array);
      if (view !== undefined) {
        node.viewOutput(0, view);
        node.readsWithin('x', view);
      }
    }
    return () => slice(out.data, x.data, layout);
  }
  const values = out.data as Float32Array;
  return () => {
    slice(out.data, x.data, layout);
    saturateToInfinity(values, limit, false);
  };
}

/** A slice of a dense tensor as a MatrixView over it, when its rows are evenly strided. */
function sliceView(xShape: readonly number[], spec: SliceSpec, data: Float32Array): MatrixView | undefined {
  const rank = xShape.length;
  if (rank === 0) return undefined;
  const strides = contiguousStrides(xShape);
  const last = rank - 1;
  const cols = spec.outShape[last]!;
  let offset = 0;
  for (let a = 0; a < rank; a++) offset += spec.begin[a]! * strides[a]!;
  // The leading axes must walk as one: each non-1 axis steps over whole runs of the next one.
  let rows = 1;
  let rowStride: number | undefined;
  for (let a = last - 1; a >= 0; a--) {
    const dim = spec.outShape[a]!;
    if (dim === 1) continue;
    const stride = strides[a]! * spec.step[a]!;
    if (rowStride === undefined) rowStride = stride;
    else if (stride !== rowStride * rows) return undefined;
    rows *= dim;
  }
  const colStride = strides[last]! * spec.step[last]!;
  return { source: data, offset, rows, cols, rowStride: rowStride ?? cols * colStride, colStride };
}

function planSliceByIndex(node: OpNode): RunStep {
  const x = node.tensor('x');
  const stride = numbers(node, 'stride');
  const beginMask = bools(node, 'begin_mask');
  const endMask = bools(node, 'end_mask');
  const squeezeMask = bools(node, 'squeeze_mask');
  const spec = sliceByIndexSpec(x.shape, {
    begin: constantIndices(node, 'begin', 'slice_by_index'),
    end: constantIndices(node, 'end', 'slice_by_index'),
    ...(stride === undefined ? {} : { stride }),
    ...(beginMask === undefined ? {} : { beginMask }),
    ...(endMask === undefined ? {} : { endMask }),
    ...(squeezeMask === undefined ? {} : { squeezeMask }),
  });
  const out = node.output(0, spec.squeezedShape);
  const layout = planSlice(x.shape, spec);
  return () => slice(out.data, x.data, layout);
}

function planConcatOp(node: OpNode): RunStep {
  const gathered = planConcatGather(node);
  if (gathered !== undefined) return gathered;
  const values = node.tuple('values');
  const { outShape, geometry } = planConcat(
    values.map((value) => value.shape),
    scalarNumber(node, 'axis') ?? 0,
    bool(node, 'interleave') ?? false,
  );
  const out = node.output(0, outShape).data;
  const sources = values.map((value) => value.data);
  if (geometry.interleave || geometry.outer !== 1) return () => concat(out, sources, geometry);
  // Inputs computed in their blocks of the result (SimCompileOptions.inPlaceConcat) are there
  // already: copy the others, each one contiguous block.
  const copies: { source: SimData; at: number }[] = [];
  let at = 0;
  sources.forEach((source, k) => {
    const inPlace =
      source.buffer === out.buffer && source.byteOffset === out.byteOffset + at * out.BYTES_PER_ELEMENT;
    if (!inPlace) copies.push({ source, at });
    at += geometry.extents[k]! * geometry.inner;
  });
  if (copies.length === sources.length) return () => concat(out, sources, geometry);
  if (copies.length === 0) return NO_WORK;
  return () => {
    for (const { source, at } of copies) (out as Float32Array).set(source as Float32Array, at);
  };
}

/**
 * A concat whose inputs are all views into one source with rows of one width (RoPE's swapped
 * halves: two slices of one value) as one gather from that source: the slices' copies are then
 * not run. Undefined when the inputs are not such views.
 */
function planConcatGather(node: OpNode): RunStep | undefined {
  if (bool(node, 'interleave') === true) return undefined;
  const items = node.tupleMatrices('values');
  const first = items?.[0];
  if (items === undefined || first === undefined || items.length < 2) return undefined;
  const { outShape, geometry } = planConcat(
    items.map((item) => item.shape),
    scalarNumber(node, 'axis') ?? 0,
    false,
  );
  const width = geometry.extents[0]! * geometry.inner;
  const { source, colStride } = first.view;
  const sameRows = items.every(
    ({ view }, k) =>
      view.source === source &&
      view.colStride === colStride &&
      view.rows === geometry.outer &&
      view.cols === width &&
      geometry.extents[k]! * geometry.inner === width,
  );
  if (!sameRows) return undefined;
  for (const { view } of items) node.readsThrough(view);
  const out = node.floatOutput(0, outShape);
  // Output row (r, k) of width `width` is input k's row r.
  const rowOffsets = new Int32Array(geometry.outer * items.length);
  for (let r = 0; r < geometry.outer; r++) {
    items.forEach(({ view }, k) => {
      rowOffsets[r * items.length + k] = view.offset + r * view.rowStride;
    });
  }
  const layout: StridedLayout = {
    rows: rowOffsets.length,
    inner: width,
    innerStrides: [colStride],
    rowOffsets: [rowOffsets],
  };
  return () => gatherCopy(out.data, source, layout);
}

function planSplitOp(node: OpNode): RunStep {
  const x = node.tensor('x');
  const axis = normalizeAxis(scalarNumber(node, 'axis') ?? 0, x.shape.length);
  // Equal parts (num_splits) are already spelled out by the declared result types.
  const declaredSizes = Array.from(
    { length: node.outputCount },
    (_, i) => shapeOfType(node.outputType(i))[axis]!,
  );
  const { outShapes, geometry } = planSplit(x.shape, axis, numbers(node, 'split_sizes') ?? declaredSizes);
  const outs = outShapes.map((shape, i) => node.output(i, shape).data);
  return () => split(outs, x.data, geometry);
}

function planLayerNorm(node: OpNode): RunStep {
  const x = node.floatTensor('x');
  const axes = normalizeAxes(numbers(node, 'axes'), x.shape.length);
  const geometry = planReduction(x.shape, axes);
  if (geometry.gather !== undefined) {
    throw new UnsupportedError(`layer_norm over non-adjacent axes [${axes.join(', ')}]`);
  }
  const gamma = node.optionalFloatTensor('gamma');
  const beta = node.optionalFloatTensor('beta');
  const out = node.floatOutput(0, x.shape);
  const eps = epsilon(node, 1e-5);
  return () => layerNorm(out, x.data, gamma?.data, beta?.data, eps, geometry);
}

function planSelect(node: OpNode): RunStep {
  const cond = node.tensor('cond');
  const a = node.tensor('a');
  const b = node.tensor('b');
  const out = node.output(0, shapeOfType(node.outputType(0)));
  const layout = planBroadcast(out.shape, [cond.shape, a.shape, b.shape]);
  return () => select(out, cond.data, a.data, b.data, layout);
}

function planBandPart(node: OpNode): RunStep {
  const x = node.floatTensor('x');
  const out = node.floatOutput(0, x.shape);
  const lower = scalarNumber(node, 'lower') ?? -1;
  const upper = scalarNumber(node, 'upper') ?? -1;
  return () => bandPart(out.data, x.data, x.shape, lower, upper);
}

/** [outer, channels, inner] around `axis`, or the whole tensor as one channel. */
function quantizationGeometry(shape: readonly number[], axis: number | undefined): ReductionGeometry {
  if (axis === undefined) return { outer: 1, reduced: 1, inner: elementCount(shape) };
  return planAxis(shape, axis);
}

function planQuantize(node: OpNode): RunStep {
  const input = node.floatTensor('input');
  const dtype = string(node, 'output_dtype') as QuantizedDtype;
  const out = node.output(0, input.shape);
  const scale = floatArray(node, 'scale');
  const zeroPoint = numbers(node, 'zero_point');
  const geometry = quantizationGeometry(input.shape, scalarNumber(node, 'axis'));
  return () => quantize(out.data as Int8Array | Uint8Array, input.data, scale, zeroPoint, dtype, geometry);
}

function planDequantize(param: 'input' | 'quantized_data'): OpPlanner {
  return (node) => {
    const input = node.tensor(param);
    const out = node.floatOutput(0, input.shape);
    const scale = floatArray(node, 'scale');
    const zeroPoint = numbers(node, 'zero_point');
    const geometry = quantizationGeometry(input.shape, scalarNumber(node, 'axis'));
    return () => dequantize(out, input.data, scale, zeroPoint, geometry);
  };
}

function planAttentionOp(node: OpNode): RunStep {
  const query = node.floatTensor('query');
  const key = node.floatTensor('key');
  const value = node.floatTensor('value');
  const mask =
    node.settings.ignoreAttentionMask || !node.has('attn_mask') ? undefined : node.tensor('attn_mask');
  const { outShape, plan } = planAttention(query.shape, key.shape, value.shape, mask?.shape, (length) =>
    node.scratch(length, 'attention scores'),
  );
  const out = node.floatOutput(0, outShape);
  const maskInput =
    mask === undefined
      ? undefined
      : { data: mask.data as Float32Array | Uint8Array, isBool: mask.dtype === 'bool' };
  return () => scaledDotProductAttention(out, query.data, key.data, value.data, maskInput, plan);
}

function shapeOfType(type: ValueType): readonly number[] {
  return type.kind === 'scalar' ? [] : type.shape;
}

const UNARY_OPS: Readonly<Record<string, OpPlanner>> = {
  exp: planUnary('exp'),
  log: planUnary('log', 1e-45),
  sqrt: planUnary('sqrt'),
  rsqrt: planUnary('rsqrt', 1e-12),
  inverse: planUnary('inverse', 1e-4),
  tanh: planUnary('tanh'),
  sigmoid: planUnary('sigmoid'),
  silu: planUnary('silu'),
  relu: planUnary('relu'),
};

/** Every op the simulator executes. */
export const OP_PLANNERS: ReadonlyMap<string, OpPlanner> = new Map<string, OpPlanner>([
  ['const', passThrough('val')],
  ['identity', passThrough('x')],
  ['cast', planCast],
  ['conv', planConvOp],
  ['matmul', planMatmulOp],
  ['linear', planLinear],
  ...BINARY_ARITHMETIC_OPS.map((op) => [op, planBinary(op)] as const),
  ...COMPARISON_OPS.map((op) => [op, planComparison(op)] as const),
  ...Object.entries(UNARY_OPS),
  ['gelu', planGelu],
  ['softmax', planSoftmax],
  ['reduce_sum', planReduce('sum')],
  ['reduce_mean', planReduce('mean')],
  ['reduce_max', planReduce('max')],
  ['reshape', planReshape],
  ['transpose', planTransposeOp],
  ['slice_by_size', planSliceBySize],
  ['slice_by_index', planSliceByIndex],
  ['concat', planConcatOp],
  ['split', planSplitOp],
  ['layer_norm', planLayerNorm],
  ['select', planSelect],
  ['band_part', planBandPart],
  ['quantize', planQuantize],
  ['dequantize', planDequantize('input')],
  ['constexpr_affine_dequantize', planDequantize('quantized_data')],
  ['scaled_dot_product_attention', planAttentionOp],
]);
