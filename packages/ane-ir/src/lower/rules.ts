/**
 * The lowering rewrites, each a `(pattern) => replacement | null` rule over the kernel graph.
 *
 *   fold-constant-movement   reshape / transpose / slice of a constant  -> a constant
 *   finite-constants         ±inf in an fp16 constant                    -> ±65504 (masks never -inf)
 *   linear-to-conv           matmul(W const [OC, IC], x [IC, S])         -> 1x1 conv on [1, IC, 1, S]
 *   runtime-linear           matmul(transpose(Wᵀ packed), x)             -> transpose(matmul(xᵀ, Wᵀ))
 *   transpose-into-matmul    matmul(a, transpose(b)) at rank >= 3        -> matmul(a, b, transpose_y)
 *   cancel-transposes        transpose(transpose(x))                     -> one transpose, or x
 *   merge-reshapes           reshape(reshape(x)), identity reshapes      -> one reshape, or x
 *   zeros-without-mul        mul(x, 0)                                   -> sub(x, x)
 *   div-by-constant          div(x, c)                                   -> mul(x, 1/c)
 *   dequantize-constant      dequantize(int8 constant)                   -> constexpr_affine_dequantize
 */
import { type ConstantData, constantElement, sliceData, transposeData } from '../graph/data';
import { isConstantLike, type Op, type Tensor } from '../graph/tensor';
import { FP16_MAX, fp16BitsFromNumber, roundToFp16 } from '../mil/fp16';
import { sameShape } from '../mil/types';
import type { PendingNode, RewriteContext, RewriteRule } from './rewrite';

/** Constant data of a constant or frozen param (undefined for a data-less frozen param). */
function constantSource(node: Tensor): { data: ConstantData | undefined; op: Op } | undefined {
  if (node.op.kind === 'constant') return { data: node.op.data, op: node.op };
  if (node.op.kind === 'param' && !node.op.trainable) return { data: node.op.data, op: node.op };
  return undefined;
}

/** A constant (or frozen param) with new data and shape, keeping the source's kind and blob file. */
function constantLike(
  context: RewriteContext,
  pending: PendingNode,
  source: Tensor,
  data: ConstantData | undefined,
): Tensor {
  const op = source.op;
  let newOp: Op;
  if (op.kind === 'constant') newOp = { ...op, data: data! };
  else if (op.kind === 'param') {
    const { data: _old, ...rest } = op;
    newOp = data === undefined ? rest : { ...rest, data };
  } else throw new Error('constantLike: not a constant');
  return context.emit(pending, newOp, [], {
    label: source.label,
    meta: { origin: source.meta.origin ?? source.name },
    inferred: { shape: pending.shape, dtype: pending.dtype },
  });
}

export const foldConstantMovement: RewriteRule = {
  name: 'fold-constant-movement',
  apply(node, context) {
    const input = node.inputs[0];
    if (input === undefined || !isConstantLike(input)) return null;
    const { data } = constantSource(input)!;
    switch (node.op.kind) {
      case 'reshape':
        return constantLike(context, node, input, data);
      case 'transpose': {
        const perm = node.op.perm;
        return constantLike(context, node, input, data && transposeData(data, input.shape, perm));
      }
      case 'slice': {
        const { begin, size } = node.op;
        return constantLike(context, node, input, data && sliceData(data, input.shape, begin, size));
      }
      default:
        return null;
    }
  },
};

const FP16_INF = 0x7c00;
const FP16_NEG_INF = 0xfc00;
const INFINITE = new WeakMap<ConstantData, boolean>();

function holdsInfinity(data: ConstantData): boolean {
  let known = INFINITE.get(data);
  if (known === undefined) {
    known = (data.values as Uint16Array).some((bits) => bits === FP16_INF || bits === FP16_NEG_INF);
    INFINITE.set(data, known);
  }
  return known;
}

export const finiteConstants: RewriteRule = {
  name: 'finite-constants',
  apply(node, context) {
    if (node.op.kind !== 'constant' || node.op.data.dtype !== 'fp16') return null;
    const values = node.op.data.values as Uint16Array;
    if (!holdsInfinity(node.op.data)) return null;
    const finite = values.map((bits) =>
      bits === FP16_INF
        ? fp16BitsFromNumber(FP16_MAX)
        : bits === FP16_NEG_INF
          ? fp16BitsFromNumber(-FP16_MAX)
          : bits,
    );
    return context.emit(node, { ...node.op, data: { dtype: 'fp16', values: finite } }, [], {
      label: node.original.label,
      inferred: { shape: node.shape, dtype: node.dtype },
    });
  },
};

export const linearToConv: RewriteRule = {
  name: 'linear-to-conv',
  apply(node, context) {
    if (node.op.kind !== 'matmul' || node.op.transposeX || node.op.transposeY) return null;
    const [weight, x] = node.inputs as [Tensor, Tensor];
    if (!isConstantLike(weight) || isConstantLike(x) || weight.rank !== 2 || x.rank !== 2) return null;
    if (weight.dtype !== x.dtype || !(x.dtype === 'fp16' || x.dtype === 'fp32')) return null;
    const [outChannels, inChannels] = weight.shape as [number, number];
    const seq = x.shape[1]!;
    const x4 = context.emit(node, { kind: 'reshape', shape: [1, inChannels, 1, seq] }, [x], {
      suffix: 'x4',
      label: x.label,
    });
    const w4 = context.emit(node, { kind: 'reshape', shape: [outChannels, inChannels, 1, 1] }, [weight], {
      suffix: 'w4',
      label: weight.label,
    });
    const conv = context.emit(
      node,
      { kind: 'conv', strides: [1, 1], pad: [0, 0, 0, 0], dilations: [1, 1], groups: 1 },
      [x4, w4],
      { suffix: 'conv', label: node.original.label },
    );
    return context.emit(node, { kind: 'reshape', shape: [outChannels, seq] }, [conv], {
      label: node.original.label,
    });
  },
};

function isSwapLastTwo(perm: readonly number[]): boolean {
  const rank = perm.length;
  if (rank < 2) return false;
  return perm.every((axis, i) =>
    i < rank - 2 ? axis === i : axis === (i === rank - 2 ? rank - 1 : rank - 2),
  );
}

export const runtimeLinear: RewriteRule = {
  name: 'runtime-linear',
  apply(node, context) {
    if (node.op.kind !== 'matmul' || node.op.transposeX || node.op.transposeY) return null;
    const [a, x] = node.inputs as [Tensor, Tensor];
    if (a.op.kind !== 'transpose' || a.rank !== 2 || x.rank !== 2) return null;
    const packed = a.inputs[0]!;
    if (packed.meta.packed?.role !== 'weight') return null;
    // y [OC, S] = Wᵀᵀ x = (xᵀ Wᵀ)ᵀ: the hardware-proven order of maderix/ANE's dynamic matmul.
    const xt = context.emit(node, { kind: 'transpose', perm: [1, 0] }, [x], {
      suffix: 'xt',
      label: `${x.label}_t`,
    });
    const yt = context.emit(node, { kind: 'matmul', transposeX: false, transposeY: false }, [xt, packed], {
      suffix: 'yt',
      label: `${node.original.label}_t`,
    });
    return context.emit(node, { kind: 'transpose', perm: [1, 0] }, [yt], { label: node.original.label });
  },
};

export const transposeIntoMatmul: RewriteRule = {
  name: 'transpose-into-matmul',
  apply(node, context) {
    if (node.op.kind !== 'matmul') return null;
    const [a, b] = node.inputs as [Tensor, Tensor];
    if (b.op.kind !== 'transpose' || b.rank < 3 || !isSwapLastTwo(b.op.perm)) return null;
    return context.emit(node, { ...node.op, transposeY: !node.op.transposeY }, [a, b.inputs[0]!], {
      label: node.original.label,
    });
  },
};

export const cancelTransposes: RewriteRule = {
  name: 'cancel-transposes',
  apply(node, context) {
    if (node.op.kind !== 'transpose') return null;
    const perm = node.op.perm;
    const input = node.inputs[0]!;
    if (perm.every((axis, i) => axis === i)) return input;
    if (input.op.kind !== 'transpose') return null;
    const inner = input.op.perm;
    const combined = perm.map((axis) => inner[axis]!);
    const source = input.inputs[0]!;
    if (combined.every((axis, i) => axis === i)) return source;
    return context.emit(node, { kind: 'transpose', perm: combined }, [source], {
      label: node.original.label,
    });
  },
};

export const mergeReshapes: RewriteRule = {
  name: 'merge-reshapes',
  apply(node, context) {
    if (node.op.kind !== 'reshape') return null;
    const input = node.inputs[0]!;
    if (sameShape(input.shape, node.shape)) return input;
    if (input.op.kind !== 'reshape') return null;
    const source = input.inputs[0]!;
    if (sameShape(source.shape, node.shape)) return source;
    return context.emit(node, node.op, [source], { label: node.original.label });
  },
};

function isZeroConstant(node: Tensor): boolean {
  if (node.op.kind !== 'constant' || node.op.quantized !== undefined) return false;
  const data = node.op.data;
  for (let i = 0; i < data.values.length; i++) if (roundToFp16(constantElement(data, i)) !== 0) return false;
  return true;
}

export const zerosWithoutMul: RewriteRule = {
  name: 'zeros-without-mul',
  apply(node, context) {
    if (node.op.kind !== 'binary' || node.op.fn !== 'mul') return null;
    const [a, b] = node.inputs as [Tensor, Tensor];
    const [x, zero] = isZeroConstant(b) ? [a, b] : isZeroConstant(a) ? [b, a] : [undefined, undefined];
    if (x === undefined || zero === undefined || !sameShape(x.shape, node.shape) || isConstantLike(x))
      return null;
    return context.emit(node, { kind: 'binary', fn: 'sub' }, [x, x], { label: node.original.label });
  },
};

export const divByConstant: RewriteRule = {
  name: 'div-by-constant',
  apply(node, context) {
    if (node.op.kind !== 'binary' || node.op.fn !== 'div') return null;
    const [x, c] = node.inputs as [Tensor, Tensor];
    if (c.op.kind !== 'constant' || c.op.quantized !== undefined || c.size !== 1) return null;
    const value = constantElement(c.op.data, 0);
    if (value === 0) return null;
    const reciprocal = context.emit(
      node,
      { kind: 'constant', data: { dtype: 'fp32', values: Float32Array.of(1 / value) } },
      [],
      {
        suffix: 'inv',
        label: `${c.label}_inv`,
        inferred: { shape: c.shape, dtype: c.dtype },
      },
    );
    const typed = retype(reciprocal, c.dtype, context, node);
    return context.emit(node, { kind: 'binary', fn: 'mul' }, [x, typed], { label: node.original.label });
  },
};

/** A one-element fp32 constant re-stored in `dtype`. */
function retype(
  constant: Tensor,
  dtype: Tensor['dtype'],
  context: RewriteContext,
  node: PendingNode,
): Tensor {
  if (constant.op.kind !== 'constant') return constant;
  const value = constantElement(constant.op.data, 0);
  const data: ConstantData =
    dtype === 'fp16'
      ? { dtype, values: Uint16Array.of(fp16BitsFromNumber(value)) }
      : { dtype: 'fp32', values: Float32Array.of(value) };
  return context.emit(node, { kind: 'constant', data }, [], {
    suffix: 'inv16',
    label: constant.label,
    inferred: { shape: constant.shape, dtype },
  });
}

export const dequantizeConstant: RewriteRule = {
  name: 'dequantize-constant',
  apply(node, context) {
    if (node.op.kind !== 'cast' || node.op.scale === undefined || node.dtype === 'int8') return null;
    const q = node.inputs[0]!;
    if (q.op.kind !== 'constant' || q.op.data.dtype !== 'int8' || q.op.quantized !== undefined) return null;
    return context.emit(node, { ...q.op, quantized: { scale: node.op.scale, zeroPoint: 0 } }, [], {
      label: q.label,
      inferred: { shape: node.shape, dtype: node.dtype },
    });
  },
};

/** The rewrites every kernel goes through after packing, in priority order. */
export const LOWERING_RULES: readonly RewriteRule[] = [
  finiteConstants,
  dequantizeConstant,
  foldConstantMovement,
  mergeReshapes,
  cancelTransposes,
  zerosWithoutMul,
  divByConstant,
  linearToConv,
  runtimeLinear,
  transposeIntoMatmul,
];
