/**
 * The test oracle: a micrograd-sized scalar autograd in float64, and an interpreter that runs an
 * ane-ir graph on it element by element. It shares nothing with the VJP table (no tensor rules, no
 * ane-ir evaluate): each element is a `Value` that knows its parents and the local derivative
 * with respect to each, and `backward` accumulates `parent.grad += local * grad` (so fan-out, and a
 * gather's repeated rows, add up on their own). Slow by design; for graphs of a few hundred
 * elements in tests only.
 */
import { constantNumbers, type Feeds, type Tensor, type TensorValues } from 'ane-ir';
import { roundToFp16 } from 'ane-ir/mil';

/** A scalar in the expression graph. */
export class Value {
  grad = 0;
  constructor(
    readonly data: number,
    readonly parents: readonly Value[] = [],
    /** d(this)/d(parents[i]). */
    readonly locals: readonly number[] = [],
  ) {}

  add(other: Value): Value {
    return new Value(this.data + other.data, [this, other], [1, 1]);
  }
  mul(other: Value): Value {
    return new Value(this.data * other.data, [this, other], [other.data, this.data]);
  }
  div(other: Value): Value {
    const y = this.data / other.data;
    return new Value(y, [this, other], [1 / other.data, -y / other.data]);
  }
  pow(other: Value): Value {
    const y = this.data ** other.data;
    const dBase = other.data * this.data ** (other.data - 1);
    const dExponent = this.data > 0 ? y * Math.log(this.data) : 0;
    return new Value(y, [this, other], [dBase, dExponent]);
  }
  /** The larger operand passes the gradient (ties: the first). */
  max(other: Value): Value {
    return this.data >= other.data ? new Value(this.data, [this], [1]) : new Value(other.data, [other], [1]);
  }
  min(other: Value): Value {
    return this.data <= other.data ? new Value(this.data, [this], [1]) : new Value(other.data, [other], [1]);
  }
  exp(): Value {
    const y = Math.exp(this.data);
    return new Value(y, [this], [y]);
  }
  log(): Value {
    return new Value(Math.log(this.data), [this], [1 / this.data]);
  }
  sqrt(): Value {
    const y = Math.sqrt(this.data);
    return new Value(y, [this], [0.5 / y]);
  }
  sigmoid(): Value {
    const y = 1 / (1 + Math.exp(-this.data));
    return new Value(y, [this], [y * (1 - y)]);
  }
  tanh(): Value {
    const y = Math.tanh(this.data);
    return new Value(y, [this], [1 - y * y]);
  }
  relu(): Value {
    return new Value(Math.max(this.data, 0), [this], [this.data > 0 ? 1 : 0]);
  }
  /** An identity whose value may differ (a rounding cast): the gradient passes straight through. */
  withData(data: number): Value {
    return new Value(data, [this], [1]);
  }

  static sum(terms: readonly Value[]): Value {
    let total = 0;
    for (const term of terms) total += term.data;
    return new Value(
      total,
      terms,
      terms.map(() => 1),
    );
  }

  /** Sets `grad` of this and everything it depends on: d(this)/d(value). */
  backward(): void {
    const order: Value[] = [];
    const seen = new Set<Value>();
    const stack: [Value, boolean][] = [[this, false]];
    while (stack.length > 0) {
      const [value, expanded] = stack.pop()!;
      if (expanded) {
        order.push(value);
        continue;
      }
      if (seen.has(value)) continue;
      seen.add(value);
      stack.push([value, true]);
      for (const parent of value.parents) if (!seen.has(parent)) stack.push([parent, false]);
    }
    for (const value of order) value.grad = 0;
    this.grad = 1;
    for (let i = order.length - 1; i >= 0; i--) {
      const value = order[i]!;
      value.parents.forEach((parent, j) => {
        parent.grad += value.locals[j]! * value.grad;
      });
    }
  }
}

// ---- index arithmetic (row-major) ----

function stridesOf(shape: readonly number[]): number[] {
  const strides = new Array<number>(shape.length);
  let stride = 1;
  for (let axis = shape.length - 1; axis >= 0; axis--) {
    strides[axis] = stride;
    stride *= shape[axis]!;
  }
  return strides;
}

function unravel(flat: number, shape: readonly number[]): number[] {
  const index = new Array<number>(shape.length);
  for (let axis = shape.length - 1; axis >= 0; axis--) {
    index[axis] = flat % shape[axis]!;
    flat = Math.floor(flat / shape[axis]!);
  }
  return index;
}

function ravel(index: readonly number[], shape: readonly number[]): number {
  const strides = stridesOf(shape);
  return index.reduce((flat, i, axis) => flat + i * strides[axis]!, 0);
}

function count(shape: readonly number[]): number {
  return shape.reduce((n, d) => n * d, 1);
}

/** The element of an operand of `shape` that output index `index` reads under broadcasting. */
function broadcastSource(index: readonly number[], shape: readonly number[]): number {
  const offset = index.length - shape.length;
  return ravel(
    shape.map((d, axis) => (d === 1 ? 0 : index[axis + offset]!)),
    shape,
  );
}

function feedFor(feeds: Feeds, node: Tensor): TensorValues | undefined {
  if (feeds instanceof Map) return feeds.get(node) ?? feeds.get(node.name);
  return (feeds as Readonly<Record<string, TensorValues>>)[node.name];
}

// ---- the interpreter ----

/** Runs one node on scalar Values. */
function run(node: Tensor, inputs: readonly Value[][], feeds: Feeds): Value[] {
  const op = node.op;
  const out = (f: (index: number[], flat: number) => Value): Value[] =>
    Array.from({ length: node.size }, (_, flat) => f(unravel(flat, node.shape), flat));
  switch (op.kind) {
    case 'input':
    case 'param': {
      const fed = feedFor(feeds, node);
      const values =
        fed !== undefined
          ? Array.from(fed as ArrayLike<number>)
          : op.kind === 'param' && op.data !== undefined
            ? Array.from(constantNumbers(op.data))
            : undefined;
      if (values === undefined) throw new Error(`reference: no value fed for '${node.name}'`);
      return values.map((v) => new Value(v));
    }
    case 'constant': {
      const values = constantNumbers(op.data);
      const q = op.quantized;
      return Array.from(values, (v) => new Value(q === undefined ? v : q.scale * (v - q.zeroPoint)));
    }
    case 'unary': {
      const x = inputs[0]!;
      if (op.fn === 'log') return x.map((v) => v.add(new Value(op.epsilon)).log());
      return x.map((v) => v[op.fn]());
    }
    case 'compare': {
      // A bool: a leaf (no gradient flows through a comparison).
      const [a, b] = node.inputs as [Tensor, Tensor];
      return out((index) => {
        const x = inputs[0]![broadcastSource(index, a.shape)]!.data;
        const y = inputs[1]![broadcastSource(index, b.shape)]!.data;
        const holds = op.fn === 'greater' ? x > y : op.fn === 'less' ? x < y : x === y;
        return new Value(holds ? 1 : 0);
      });
    }
    case 'select': {
      const [cond, a, b] = node.inputs as [Tensor, Tensor, Tensor];
      return out((index) =>
        inputs[0]![broadcastSource(index, cond.shape)]!.data !== 0
          ? inputs[1]![broadcastSource(index, a.shape)]!
          : inputs[2]![broadcastSource(index, b.shape)]!,
      );
    }
    case 'binary': {
      const [a, b] = node.inputs as [Tensor, Tensor];
      const method = (
        { add: 'add', mul: 'mul', div: 'div', pow: 'pow', maximum: 'max', minimum: 'min' } as const
      )[op.fn as 'add'];
      return out((index) => {
        const x = inputs[0]![broadcastSource(index, a.shape)]!;
        const y = inputs[1]![broadcastSource(index, b.shape)]!;
        if (op.fn === 'sub') return x.add(y.mul(new Value(-1)));
        if (method === undefined) throw new Error(`reference: no binary '${op.fn}'`);
        return x[method](y);
      });
    }
    case 'reduce': {
      const x = node.inputs[0]!;
      const kept = x.shape.map((d, axis) => (op.axes.includes(axis) ? 1 : d));
      const groups: Value[][] = Array.from({ length: count(kept) }, () => []);
      inputs[0]!.forEach((value, flat) => {
        const index = unravel(flat, x.shape);
        groups[
          ravel(
            index.map((i, axis) => (op.axes.includes(axis) ? 0 : i)),
            kept,
          )
        ]!.push(value);
      });
      return groups.map((group) =>
        op.fn === 'sum' ? Value.sum(group) : group.reduce((best, v) => best.max(v)),
      );
    }
    case 'reshape':
      return inputs[0]!;
    case 'transpose': {
      const x = node.inputs[0]!;
      return out((index) => {
        const source = new Array<number>(x.rank);
        op.perm.forEach((axis, i) => {
          source[axis] = index[i]!;
        });
        return inputs[0]![ravel(source, x.shape)]!;
      });
    }
    case 'slice': {
      const x = node.inputs[0]!;
      return out(
        (index) =>
          inputs[0]![
            ravel(
              index.map((i, axis) => i + op.begin[axis]!),
              x.shape,
            )
          ]!,
      );
    }
    case 'concat':
      return out((index) => {
        let position = index[op.axis]!;
        for (let i = 0; i < node.inputs.length; i++) {
          const extent = node.inputs[i]!.shape[op.axis]!;
          if (position < extent) {
            const source = [...index];
            source[op.axis] = position;
            return inputs[i]![ravel(source, node.inputs[i]!.shape)]!;
          }
          position -= extent;
        }
        throw new Error('reference: concat index out of range');
      });
    case 'matmul': {
      const [a, b] = node.inputs as [Tensor, Tensor];
      const k = op.transposeX ? a.shape[a.rank - 2]! : a.shape[a.rank - 1]!;
      return out((index) => {
        const batch = index.slice(0, -2);
        const [i, j] = index.slice(-2) as [number, number];
        const terms: Value[] = [];
        for (let p = 0; p < k; p++) {
          const aIndex = [...batch, ...(op.transposeX ? [p, i] : [i, p])];
          const bIndex = [...batch, ...(op.transposeY ? [j, p] : [p, j])];
          terms.push(
            inputs[0]![broadcastSource(aIndex, a.shape)]!.mul(inputs[1]![broadcastSource(bIndex, b.shape)]!),
          );
        }
        return Value.sum(terms);
      });
    }
    case 'conv': {
      const [x, w] = node.inputs as [Tensor, Tensor];
      const [, , height, width] = x.shape as [number, number, number, number];
      const [outChannels, groupChannels, kh, kw] = w.shape as [number, number, number, number];
      const perGroup = outChannels / op.groups;
      return out(([n, o, y, xo]) => {
        const group = Math.floor(o! / perGroup);
        const terms: Value[] = [];
        for (let c = 0; c < groupChannels; c++)
          for (let i = 0; i < kh; i++)
            for (let j = 0; j < kw; j++) {
              const iy = y! * op.strides[0] - op.pad[0] + i * op.dilations[0];
              const ix = xo! * op.strides[1] - op.pad[2] + j * op.dilations[1];
              if (iy < 0 || iy >= height || ix < 0 || ix >= width) continue;
              const xv = inputs[0]![ravel([n!, group * groupChannels + c, iy, ix], x.shape)]!;
              terms.push(xv.mul(inputs[1]![ravel([o!, c, i, j], w.shape)]!));
            }
        return Value.sum(terms);
      });
    }
    case 'softmax': {
      // exp(x - max) / sum: the max is a constant shift (softmax does not depend on it).
      const x = inputs[0]!;
      return out((index) => {
        const row: Value[] = [];
        for (let e = 0; e < node.shape[op.axis]!; e++) {
          const source = [...index];
          source[op.axis] = e;
          row.push(x[ravel(source, node.shape)]!);
        }
        const shift = new Value(-Math.max(...row.map((v) => v.data)));
        const exps = row.map((v) => v.add(shift).exp());
        return exps[index[op.axis]!]!.div(Value.sum(exps));
      });
    }
    case 'cast': {
      const x = inputs[0]!;
      const integer = op.dtype === 'int32' || op.dtype === 'int8' || op.dtype === 'bool';
      if (integer || op.scale !== undefined) {
        // Piecewise constant: no gradient flows (as in PyTorch).
        return x.map((v) => new Value(op.dtype === 'bool' ? (v.data !== 0 ? 1 : 0) : Math.trunc(v.data)));
      }
      return x.map((v) =>
        op.dtype === 'fp16' ? v.withData(roundToFp16(v.data)) : v.withData(Math.fround(v.data)),
      );
    }
    case 'gather': {
      const [table, indices] = node.inputs as [Tensor, Tensor];
      return out((index) => {
        const before = index.slice(0, op.axis);
        const picked = index.slice(op.axis, op.axis + indices.rank);
        const after = index.slice(op.axis + indices.rank);
        const row = inputs[1]![ravel(picked, indices.shape)]!.data;
        return inputs[0]![ravel([...before, row, ...after], table.shape)]!;
      });
    }
  }
  throw new Error(`reference: no scalar semantics for '${node.op.kind}' (node '${node.name}')`);
}

export interface ReferenceResult {
  /** The sum of the loss's elements. */
  readonly loss: number;
  /** d loss / d source, per `wrt` source, row-major. */
  readonly grads: Float64Array[];
}

/** Runs `loss`'s graph on scalar Values and backpropagates `sum(loss)` to `wrt`. */
export function referenceGradients(loss: Tensor, wrt: readonly Tensor[], feeds: Feeds): ReferenceResult {
  const needed = new Set<Tensor>();
  const stack = [loss, ...wrt];
  while (stack.length > 0) {
    const node = stack.pop()!;
    if (needed.has(node)) continue;
    needed.add(node);
    stack.push(...node.inputs);
  }
  const values = new Map<Tensor, Value[]>();
  for (const node of [...needed].sort((a, b) => a.id - b.id)) {
    values.set(
      node,
      run(
        node,
        node.inputs.map((input) => values.get(input)!),
        feeds,
      ),
    );
  }
  const total = Value.sum(values.get(loss)!);
  total.backward();
  return {
    loss: total.data,
    grads: wrt.map((source) => Float64Array.from(values.get(source)!, (v) => v.grad)),
  };
}
