/**
 * Magnitude bounds: for each node, a number B with |value| <= B everywhere, or undefined when
 * nothing bounds it. Seeds are what callers declare (`maxAbs` on inputs and params) and the data of
 * constants; the fp16 range checks (sum of squares, overflow) read the result.
 */
import { constantElement, constantMaxAbs } from '../graph/data';
import type { Tensor } from '../graph/tensor';

export type Bounds = ReadonlyMap<Tensor, number | undefined>;

function times(a: number | undefined, b: number | undefined): number | undefined {
  return a === undefined || b === undefined ? undefined : a * b;
}

function plus(a: number | undefined, b: number | undefined): number | undefined {
  return a === undefined || b === undefined ? undefined : a + b;
}

/** The single value of a one-element constant, or undefined. */
function scalarValue(node: Tensor): number | undefined {
  if (node.op.kind !== 'constant' || node.size !== 1 || node.op.quantized !== undefined) return undefined;
  return constantElement(node.op.data, 0);
}

/** Smallest magnitude of a constant's elements (for division bounds). */
function minAbs(node: Tensor): number | undefined {
  if (node.op.kind !== 'constant' || node.op.quantized !== undefined) return undefined;
  let min = Number.POSITIVE_INFINITY;
  for (let i = 0; i < node.op.data.values.length; i++)
    min = Math.min(min, Math.abs(constantElement(node.op.data, i)));
  return min;
}

/**
 * Bounds of `nodes` (and of the inputs they read), in topological order. `seed` may override the
 * bound of any node (e.g. a kernel input standing for a user-graph value).
 */
export function computeBounds(
  nodes: readonly Tensor[],
  seed?: (node: Tensor) => number | undefined,
): Map<Tensor, number | undefined> {
  const bounds = new Map<Tensor, number | undefined>();
  const visit = (node: Tensor): number | undefined => {
    if (bounds.has(node)) return bounds.get(node);
    for (const input of node.inputs) visit(input);
    const seeded = seed?.(node);
    const bound = seeded ?? boundOf(node, (input) => bounds.get(input));
    bounds.set(node, bound);
    return bound;
  };
  const ordered = [...nodes].sort((a, b) => a.id - b.id);
  for (const node of ordered) visit(node);
  return bounds;
}

function boundOf(node: Tensor, of: (input: Tensor) => number | undefined): number | undefined {
  const op = node.op;
  const [a, b] = node.inputs.map(of);
  switch (op.kind) {
    case 'input':
      return op.maxAbs;
    case 'param':
      return op.maxAbs ?? (op.data !== undefined ? constantMaxAbs(op.data) : undefined);
    case 'constant': {
      const max = constantMaxAbs(op.data);
      return op.quantized === undefined ? max : op.quantized.scale * (max + Math.abs(op.quantized.zeroPoint));
    }
    case 'unary':
      switch (op.fn) {
        case 'exp':
          return a === undefined ? undefined : Math.exp(a);
        case 'sqrt':
          return a === undefined ? undefined : Math.sqrt(a);
        case 'sigmoid':
        case 'tanh':
          return 1;
        case 'relu':
          return a;
      }
      break;
    case 'binary':
      switch (op.fn) {
        case 'add':
        case 'sub':
          return plus(a, b);
        case 'mul':
          return times(a, b);
        case 'div': {
          const divisor = minAbs(node.inputs[1]!);
          return a === undefined || divisor === undefined || divisor === 0 ? undefined : a / divisor;
        }
        case 'pow': {
          const exponent = scalarValue(node.inputs[1]!);
          return a === undefined || exponent === undefined || exponent < 0 ? undefined : a ** exponent;
        }
        case 'maximum':
        case 'minimum':
          return a === undefined || b === undefined ? undefined : Math.max(a, b);
      }
      break;
    case 'compare':
      return 1;
    case 'select': {
      // cond ? a : b is at most the larger of the two bounds.
      const [, x, y] = node.inputs.map(of);
      return x === undefined || y === undefined ? undefined : Math.max(x, y);
    }
    case 'reduce': {
      if (op.fn === 'max') return a;
      const count = op.axes.reduce((n, axis) => n * node.inputs[0]!.shape[axis]!, 1);
      return times(a, count);
    }
    case 'reshape':
    case 'transpose':
    case 'slice':
      return a;
    case 'concat': {
      const all = node.inputs.map(of);
      return all.some((x) => x === undefined) ? undefined : Math.max(...(all as number[]));
    }
    case 'matmul': {
      const x = node.inputs[0]!;
      const k = op.transposeX ? x.shape[x.rank - 2]! : x.shape[x.rank - 1]!;
      return times(times(a, b), k);
    }
    case 'conv': {
      const w = node.inputs[1]!;
      return times(times(a, b), w.shape[1]! * w.shape[2]! * w.shape[3]!);
    }
    case 'softmax':
      return 1;
    case 'cast':
      if (op.scale !== undefined) return op.dtype === 'int8' ? 128 : 128 * op.scale;
      return a;
    case 'gather':
      return a;
  }
  return undefined;
}

/** Whether `node` is a sum of squares: reduce_sum(mul(a, a)) or reduce_sum(pow(a, 2)). Returns `a`. */
export function sumOfSquaresOperand(node: Tensor): Tensor | undefined {
  if (node.op.kind !== 'reduce' || node.op.fn !== 'sum') return undefined;
  const input = node.inputs[0]!;
  if (input.op.kind !== 'binary') return undefined;
  if (input.op.fn === 'mul' && input.inputs[0] === input.inputs[1]) return input.inputs[0];
  if (input.op.fn === 'pow' && scalarValue(input.inputs[1]!) === 2) return input.inputs[0];
  return undefined;
}
