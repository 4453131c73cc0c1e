/**
 * A float64 reference interpreter of the graph IR: the readable twin of what the ANE and the host
 * compute. Tests compare device results against it; host ops can run on it; gradient checks use it.
 * With `fp16: true` every op result is rounded to fp16 (the device's storage between ops).
 */
import { decodeFp16, roundToFp16 } from '../mil/fp16';
import { constantNumbers, gatherStrided, stridesOf, type TensorValues } from './data';
import { isFloatDType, shapeSize } from './dtype';
import { IrError } from './errors';
import type { Tensor } from './tensor';

export interface EvaluateOptions {
  /** Round every floating-point op result to fp16 (round to nearest even). Default false. */
  fp16?: boolean;
  /**
   * Round every floating-point op result to fp32, as a float32 host evaluator stores it (the
   * executor's generic path for host ops with no native kernel). Default false.
   */
  fp32?: boolean;
}

/**
 * Values for inputs and trainable (or data-less) params, by node or by name; a value for an op node
 * stands for its result (computed elsewhere, e.g. on a device).
 */
export type Feeds = ReadonlyMap<Tensor | string, TensorValues> | Readonly<Record<string, TensorValues>>;

function feedFor(feeds: Feeds, node: Tensor): TensorValues | undefined {
  if (feeds instanceof Map) return feeds.get(node) ?? feeds.get(node.name);
  return (feeds as Readonly<Record<string, TensorValues>>)[node.name];
}

function toFloat64(values: TensorValues, node: Tensor): Float64Array {
  if (values.length !== node.size) {
    throw new IrError(
      `feed for ${node.op.kind} '${node.name}': expected ${node.size} values, got ${values.length}`,
    );
  }
  if (values instanceof Uint16Array && node.dtype === 'fp16') return Float64Array.from(decodeFp16(values));
  return Float64Array.from(values as ArrayLike<number>);
}

/** Evaluates `outputs` (and everything they need); returns their values row-major. */
export function evaluate(
  outputs: readonly Tensor[],
  feeds: Feeds = {},
  options: EvaluateOptions = {},
): Float64Array[] {
  const memo = new Map<Tensor, Float64Array>();
  const needed = new Set<Tensor>();
  const stack = [...outputs];
  while (stack.length > 0) {
    const node = stack.pop()!;
    if (needed.has(node)) continue;
    needed.add(node);
    // A fed op node is a value computed elsewhere (a device kernel): its inputs are not needed.
    if (node.op.kind === 'input' || node.op.kind === 'param' || feedFor(feeds, node) === undefined)
      stack.push(...node.inputs);
  }
  const order = [...needed].sort((a, b) => a.id - b.id);
  for (const node of order) {
    const fed = node.op.kind === 'input' || node.op.kind === 'param' ? undefined : feedFor(feeds, node);
    if (fed !== undefined) {
      memo.set(node, toFloat64(fed, node));
      continue;
    }
    const inputs = node.inputs.map((input) => memo.get(input)!);
    let value = evaluateNode(node, inputs, feeds);
    if (options.fp16 && node.dtype === 'fp16' && node.op.kind !== 'input' && node.op.kind !== 'param') {
      value = value.map(roundToFp16);
    }
    if (options.fp32 && isFloatDType(node.dtype) && node.op.kind !== 'input' && node.op.kind !== 'param') {
      value = value.map(Math.fround);
    }
    memo.set(node, value);
  }
  return outputs.map((output) => memo.get(output)!);
}

function roundHalfEven(x: number): number {
  const floor = Math.floor(x);
  const diff = x - floor;
  if (diff < 0.5) return floor;
  if (diff > 0.5) return floor + 1;
  return floor % 2 === 0 ? floor : floor + 1;
}

function evaluateNode(node: Tensor, inputs: readonly Float64Array[], feeds: Feeds): Float64Array {
  const op = node.op;
  switch (op.kind) {
    case 'input': {
      const feed = feedFor(feeds, node);
      if (feed === undefined) throw new IrError(`evaluate: no value fed for input '${node.name}'`);
      return toFloat64(feed, node);
    }
    case 'param': {
      const feed = feedFor(feeds, node);
      if (feed !== undefined) return toFloat64(feed, node);
      if (op.data !== undefined) return constantNumbers(op.data);
      throw new IrError(`evaluate: no value fed for param '${node.name}' (it has no data)`);
    }
    case 'constant': {
      const values = constantNumbers(op.data);
      if (op.quantized === undefined) return values;
      const { scale, zeroPoint } = op.quantized;
      return values.map((q) => scale * (q - zeroPoint));
    }
    case 'unary': {
      if (op.fn === 'log') {
        // The epsilon is a constant of the node's dtype in MIL (fp16 on the ANE).
        const epsilon = node.dtype === 'fp16' ? roundToFp16(op.epsilon) : op.epsilon;
        return inputs[0]!.map((v) => Math.log(v + epsilon));
      }
      const f = UNARY[op.fn]!;
      return inputs[0]!.map((v) => f(v));
    }
    case 'compare':
      return broadcastBinary(
        COMPARE[op.fn]!,
        inputs[0]!,
        node.inputs[0]!.shape,
        inputs[1]!,
        node.inputs[1]!.shape,
        node.shape,
      );
    case 'select':
      return selectValues(
        inputs as [Float64Array, Float64Array, Float64Array],
        node.inputs.map((i) => i.shape),
        node.shape,
      );
    case 'binary':
      return broadcastBinary(
        BINARY[op.fn]!,
        inputs[0]!,
        node.inputs[0]!.shape,
        inputs[1]!,
        node.inputs[1]!.shape,
        node.shape,
      );
    case 'reduce':
      return reduce(inputs[0]!, node.inputs[0]!.shape, op.axes, op.fn);
    case 'reshape':
      return inputs[0]!;
    case 'transpose':
      return transposeValues(inputs[0]!, node.inputs[0]!.shape, op.perm);
    case 'slice':
      return sliceValues(inputs[0]!, node.inputs[0]!.shape, op.begin, op.size);
    case 'concat':
      return concatValues(
        inputs,
        node.inputs.map((i) => i.shape),
        op.axis,
        node.shape,
      );
    case 'matmul':
      return matmulValues(
        inputs[0]!,
        node.inputs[0]!.shape,
        inputs[1]!,
        node.inputs[1]!.shape,
        op.transposeX,
        op.transposeY,
        node.shape,
      );
    case 'conv':
      return convValues(inputs[0]!, node.inputs[0]!.shape, inputs[1]!, node.inputs[1]!.shape, op, node.shape);
    case 'softmax':
      return softmaxValues(inputs[0]!, node.inputs[0]!.shape, op.axis);
    case 'cast': {
      const x = inputs[0]!;
      if (op.scale !== undefined && op.dtype === 'int8') {
        const scale = roundToFp16(op.scale);
        return x.map((v) => Math.min(127, Math.max(-128, roundHalfEven(v / scale))));
      }
      if (op.scale !== undefined) return x.map((q) => q * roundToFp16(op.scale!));
      switch (op.dtype) {
        case 'fp16':
          return x.map(roundToFp16);
        case 'fp32':
          return x.map(Math.fround);
        case 'int32':
          return x.map(Math.trunc);
        case 'int8':
          return x.map((v) => ((Math.trunc(v) + 128) & 255) - 128);
        case 'bool':
          return x.map((v) => (v !== 0 ? 1 : 0));
      }
      break;
    }
    case 'gather':
      return gatherValues(inputs[0]!, node.inputs[0]!.shape, inputs[1]!, op.axis);
  }
  throw new IrError(`evaluate: unsupported op in '${node.name}'`);
}

const UNARY: Readonly<Record<string, (x: number) => number>> = {
  exp: Math.exp,
  sqrt: Math.sqrt,
  sigmoid: (x) => 1 / (1 + Math.exp(-x)),
  tanh: Math.tanh,
  relu: (x) => Math.max(x, 0),
};

const BINARY: Readonly<Record<string, (a: number, b: number) => number>> = {
  add: (a, b) => a + b,
  sub: (a, b) => a - b,
  mul: (a, b) => a * b,
  div: (a, b) => a / b,
  pow: (a, b) => a ** b,
  maximum: (a, b) => Math.max(a, b),
  minimum: (a, b) => Math.min(a, b),
};

/** Comparisons give 1 (true) or 0 (false); any comparison with NaN is false (IEEE 754). */
const COMPARE: Readonly<Record<string, (a: number, b: number) => number>> = {
  greater: (a, b) => (a > b ? 1 : 0),
  less: (a, b) => (a < b ? 1 : 0),
  equal: (a, b) => (a === b ? 1 : 0),
};

/** `cond ? a : b` with the three operands broadcast to `outShape` (cond nonzero = true). */
function selectValues(
  [cond, a, b]: readonly [Float64Array, Float64Array, Float64Array],
  shapes: readonly (readonly number[])[],
  outShape: readonly number[],
): Float64Array {
  const out = new Float64Array(shapeSize(outShape));
  const strides = shapes.map((shape) => broadcastStrides(shape, outShape));
  const [sc, sa, sb] = strides as [number[], number[], number[]];
  const rank = outShape.length;
  const index = new Array<number>(rank).fill(0);
  let ic = 0;
  let ia = 0;
  let ib = 0;
  for (let flat = 0; flat < out.length; flat++) {
    out[flat] = cond[ic]! !== 0 ? a[ia]! : b[ib]!;
    for (let axis = rank - 1; axis >= 0; axis--) {
      index[axis]!++;
      ic += sc[axis]!;
      ia += sa[axis]!;
      ib += sb[axis]!;
      if (index[axis]! < outShape[axis]!) break;
      ic -= sc[axis]! * outShape[axis]!;
      ia -= sa[axis]! * outShape[axis]!;
      ib -= sb[axis]! * outShape[axis]!;
      index[axis] = 0;
    }
  }
  return out;
}

/** Strides of `shape` aligned to the right of `outShape`, 0 on broadcast axes. */
function broadcastStrides(shape: readonly number[], outShape: readonly number[]): number[] {
  const strides = stridesOf(shape);
  const offset = outShape.length - shape.length;
  return outShape.map((_, axis) => {
    const i = axis - offset;
    return i < 0 || shape[i] === 1 ? 0 : strides[i]!;
  });
}

function broadcastBinary(
  f: (a: number, b: number) => number,
  a: Float64Array,
  aShape: readonly number[],
  b: Float64Array,
  bShape: readonly number[],
  outShape: readonly number[],
): Float64Array {
  const out = new Float64Array(shapeSize(outShape));
  const sa = broadcastStrides(aShape, outShape);
  const sb = broadcastStrides(bShape, outShape);
  const rank = outShape.length;
  const index = new Array<number>(rank).fill(0);
  let ia = 0;
  let ib = 0;
  for (let flat = 0; flat < out.length; flat++) {
    out[flat] = f(a[ia]!, b[ib]!);
    for (let axis = rank - 1; axis >= 0; axis--) {
      index[axis]!++;
      ia += sa[axis]!;
      ib += sb[axis]!;
      if (index[axis]! < outShape[axis]!) break;
      ia -= sa[axis]! * outShape[axis]!;
      ib -= sb[axis]! * outShape[axis]!;
      index[axis] = 0;
    }
  }
  return out;
}

function reduce(
  x: Float64Array,
  shape: readonly number[],
  axes: readonly number[],
  fn: 'sum' | 'max',
): Float64Array {
  const keptShape = shape.map((d, i) => (axes.includes(i) ? 1 : d));
  const out = new Float64Array(shapeSize(keptShape)).fill(fn === 'sum' ? 0 : Number.NEGATIVE_INFINITY);
  const outStrides = broadcastStrides(keptShape, shape);
  const rank = shape.length;
  const index = new Array<number>(rank).fill(0);
  let o = 0;
  for (let flat = 0; flat < x.length; flat++) {
    out[o] = fn === 'sum' ? out[o]! + x[flat]! : Math.max(out[o]!, x[flat]!);
    for (let axis = rank - 1; axis >= 0; axis--) {
      index[axis]!++;
      o += outStrides[axis]!;
      if (index[axis]! < shape[axis]!) break;
      o -= outStrides[axis]! * shape[axis]!;
      index[axis] = 0;
    }
  }
  return out;
}

function transposeValues(x: Float64Array, shape: readonly number[], perm: readonly number[]): Float64Array {
  const outShape = perm.map((axis) => shape[axis]!);
  const strides = stridesOf(shape);
  const permuted = perm.map((axis) => strides[axis]!);
  return gatherStrided(x, outShape, permuted, 0, new Float64Array(shapeSize(outShape)));
}

function sliceValues(
  x: Float64Array,
  shape: readonly number[],
  begin: readonly number[],
  size: readonly number[],
): Float64Array {
  const strides = stridesOf(shape);
  let base = 0;
  for (let axis = 0; axis < shape.length; axis++) base += begin[axis]! * strides[axis]!;
  return gatherStrided(x, size, strides, base, new Float64Array(shapeSize(size)));
}

function concatValues(
  inputs: readonly Float64Array[],
  shapes: readonly (readonly number[])[],
  axis: number,
  outShape: readonly number[],
): Float64Array {
  const out = new Float64Array(shapeSize(outShape));
  const outer = shapeSize(outShape.slice(0, axis));
  const inner = shapeSize(outShape.slice(axis + 1));
  let offset = 0;
  inputs.forEach((values, i) => {
    const extent = shapes[i]![axis]!;
    for (let o = 0; o < outer; o++) {
      for (let e = 0; e < extent * inner; e++) {
        out[(o * outShape[axis]! + offset) * inner + e] = values[o * extent * inner + e]!;
      }
    }
    offset += extent;
  });
  return out;
}

function matmulValues(
  a: Float64Array,
  aShape: readonly number[],
  b: Float64Array,
  bShape: readonly number[],
  transposeX: boolean,
  transposeY: boolean,
  outShape: readonly number[],
): Float64Array {
  const aMatrix = aShape.length === 1 ? [1, aShape[0]!] : aShape;
  const bMatrix = bShape.length === 1 ? [bShape[0]!, 1] : bShape;
  const ar = aMatrix.length;
  const br = bMatrix.length;
  const m = transposeX ? aMatrix[ar - 1]! : aMatrix[ar - 2]!;
  const k = transposeX ? aMatrix[ar - 2]! : aMatrix[ar - 1]!;
  const n = transposeY ? bMatrix[br - 2]! : bMatrix[br - 1]!;
  const batchShape = outShape.slice(0, Math.max(ar, br) - 2);
  const aBatch = broadcastStrides(aMatrix.slice(0, -2), batchShape).map(
    (s) => s * aMatrix[ar - 2]! * aMatrix[ar - 1]!,
  );
  const bBatch = broadcastStrides(bMatrix.slice(0, -2), batchShape).map(
    (s) => s * bMatrix[br - 2]! * bMatrix[br - 1]!,
  );
  const batches = shapeSize(batchShape);
  const out = new Float64Array(batches * m * n);
  const aRow = aMatrix[ar - 1]!;
  const bRow = bMatrix[br - 1]!;
  const index = new Array<number>(batchShape.length).fill(0);
  for (let batch = 0; batch < batches; batch++) {
    let aBase = 0;
    let bBase = 0;
    for (let axis = 0; axis < batchShape.length; axis++) {
      aBase += index[axis]! * aBatch[axis]!;
      bBase += index[axis]! * bBatch[axis]!;
    }
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        let sum = 0;
        for (let p = 0; p < k; p++) {
          const av = transposeX ? a[aBase + p * aRow + i]! : a[aBase + i * aRow + p]!;
          const bv = transposeY ? b[bBase + j * bRow + p]! : b[bBase + p * bRow + j]!;
          sum += av * bv;
        }
        out[(batch * m + i) * n + j] = sum;
      }
    }
    for (let axis = batchShape.length - 1; axis >= 0; axis--) {
      index[axis]!++;
      if (index[axis]! < batchShape[axis]!) break;
      index[axis] = 0;
    }
  }
  return out;
}

function convValues(
  x: Float64Array,
  xShape: readonly number[],
  w: Float64Array,
  wShape: readonly number[],
  op: { strides: readonly number[]; pad: readonly number[]; dilations: readonly number[]; groups: number },
  outShape: readonly number[],
): Float64Array {
  const [batch, inChannels, height, width] = xShape as [number, number, number, number];
  const [outChannels, groupChannels, kh, kw] = wShape as [number, number, number, number];
  const [, , outH, outW] = outShape as [number, number, number, number];
  const outPerGroup = outChannels / op.groups;
  const out = new Float64Array(shapeSize(outShape));
  for (let n = 0; n < batch; n++)
    for (let o = 0; o < outChannels; o++) {
      const group = Math.floor(o / outPerGroup);
      for (let y = 0; y < outH; y++)
        for (let xo = 0; xo < outW; xo++) {
          let sum = 0;
          for (let c = 0; c < groupChannels; c++) {
            const ic = group * groupChannels + c;
            for (let i = 0; i < kh; i++) {
              const iy = y * op.strides[0]! - op.pad[0]! + i * op.dilations[0]!;
              if (iy < 0 || iy >= height) continue;
              for (let j = 0; j < kw; j++) {
                const ix = xo * op.strides[1]! - op.pad[2]! + j * op.dilations[1]!;
                if (ix < 0 || ix >= width) continue;
                sum +=
                  x[((n * inChannels + ic) * height + iy) * width + ix]! *
                  w[((o * groupChannels + c) * kh + i) * kw + j]!;
              }
            }
          }
          out[((n * outChannels + o) * outH + y) * outW + xo] = sum;
        }
    }
  return out;
}

function softmaxValues(x: Float64Array, shape: readonly number[], axis: number): Float64Array {
  const out = new Float64Array(x.length);
  const extent = shape[axis]!;
  const inner = shapeSize(shape.slice(axis + 1));
  const outer = shapeSize(shape.slice(0, axis));
  for (let o = 0; o < outer; o++)
    for (let i = 0; i < inner; i++) {
      const base = o * extent * inner + i;
      let max = Number.NEGATIVE_INFINITY;
      for (let e = 0; e < extent; e++) max = Math.max(max, x[base + e * inner]!);
      let sum = 0;
      for (let e = 0; e < extent; e++) {
        const v = Math.exp(x[base + e * inner]! - max);
        out[base + e * inner] = v;
        sum += v;
      }
      for (let e = 0; e < extent; e++) out[base + e * inner]! /= sum;
    }
  return out;
}

function gatherValues(
  table: Float64Array,
  shape: readonly number[],
  indices: Float64Array,
  axis: number,
): Float64Array {
  const outer = shapeSize(shape.slice(0, axis));
  const inner = shapeSize(shape.slice(axis + 1));
  const extent = shape[axis]!;
  const out = new Float64Array(outer * indices.length * inner);
  for (let o = 0; o < outer; o++)
    indices.forEach((raw, j) => {
      const index = raw < 0 ? raw + extent : raw;
      if (!Number.isInteger(index) || index < 0 || index >= extent) {
        throw new IrError(`gather: index ${raw} is out of range [0, ${extent})`);
      }
      for (let e = 0; e < inner; e++)
        out[(o * indices.length + j) * inner + e] = table[(o * extent + index) * inner + e]!;
    });
  return out;
}
