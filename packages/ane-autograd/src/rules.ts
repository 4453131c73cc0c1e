/**
 * The VJP table: one rule per primitive op (per function of unary, binary and reduce ops), in the
 * manner of tinygrad's gradient table. A rule gets the forward node `y = op(inputs)` and the
 * gradient `dy` of the loss with respect to y, and returns the gradient with respect to each input,
 * built from ordinary ane-ir ops in the same graph: a backward pass partitions, lowers and runs on
 * the ANE exactly like a forward one.
 *
 * Broadcast operands get their gradient reduced back to their own shape (`unbroadcast`); the
 * reverse sweep in `backward.ts` sums the contributions of a value used more than once.
 */
import { constantNumbers, type Graph, isFloatDType, type Op, opLabel, type Tensor } from 'ane-ir';
import { UnsupportedError } from './errors';
import {
  add,
  cast,
  concat,
  conv2d,
  div,
  equal,
  greater,
  less,
  log,
  matmul,
  mul,
  pow,
  reduceSum,
  reshape,
  select,
  slice,
  sub,
  transpose,
} from './folded-ops';

/** What a rule is given. */
export interface VjpArgs {
  /** The forward node `y = op(inputs)`. */
  readonly node: Tensor;
  /** The gradient of the loss with respect to `node`, shaped like it. */
  readonly dy: Tensor;
  /** `needs[i]`: whether `node.inputs[i]` needs a gradient (a rule may skip the others). */
  readonly needs: readonly boolean[];
}

/** One gradient per input, shaped like it; `undefined` where none is needed or none exists. */
export type VjpRule = (args: VjpArgs) => readonly (Tensor | undefined)[];

/** The table key of an op: `unary.exp`, `binary.add`, `reduce.sum`, or the kind (`matmul`). */
export function ruleKey(op: Op): string {
  const fn = (op as { fn?: string }).fn;
  return fn === undefined ? op.kind : `${op.kind}.${fn}`;
}

// ---- helpers: shapes ----

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

function size(shape: readonly number[]): number {
  return shape.reduce((n, d) => n * d, 1);
}

const FILLED = new WeakMap<Graph, Map<string, Tensor>>();

/**
 * A constant of `shape` filled with `value` (zeros pad slices, ones broadcast reductions back): one
 * node per graph, value, shape and dtype, created outside any scope and shared by every rule that
 * asks for it (as `causalMask` is). Every layer's backward then reads the very same constants, so
 * the partitioner sees identical kernels and lowers (and encodes the blobs of) one per program
 * rather than one per layer; the graph also holds each table once, not once per layer.
 */
export function filled(
  graph: Graph,
  shape: readonly number[],
  value: number,
  dtype: Tensor['dtype'],
): Tensor {
  let cache = FILLED.get(graph);
  if (cache === undefined) {
    cache = new Map();
    FILLED.set(graph, cache);
  }
  const key = `${dtype}:${value}:${shape.join('x')}`;
  const known = cache.get(key);
  if (known !== undefined) return known;
  const values = new Float64Array(size(shape));
  if (value !== 0) values.fill(value);
  const constant = graph.unscoped(() =>
    graph.constant(values, shape, { dtype, name: value === 0 ? 'zeros' : 'ones' }),
  );
  cache.set(key, constant);
  return constant;
}

/**
 * Reduces a gradient `g` of a broadcast result back to an operand's `shape` (NumPy broadcasting
 * aligns shapes on the right): sums over the leading axes the operand lacks and over the axes where
 * it has extent 1, then reshapes away the leading axes.
 */
export function unbroadcast(g: Tensor, shape: readonly number[]): Tensor {
  if (sameShape(g.shape, shape)) return g;
  const offset = g.rank - shape.length;
  const axes: number[] = [];
  for (let axis = 0; axis < g.rank; axis++) {
    if (axis < offset || (shape[axis - offset] === 1 && g.shape[axis] !== 1)) axes.push(axis);
  }
  const summed = axes.length === 0 ? g : reduceSum(g, axes, { keepDims: true, name: 'unbroadcast' });
  return sameShape(summed.shape, shape) ? summed : reshape(summed, shape, { name: 'unbroadcast_r' });
}

/**
 * Broadcasts `g` (same rank as `shape`, extent 1 on the axes to expand) to `shape`: one product per
 * expanded axis with a constant of ones holding only that axis's extent, so the constants stay
 * small (a [1, 1] loss gradient reaches [V, S] through ones [V, 1] and [1, S], never ones [V, S]).
 */
export function broadcastTo(g: Tensor, shape: readonly number[]): Tensor {
  let result = g;
  shape.forEach((extent, axis) => {
    if (result.shape[axis] !== 1 || extent === 1) return;
    const onesShape = shape.map((_, a) => (a === axis ? extent : 1));
    result = mul(result, filled(g.graph, onesShape, 1, g.dtype), { name: 'broadcast' });
  });
  return result;
}

function inversePermutation(perm: readonly number[]): number[] {
  const inverse = new Array<number>(perm.length);
  perm.forEach((axis, i) => {
    inverse[axis] = i;
  });
  return inverse;
}

/** The scalar value of a one-element constant, else undefined. */
function constantScalar(t: Tensor): number | undefined {
  if (t.op.kind !== 'constant' || t.size !== 1 || t.op.quantized !== undefined) return undefined;
  return constantNumbers(t.op.data)[0];
}

/** Reverses `t` along `axis` (slices concatenated in reverse order). */
function reverseAxis(t: Tensor, axis: number): Tensor {
  const extent = t.shape[axis]!;
  if (extent === 1) return t;
  const parts: Tensor[] = [];
  for (let i = extent - 1; i >= 0; i--) {
    const begin = t.shape.map((_, a) => (a === axis ? i : 0));
    const sizes = t.shape.map((d, a) => (a === axis ? 1 : d));
    parts.push(slice(t, begin, sizes, { name: 'flip' }));
  }
  return concat(parts, axis, { name: 'flipped' });
}

type Comparison = (a: Tensor, b: Tensor, options?: { name?: string }) => Tensor;

/**
 * maximum/minimum: `dy` goes to the operand the comparison picks (`wins(a, b)` for a, `loses(a, b)`
 * for b); where a == b each gets half.
 */
function routeByComparison(
  { node, dy, needs }: VjpArgs,
  wins: Comparison,
  loses: Comparison,
): (Tensor | undefined)[] {
  const [a, b] = node.inputs as [Tensor, Tensor];
  const tie = select(equal(a, b, { name: 'tie' }), mul(dy, 0.5, { name: 'half' }), 0, { name: 'tie_share' });
  return [
    needs[0]
      ? unbroadcast(select(wins(a, b, { name: 'a_wins' }), dy, tie, { name: 'da' }), a.shape)
      : undefined,
    needs[1]
      ? unbroadcast(select(loses(a, b, { name: 'b_wins' }), dy, tie, { name: 'db' }), b.shape)
      : undefined,
  ];
}

// ---- the rules ----

const unaryRules = {
  /** d exp(x) = exp(x) dx */
  'unary.exp': ({ node, dy }) => [mul(dy, node, { name: 'dx' })],
  /** d sqrt(x) = dx / (2 sqrt(x)) */
  'unary.sqrt': ({ node, dy }) => [div(mul(dy, 0.5, { name: 'half' }), node, { name: 'dx' })],
  /** d sigmoid(x) = s (1 - s) dx */
  'unary.sigmoid': ({ node, dy }) => [
    mul(dy, mul(node, sub(1, node, { name: 'one_minus' }), { name: 'slope' }), { name: 'dx' }),
  ],
  /** d tanh(x) = (1 - t²) dx */
  'unary.tanh': ({ node, dy }) => [
    mul(dy, sub(1, mul(node, node, { name: 'sq' }), { name: 'slope' }), { name: 'dx' }),
  ],
  /** relu'(x) is the mask x > 0: dy where x > 0, else 0 (0 at x = 0, as in PyTorch). */
  'unary.relu': ({ node, dy }) => [
    select(greater(node.inputs[0]!, 0, { name: 'positive' }), dy, 0, { name: 'dx' }),
  ],
  /** d log(x + eps) = dx / (x + eps) */
  'unary.log': ({ node, dy }) => {
    const op = node.op as Extract<Op, { kind: 'unary'; fn: 'log' }>;
    const x = node.inputs[0]!;
    const shifted = op.epsilon === 0 ? x : add(x, op.epsilon, { name: 'x_eps' });
    return [div(dy, shifted, { name: 'dx' })];
  },
} satisfies Record<string, VjpRule>;

const binaryRules = {
  'binary.add': ({ node, dy, needs }) => {
    const [a, b] = node.inputs as [Tensor, Tensor];
    return [
      needs[0] ? asWeightGradient(a, b, dy, () => unbroadcast(dy, a.shape)) : undefined,
      needs[1] ? asWeightGradient(b, a, dy, () => unbroadcast(dy, b.shape)) : undefined,
    ];
  },
  'binary.sub': ({ node, dy, needs }) => {
    const [a, b] = node.inputs as [Tensor, Tensor];
    return [
      needs[0] ? asWeightGradient(a, b, dy, () => unbroadcast(dy, a.shape)) : undefined,
      needs[1]
        ? asWeightGradient(b, a, dy, () => unbroadcast(mul(dy, -1, { name: 'neg' }), b.shape))
        : undefined,
    ];
  },
  'binary.mul': ({ node, dy, needs }) => {
    const [a, b] = node.inputs as [Tensor, Tensor];
    return [
      needs[0]
        ? asWeightGradient(a, b, dy, () => unbroadcast(mul(dy, b, { name: 'da' }), a.shape))
        : undefined,
      needs[1]
        ? asWeightGradient(b, a, dy, () => unbroadcast(mul(dy, a, { name: 'db' }), b.shape))
        : undefined,
    ];
  },
  /** y = a / b: da = dy / b, db = -dy a / b² = -(dy / b) y */
  'binary.div': ({ node, dy, needs }) => {
    const [a, b] = node.inputs as [Tensor, Tensor];
    const dyOverB = div(dy, b, { name: 'da' });
    return [
      needs[0] ? unbroadcast(dyOverB, a.shape) : undefined,
      needs[1]
        ? unbroadcast(mul(mul(dyOverB, node, { name: 'dy_y_b' }), -1, { name: 'db' }), b.shape)
        : undefined,
    ];
  },
  /** y = a^b: da = dy b a^(b-1); db = dy y ln(a) */
  'binary.pow': ({ node, dy, needs }) => {
    const [a, b] = node.inputs as [Tensor, Tensor];
    let da: Tensor | undefined;
    if (needs[0]) {
      const exponent = constantScalar(b);
      if (exponent === 1) da = dy;
      else if (exponent === 2) da = mul(dy, mul(a, 2, { name: 'slope' }), { name: 'da' });
      else if (exponent !== undefined) {
        const slope = mul(pow(a, exponent - 1, { name: 'pow_m1' }), exponent, { name: 'slope' });
        da = mul(dy, slope, { name: 'da' });
      } else {
        const slope = mul(b, pow(a, sub(b, 1, { name: 'b_m1' }), { name: 'pow_m1' }), { name: 'slope' });
        da = mul(dy, slope, { name: 'da' });
      }
      da = unbroadcast(da, a.shape);
    }
    let db: Tensor | undefined;
    if (needs[1]) {
      // d a^b / db = a^b ln(a): defined for a > 0 (PyTorch's convention: 0 where a <= 0).
      const logBase = select(greater(a, 0, { name: 'positive' }), log(a, { name: 'ln_a' }), 0, {
        name: 'ln_a_pos',
      });
      db = unbroadcast(mul(mul(dy, node, { name: 'dy_y' }), logBase, { name: 'db' }), b.shape);
    }
    return [da, db];
  },
  /** dy goes to the larger operand; ties split it evenly (as PyTorch does). */
  'binary.maximum': (args) => routeByComparison(args, greater, less),
  /** dy goes to the smaller operand; ties split it evenly. */
  'binary.minimum': (args) => routeByComparison(args, less, greater),
} satisfies Record<string, VjpRule>;

/** The gradient of a reduction, reshaped to the input's rank with the reduced axes kept as 1. */
function keptGradient(node: Tensor, dy: Tensor): Tensor {
  const op = node.op as Extract<Op, { kind: 'reduce' }>;
  const x = node.inputs[0]!;
  if (op.keepDims) return dy;
  const kept = x.shape.map((d, axis) => (op.axes.includes(axis) ? 1 : d));
  return reshape(dy, kept, { name: 'dy_kept' });
}

const reduceRules = {
  /** Every summed element receives dy. */
  'reduce.sum': ({ node, dy }) => [broadcastTo(keptGradient(node, dy), node.inputs[0]!.shape)],
  /** dy goes to the elements equal to the maximum, split evenly among ties (PyTorch's amax). */
  'reduce.max': ({ node, dy }) => {
    const op = node.op as Extract<Op, { kind: 'reduce' }>;
    const x = node.inputs[0]!;
    const kept = keptGradient(node, dy);
    const maxKept = op.keepDims ? node : reshape(node, kept.shape, { name: 'max_kept' });
    const isMax = equal(x, maxKept, { name: 'is_max' });
    const ties = reduceSum(select(isMax, node.graph.scalar(1, dy.dtype), 0, { name: 'is_max_f' }), op.axes, {
      keepDims: true,
      name: 'ties',
    });
    const share = div(kept, ties, { name: 'share' });
    return [select(isMax, share, 0, { name: 'dx' })];
  },
} satisfies Record<string, VjpRule>;

const movementRules = {
  reshape: ({ node, dy }) => [reshape(dy, node.inputs[0]!.shape, { name: 'dx' })],
  transpose: ({ node, dy }) => {
    const op = node.op as Extract<Op, { kind: 'transpose' }>;
    return [transpose(dy, inversePermutation(op.perm), { name: 'dx' })];
  },
  /** The gradient lands in the sliced window; zeros elsewhere (a concat with zero constants per axis). */
  slice: ({ node, dy }) => {
    const op = node.op as Extract<Op, { kind: 'slice' }>;
    const x = node.inputs[0]!;
    let g = dy;
    for (let axis = 0; axis < x.rank; axis++) {
      const before = op.begin[axis]!;
      const after = x.shape[axis]! - before - op.size[axis]!;
      if (before === 0 && after === 0) continue;
      const parts: Tensor[] = [];
      const padShape = (extent: number) => g.shape.map((d, a) => (a === axis ? extent : d));
      if (before > 0) parts.push(filled(node.graph, padShape(before), 0, dy.dtype));
      parts.push(g);
      if (after > 0) parts.push(filled(node.graph, padShape(after), 0, dy.dtype));
      g = concat(parts, axis, { name: 'dx_pad' });
    }
    return [g];
  },
  /** Each input receives its own window of dy. */
  concat: ({ node, dy, needs }) => {
    const op = node.op as Extract<Op, { kind: 'concat' }>;
    let offset = 0;
    return node.inputs.map((input, i) => {
      const begin = input.shape.map((_, a) => (a === op.axis ? offset : 0));
      offset += input.shape[op.axis]!;
      return needs[i] ? slice(dy, begin, input.shape, { name: `dx${i}` }) : undefined;
    });
  },
} satisfies Record<string, VjpRule>;

/** The composite kind of a weight gradient (`dW = dY · Xᵀ` of a matmul with a param operand). */
export const WEIGHT_GRAD = 'weight_grad';

const WEIGHT_ONLY = new WeakMap<Tensor, boolean>();

/**
 * Whether `t` is a trainable weight or computed from weights and constants alone (a reshaped bias,
 * a transposed weight): its gradient is a weight gradient.
 */
export function isWeightOnly(t: Tensor): boolean {
  const known = WEIGHT_ONLY.get(t);
  if (known !== undefined) return known;
  let result: boolean;
  if (t.op.kind === 'param') result = t.op.trainable;
  else if (t.op.kind === 'input' || t.op.kind === 'constant' || !isFloatDType(t.dtype)) result = false;
  else {
    const weights = t.inputs.filter(isWeightOnly);
    result = weights.length > 0 && t.inputs.every((i) => weights.includes(i) || i.op.kind === 'constant');
  }
  WEIGHT_ONLY.set(t, result);
  return result;
}

/**
 * Builds the gradient of `operand` with `build`; when the operand is a weight (`isWeightOnly`) read
 * by an op that sums its gradient over positions (a matmul, a broadcast gain or bias), as a
 * `weight_grad` composite call recording `{ weight, dy, x }` (x: the other operand). Such a
 * gradient sums over every position of the batch: its fp16 accumulation is unsafe and the
 * optimizer needs it in fp32, so `valueAndGrad` places these calls on the host by default; the tag
 * is what lets the partitioner and a native host kernel find them.
 */
function asWeightGradient(
  operand: Tensor,
  other: Tensor,
  dy: Tensor,
  build: () => Tensor,
  /** Whether the gradient sums over positions: a matmul's always does, an elementwise op's when it broadcast the operand. */
  summed = operand.size < dy.size,
): Tensor {
  if (!isWeightOnly(operand) || !summed) return build();
  return operand.graph.composite(WEIGHT_GRAD, WEIGHT_GRAD, build, { weight: operand, dy, x: other });
}

/**
 * C = op(A) · op(B) over the last two axes, op a transpose when the flag is set:
 *   C = A B    : dA = dC Bᵀ,     dB = Aᵀ dC
 *   C = Aᵀ B   : dA = B dCᵀ,     dB = A dC
 *   C = A Bᵀ   : dA = dC B,      dB = dCᵀ A
 *   C = Aᵀ Bᵀ  : dA = Bᵀ dCᵀ,    dB = dCᵀ Aᵀ
 * then summed over the batch axes an operand was broadcast along.
 */
const matmulRule: VjpRule = ({ node, dy, needs }) => {
  const op = node.op as Extract<Op, { kind: 'matmul' }>;
  const [a, b] = node.inputs as [Tensor, Tensor];
  if (a.rank < 2 || b.rank < 2) {
    throw new UnsupportedError(
      'matmul',
      node.name,
      `an operand of rank 1 (shapes [${a.shape.join(', ')}] and [${b.shape.join(', ')}])`,
      'reshape vectors to [1, K] or [K, 1] matrices before the matmul',
    );
  }
  const tx = op.transposeX;
  const ty = op.transposeY;
  const gradA = () =>
    unbroadcast(
      !tx
        ? matmul(dy, b, { transposeY: !ty, name: 'da' })
        : matmul(b, dy, { transposeX: ty, transposeY: true, name: 'da' }),
      a.shape,
    );
  const gradB = () =>
    unbroadcast(
      !ty
        ? matmul(a, dy, { transposeX: !tx, name: 'db' })
        : matmul(dy, a, { transposeX: true, transposeY: tx, name: 'db' }),
      b.shape,
    );
  const da = needs[0] ? asWeightGradient(a, b, dy, gradA, true) : undefined;
  const db = needs[1] ? asWeightGradient(b, a, dy, gradB, true) : undefined;
  return [da, db];
};

/**
 * dX of a stride-1, undilated, ungrouped conv: the conv of dY with the weight transposed
 * (`[C, OC, kH, kW]`) and flipped spatially, padded by `k - 1 - pad`. The weight's own gradient is
 * not supported (the ANE takes conv weights as constants; use `linear` for trained weights).
 */
const convRule: VjpRule = ({ node, dy, needs }) => {
  const op = node.op as Extract<Op, { kind: 'conv' }>;
  const [, weight] = node.inputs as [Tensor, Tensor];
  const unsupported = (reason: string, fix: string): never => {
    throw new UnsupportedError('conv', node.name, reason, fix);
  };
  if (needs[1]) {
    unsupported(
      'the gradient with respect to the conv weight (the ANE takes conv weights as constants)',
      'train the weight through linear (a matmul with the weight as data), or mark it frozen',
    );
  }
  if (!needs[0]) return [undefined, undefined];
  if (op.strides[0] !== 1 || op.strides[1] !== 1) {
    unsupported(`strides [${op.strides.join(', ')}]`, 'only stride-1 convs have a dX rule; use stride 1');
  }
  if (op.dilations[0] !== 1 || op.dilations[1] !== 1 || op.groups !== 1) {
    unsupported(
      `dilations [${op.dilations.join(', ')}] with ${op.groups} groups`,
      'only undilated convs with one group have a dX rule',
    );
  }
  const [, , kh, kw] = weight.shape as [number, number, number, number];
  const [top, bottom, left, right] = op.pad;
  if (top > kh - 1 || bottom > kh - 1 || left > kw - 1 || right > kw - 1) {
    unsupported(
      `padding [${op.pad.join(', ')}] wider than the kernel ${kh}x${kw} minus one`,
      'pad at most kernel - 1 on each side',
    );
  }
  const swapped = transpose(weight, [1, 0, 2, 3], { name: 'w_t' });
  const flipped = reverseAxis(reverseAxis(swapped, 2), 3);
  const dx = conv2d(dy, flipped, {
    pad: [kh - 1 - top, kh - 1 - bottom, kw - 1 - left, kw - 1 - right],
    name: 'dx',
  });
  return [dx, undefined];
};

/** y = softmax(x): dx = y (dy - Σ dy y) over the axis. */
const softmaxRule: VjpRule = ({ node, dy }) => {
  const op = node.op as Extract<Op, { kind: 'softmax' }>;
  const weighted = reduceSum(mul(dy, node, { name: 'dy_y' }), op.axis, { keepDims: true, name: 'dot' });
  return [mul(node, sub(dy, weighted, { name: 'centered' }), { name: 'dx' })];
};

/** A float-to-float cast passes dy back in the input's dtype; casts to or from integers have no gradient. */
const castRule: VjpRule = ({ node, dy }) => {
  const op = node.op as Extract<Op, { kind: 'cast' }>;
  const x = node.inputs[0]!;
  if (op.scale !== undefined || !isFloatDType(x.dtype) || !isFloatDType(op.dtype)) return [undefined];
  return [x.dtype === dy.dtype ? dy : cast(dy, x.dtype)];
};

/**
 * The table's gradient is a scatter-add of dy into the gathered rows: `dTable = onehotᵀ · dy` with
 * `onehot[n, v] = (indices[n] == v)`, as a `scatter_add` composite (a host op: the comparison is on
 * int32 indices; its `args` name the indices and dy for a native kernel). Indices have none.
 */
const gatherRule: VjpRule = ({ node, dy, needs }) => {
  const op = node.op as Extract<Op, { kind: 'gather' }>;
  const [table, indices] = node.inputs as [Tensor, Tensor];
  if (!needs[0]) return [undefined, undefined];
  if (op.axis !== 0) {
    throw new UnsupportedError(
      'gather',
      node.name,
      `the table gradient of a gather along axis ${op.axis} (only axis 0, rows, has a scatter-add rule)`,
      'gather rows (axis 0), transposing the table first if needed',
    );
  }
  const rows = table.shape[0]!;
  const width = size(table.shape.slice(1));
  const count = indices.size;
  const dTable = node.graph.composite(
    'scatter_add',
    'scatter_add',
    () => {
      const ids = reshape(indices, [count, 1], { name: 'ids' });
      const iota = node.graph.constant(
        Array.from({ length: rows }, (_, v) => v),
        [1, rows],
        { dtype: indices.dtype, name: 'row_ids' },
      );
      const onehot = select(equal(ids, iota, { name: 'hit' }), node.graph.scalar(1, dy.dtype), 0, {
        name: 'onehot',
      });
      const dyRows = reshape(dy, [count, width], { name: 'dy_rows' });
      const summed = matmul(onehot, dyRows, { transposeX: true, name: 'sum' });
      return reshape(summed, table.shape, { name: 'out' });
    },
    { indices, dy, rows },
  );
  return [dTable, undefined];
};

/** Comparisons are piecewise constant: no gradient flows through them. */
const comparisonRule: VjpRule = ({ node }) => node.inputs.map(() => undefined);

/** select(cond, a, b): dy goes to a where cond holds, to b elsewhere; cond has none. */
const selectRule: VjpRule = ({ node, dy, needs }) => {
  const [cond, a, b] = node.inputs as [Tensor, Tensor, Tensor];
  return [
    undefined,
    needs[1] ? unbroadcast(select(cond, dy, 0, { name: 'da' }), a.shape) : undefined,
    needs[2] ? unbroadcast(select(cond, 0, dy, { name: 'db' }), b.shape) : undefined,
  ];
};

/** The table: every differentiable primitive, keyed by `ruleKey(op)`. */
export const VJP_RULES: Readonly<Record<string, VjpRule>> = {
  ...unaryRules,
  ...binaryRules,
  ...reduceRules,
  ...movementRules,
  matmul: matmulRule,
  conv: convRule,
  softmax: softmaxRule,
  cast: castRule,
  gather: gatherRule,
  'compare.greater': comparisonRule,
  'compare.less': comparisonRule,
  'compare.equal': comparisonRule,
  select: selectRule,
};

/** The rule for `node`'s op, or an `UnsupportedError` naming the op. */
export function vjpRule(node: Tensor): VjpRule {
  const rule = VJP_RULES[ruleKey(node.op)];
  if (rule === undefined) {
    throw new UnsupportedError(
      opLabel(node.op),
      node.name,
      `the op '${ruleKey(node.op)}' has no entry in ane-autograd's VJP table`,
      'add a rule to VJP_RULES in ane-autograd/src/rules.ts, or stop the gradient with stopGradient',
    );
  }
  return rule;
}
