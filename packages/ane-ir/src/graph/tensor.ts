/**
 * Graph nodes. A `Tensor` is both a value and the node that computes it: its `op` (one of the closed
 * set below), its input tensors, its static shape and dtype, and a unique name in its graph.
 *
 * The primitive set (tinygrad-style, closed): sources (`input`, `param`, `constant`), and
 *   unary      exp sqrt sigmoid tanh relu log              (log(x + epsilon), epsilon explicit)
 *   binary     add sub mul div pow maximum minimum        (NumPy broadcasting)
 *   compare    greater less equal -> bool                 (NumPy broadcasting)
 *   select     cond ? a : b                               (cond bool; NumPy broadcasting)
 *   reduce     sum max over axes                           (keepDims or not)
 *   movement   reshape transpose slice concat
 *   matmul     batched, with transpose flags;  conv        (2-D, constant weight on the ANE)
 *   softmax    over one axis
 *   cast       between dtypes; with a scale, fp16 <-> int8 is quantize / dequantize
 *   gather     rows of a table by index (host only: the ANE has no gather)
 * Everything else (linear, RMSNorm, attention, ...) is a composite in `composites.ts`.
 */
import type { ConstantData } from './data';
import type { DType } from './dtype';
import type { Graph } from './graph';

export const UNARY_FNS = ['exp', 'sqrt', 'sigmoid', 'tanh', 'relu', 'log'] as const;
export type UnaryFn = (typeof UNARY_FNS)[number];

export const BINARY_FNS = ['add', 'sub', 'mul', 'div', 'pow', 'maximum', 'minimum'] as const;
export type BinaryFn = (typeof BINARY_FNS)[number];

/** Comparisons: bool results, the condition of `select`. */
export const COMPARE_FNS = ['greater', 'less', 'equal'] as const;
export type CompareFn = (typeof COMPARE_FNS)[number];

export const REDUCE_FNS = ['sum', 'max'] as const;
export type ReduceFn = (typeof REDUCE_FNS)[number];

/** An fp16 value stored as int8: `scale * (q - zeroPoint)`. */
export interface Quantization {
  readonly scale: number;
  readonly zeroPoint: number;
}

export type Op =
  /** A value supplied at run time. `maxAbs`, when declared, bounds |x| (used by the fp16 range checks). */
  | { readonly kind: 'input'; readonly maxAbs?: number }
  /**
   * A weight. Trainable weights travel as kernel input data (never baked into a program); frozen
   * ones are baked as BLOBFILE constants (zeros when no data was given: a shapes-only plan).
   */
  | {
      readonly kind: 'param';
      readonly trainable: boolean;
      readonly data?: ConstantData;
      readonly maxAbs?: number;
      readonly blobFile?: string;
    }
  /** A constant tensor; with `quantized`, int8 data standing for fp16 values. */
  | {
      readonly kind: 'constant';
      readonly data: ConstantData;
      readonly blobFile?: string;
      readonly quantized?: Quantization;
    }
  | { readonly kind: 'unary'; readonly fn: Exclude<UnaryFn, 'log'> }
  /** `log(x + epsilon)`: MIL's `log` always spells its epsilon (0 is the exact logarithm). */
  | { readonly kind: 'unary'; readonly fn: 'log'; readonly epsilon: number }
  | { readonly kind: 'binary'; readonly fn: BinaryFn }
  /** `x > y`, `x < y`, `x == y` as bool, operands of one dtype, NumPy broadcasting. */
  | { readonly kind: 'compare'; readonly fn: CompareFn }
  /**
   * `cond ? a : b` elementwise; inputs `[cond (bool), a, b]`, NumPy broadcasting. On the ANE a bool
   * exists only between a comparison and the `select`s that read it (rule `dtype-bool`).
   */
  | { readonly kind: 'select' }
  | {
      readonly kind: 'reduce';
      readonly fn: ReduceFn;
      /** Non-negative, ascending. */
      readonly axes: readonly number[];
      readonly keepDims: boolean;
    }
  | { readonly kind: 'reshape'; readonly shape: readonly number[] }
  | { readonly kind: 'transpose'; readonly perm: readonly number[] }
  | { readonly kind: 'slice'; readonly begin: readonly number[]; readonly size: readonly number[] }
  | { readonly kind: 'concat'; readonly axis: number }
  | { readonly kind: 'matmul'; readonly transposeX: boolean; readonly transposeY: boolean }
  | {
      readonly kind: 'conv';
      readonly strides: readonly [number, number];
      /** [top, bottom, left, right] */
      readonly pad: readonly [number, number, number, number];
      readonly dilations: readonly [number, number];
      readonly groups: number;
    }
  | { readonly kind: 'softmax'; readonly axis: number }
  | { readonly kind: 'cast'; readonly dtype: DType; readonly scale?: number }
  | { readonly kind: 'gather'; readonly axis: number };

export type OpKind = Op['kind'];

/** Ops that produce values without inputs. */
export const SOURCE_KINDS: readonly OpKind[] = ['input', 'param', 'constant'];

/** A composite instance the node was built by (`rmsnorm`, `attention`, ...), outermost first. */
export interface CompositeTag {
  /** The composite's kind, e.g. `rmsnorm`. */
  readonly kind: string;
  /** Unique per graph: nodes with the same id belong to the same call. */
  readonly id: number;
  /** The name prefix of the call, e.g. `layers.0.attn_norm`. */
  readonly name: string;
  /**
   * What the call was given (operands and attributes, e.g. rmsnorm's `{ x, gain, eps }`): how a
   * host kernel registered for the kind finds its arguments without pattern-matching the nodes.
   */
  readonly args?: Readonly<Record<string, Tensor | number | string | boolean>>;
  /** The call's result, when it returned one tensor (set once the call has built its nodes). */
  readonly result?: Tensor;
}

/** Lowering bookkeeping; never changes what a node computes. */
export interface NodeMeta {
  /** Name of the user-graph node this node stands for or was derived from. */
  readonly origin?: string;
  /** The name the node's value should carry in MIL (set by lowering passes; default `localName`). */
  readonly label?: string;
  /** Set on slices of a packed kernel input: which value the slice unpacks. */
  readonly packed?: { readonly role: 'activation' | 'weight'; readonly source: string };
}

export class Tensor {
  constructor(
    readonly graph: Graph,
    /** Creation order in the graph: inputs always have smaller ids (a topological order). */
    readonly id: number,
    readonly op: Op,
    readonly inputs: readonly Tensor[],
    readonly shape: readonly number[],
    readonly dtype: DType,
    /** Unique in the graph, dotted by scope: `layers.0.attn.q`. */
    readonly name: string,
    readonly composites: readonly CompositeTag[],
    readonly meta: NodeMeta,
  ) {}

  get rank(): number {
    return this.shape.length;
  }

  /** Element count. */
  get size(): number {
    let size = 1;
    for (const dim of this.shape) size *= dim;
    return size;
  }

  /** The last dotted segment of the name: `layers.0.attn.q` -> `q`. */
  get localName(): string {
    const dot = this.name.lastIndexOf('.');
    return dot < 0 ? this.name : this.name.slice(dot + 1);
  }

  /**
   * The name a kernel gives the node's value: the local name, or for a composite's generic result
   * (`attn.q.y`, `attn_norm.out`) the call's name (`q`, `attn_norm`). Never a layer index, so the
   * kernels of different layers print the same text.
   */
  get label(): string {
    if (this.meta.label !== undefined) return this.meta.label;
    const parts = this.name.split('.');
    const last = parts[parts.length - 1]!;
    const parent = parts[parts.length - 2];
    if ((last === 'y' || last === 'out') && parent !== undefined && !/^\d+$/.test(parent)) return parent;
    return last;
  }

  toString(): string {
    return `${this.op.kind} '${this.name}' ${this.dtype}[${this.shape.join(', ')}]`;
  }
}

/** The op's name as messages and reports spell it: `add`, `reduce_sum`, `matmul`. */
export function opLabel(op: Op): string {
  switch (op.kind) {
    case 'unary':
    case 'binary':
    case 'compare':
      return op.fn;
    case 'reduce':
      return `reduce_${op.fn}`;
    case 'cast':
      return op.scale === undefined ? 'cast' : op.dtype === 'int8' ? 'quantize' : 'dequantize';
    default:
      return op.kind;
  }
}

/** A constant or a frozen param: data baked into programs (its data may be absent: zeros). */
export function isConstantLike(tensor: Tensor): boolean {
  return tensor.op.kind === 'constant' || (tensor.op.kind === 'param' && !tensor.op.trainable);
}
