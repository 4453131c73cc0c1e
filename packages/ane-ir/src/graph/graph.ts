/**
 * The graph builder: sources (`input`, `param`, `constant`), named outputs, scopes for names and the
 * composite tags the partitioner groups by. Ops are free functions in `ops/primitives.ts` (and
 * composites in `composites.ts`); each infers its result's shape and dtype when it is created and
 * throws `ShapeError` naming the op and the operand shapes when they do not fit.
 *
 * Activations are channels-first, as on the device and the host: a sequence of S vectors of C
 * features is `[C, S]`; a linear layer's weight is `[out, in]` (PyTorch's convention) and computes
 * `matmul(W, x)`.
 */
import { inferNode } from '../ops/infer';
import { type ConstantData, type TensorValues, toConstantData } from './data';
import { type DType, isDType, shapeSize } from './dtype';
import { IrError } from './errors';
import { type CompositeTag, type NodeMeta, type Op, opLabel, Tensor } from './tensor';

export interface InputOptions {
  /** Default 'fp16'. */
  dtype?: DType;
  /** A bound on |x| the caller promises; enables the fp16 range checks (e.g. RMSNorm on the ANE). */
  maxAbs?: number;
}

export interface ParamOptions {
  /**
   * Default true: the weight travels as kernel input data, so updates never recompile. False bakes
   * it into programs as a constant (a frozen weight).
   */
  trainable?: boolean;
  /** Default 'fp16'. */
  dtype?: DType;
  /** Values of a frozen weight (row-major over the shape). Omitted: zeros (a shapes-only plan). */
  data?: TensorValues;
  /** A bound on |w| the caller promises (for the fp16 range checks). */
  maxAbs?: number;
  /** Weight-blob file name for a frozen weight (`ffn.bin`); weights naming the same file share it. */
  blobFile?: string;
}

export interface ConstantOptions {
  name?: string;
  /** Default 'fp16'. */
  dtype?: DType;
  /** Weight-blob file name when the constant becomes a blob; constants naming the same file share it. */
  blobFile?: string;
}

/** Options every op accepts. */
export interface OpOptions {
  /** Name hint; scoped and made unique (`scores`, then `scores_1`). */
  name?: string;
}

/** What `Graph.add` needs beyond the op and inputs (lowering passes use `meta`). */
export interface AddOptions extends OpOptions {
  meta?: NodeMeta;
  /** Composite tags to record instead of the graph's current ones (lowering passes keep the originals). */
  composites?: readonly CompositeTag[];
}

export interface GraphOutput {
  readonly name: string;
  readonly tensor: Tensor;
}

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/;

export class Graph {
  readonly nodes: Tensor[] = [];
  readonly outputs: GraphOutput[] = [];
  private readonly names = new Set<string>();
  private readonly prefixes: string[] = [];
  private readonly composites: CompositeTag[] = [];
  private nextCompositeId = 0;

  /** A value supplied at run time, e.g. token ids or activations `[C, S]`. */
  input(name: string, shape: readonly number[], options: InputOptions = {}): Tensor {
    const op: Op =
      options.maxAbs === undefined ? { kind: 'input' } : { kind: 'input', maxAbs: options.maxAbs };
    return this.source(op, name, shape, options.dtype ?? 'fp16');
  }

  /** A weight: trainable (default) or frozen. */
  param(name: string, shape: readonly number[], options: ParamOptions = {}): Tensor {
    const dtype = options.dtype ?? 'fp16';
    const trainable = options.trainable ?? true;
    let data: ConstantData | undefined;
    if (options.data !== undefined) {
      data = toConstantData(options.data, dtype, shapeSize(shape), `param '${name}'`);
    }
    const op: Op = {
      kind: 'param',
      trainable,
      ...(data !== undefined ? { data } : {}),
      ...(options.maxAbs !== undefined ? { maxAbs: options.maxAbs } : {}),
      ...(options.blobFile !== undefined ? { blobFile: options.blobFile } : {}),
    };
    return this.source(op, name, shape, dtype);
  }

  /** A constant tensor (masks, RoPE tables, fixed weights). */
  constant(values: TensorValues, shape: readonly number[], options: ConstantOptions = {}): Tensor {
    const dtype = options.dtype ?? 'fp16';
    const name = options.name ?? 'const';
    const data = toConstantData(values, dtype, shapeSize(shape), `constant '${name}'`);
    return this.constantFromData(data, shape, options);
  }

  /** A constant from stored data (no copy). */
  constantFromData(data: ConstantData, shape: readonly number[], options: ConstantOptions = {}): Tensor {
    checkShape(shape, `constant '${options.name ?? 'const'}'`);
    const op: Op = {
      kind: 'constant',
      data,
      ...(options.blobFile !== undefined ? { blobFile: options.blobFile } : {}),
    };
    return this.add(op, [], { name: options.name ?? 'const' }, { shape, dtype: options.dtype ?? data.dtype });
  }

  /** A rank-0 constant. */
  scalar(value: number, dtype: DType = 'fp16', options: OpOptions = {}): Tensor {
    return this.constant([value], [], { dtype, name: options.name ?? 'scalar' });
  }

  /** Marks `tensor` as a named result of the graph. */
  output(name: string, tensor: Tensor): Tensor {
    this.own(tensor, `output '${name}'`);
    if (this.outputs.some((o) => o.name === name)) throw new IrError(`output '${name}' is declared twice`);
    this.outputs.push({ name, tensor });
    return tensor;
  }

  /** Runs `build` with `name.` prefixed to the names of the nodes it creates. */
  scope<T>(name: string, build: () => T): T {
    this.prefixes.push(name);
    try {
      return build();
    } finally {
      this.prefixes.pop();
    }
  }

  /**
   * Runs `build` as one call of a composite: nodes it creates are named under `name` and tagged with
   * the composite, so the partitioner can place the call as a unit (e.g. an RMSNorm on the host).
   * `args` (operands and attributes) and the returned tensor are recorded on the tag, so a host
   * kernel registered for the kind can run the call without reading its nodes.
   */
  composite<T>(kind: string, name: string, build: () => T, args?: CompositeTag['args']): T {
    const tag: { -readonly [K in keyof CompositeTag]: CompositeTag[K] } = {
      kind,
      id: this.nextCompositeId++,
      name: this.scopedName(name),
      ...(args !== undefined ? { args: Object.freeze({ ...args }) } : {}),
    };
    this.composites.push(tag);
    try {
      const result = this.scope(name, build);
      if (result instanceof Tensor) tag.result = result;
      return result;
    } finally {
      this.composites.pop();
    }
  }

  /** Runs `build` outside every scope and composite (for nodes shared by all callers). */
  unscoped<T>(build: () => T): T {
    const prefixes = this.prefixes.splice(0);
    const composites = this.composites.splice(0);
    try {
      return build();
    } finally {
      this.prefixes.push(...prefixes);
      this.composites.push(...composites);
    }
  }

  /** Node by name. */
  node(name: string): Tensor {
    const found = this.nodes.find((n) => n.name === name);
    if (found === undefined) throw new IrError(`graph has no node named '${name}'`);
    return found;
  }

  /**
   * Adds a node. `inferred` skips shape inference (sources, and passes that know the result); without
   * it the op's shape rule runs and throws `ShapeError` when the operands do not fit.
   */
  add(
    op: Op,
    inputs: readonly Tensor[],
    options: AddOptions = {},
    inferred?: { shape: readonly number[]; dtype: DType },
  ): Tensor {
    for (const input of inputs) this.own(input, `an input of ${op.kind}`);
    const hint = options.name ?? defaultHint(op);
    const name = this.uniqueName(this.scopedName(hint));
    const result = inferred ?? inferNode(op, inputs, name);
    const tensor = new Tensor(
      this,
      this.nodes.length,
      op,
      inputs,
      Object.freeze([...result.shape]),
      result.dtype,
      name,
      options.composites ?? (this.composites.length === 0 ? EMPTY_TAGS : Object.freeze([...this.composites])),
      options.meta ?? EMPTY_META,
    );
    this.nodes.push(tensor);
    return tensor;
  }

  /** Records an externally chosen name (lowering keeps user names); throws when taken. */
  private source(op: Op, name: string, shape: readonly number[], dtype: DType): Tensor {
    if (!isDType(dtype)) throw new IrError(`${op.kind} '${name}': unknown dtype '${String(dtype)}'`);
    checkShape(shape, `${op.kind} '${name}'`);
    const scoped = this.scopedName(name);
    if (this.names.has(scoped)) throw new IrError(`${op.kind} '${scoped}': the name is already used`);
    return this.add(op, [], { name }, { shape, dtype });
  }

  private own(tensor: Tensor, what: string): void {
    if (tensor.graph !== this) {
      throw new IrError(`${what}: tensor '${tensor.name}' belongs to another graph`);
    }
  }

  private scopedName(hint: string): string {
    return this.prefixes.length === 0 ? hint : `${this.prefixes.join('.')}.${hint}`;
  }

  private uniqueName(base: string): string {
    let name = base;
    for (let n = 1; this.names.has(name); n++) name = `${base}_${n}`;
    this.names.add(name);
    return name;
  }
}

const EMPTY_TAGS: readonly CompositeTag[] = Object.freeze([]);
const EMPTY_META: NodeMeta = Object.freeze({});

/** A node's default name: the op's label (`add`, `reduce_sum`), but `cast` for every cast. */
function defaultHint(op: Op): string {
  return op.kind === 'cast' ? 'cast' : opLabel(op);
}

function checkShape(shape: readonly number[], what: string): void {
  if (!Array.isArray(shape) || shape.some((d) => !Number.isInteger(d) || d < 1)) {
    throw new IrError(`${what}: shape must be a list of positive integers, got [${String(shape)}]`);
  }
}

/** Whether a name is a valid MIL identifier as written. */
export function isIdentifier(name: string): boolean {
  return IDENTIFIER.test(name);
}
