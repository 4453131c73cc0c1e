/**
 * A flat arena, as in llm.c: every parameter of a model lives in one Float32Array, every gradient in
 * a second one, and each optimizer state buffer (Adam's m and v, SGD's momentum) in one more, all
 * laid out the same way. A tensor is a named view: `arena.view('layers.0.wq')`. One allocation per
 * buffer keeps the optimizer step a few long passes over memory, and a checkpoint one write.
 *
 * Layout: tensors in the order given, back to back, no padding.
 *   params, grads, and every field: [size] fp32; tensor t occupies [t.offset, t.offset + t.length).
 */
import { describeValue, OptimizerConfigError, OptimizerInputError } from './errors';
import { checkOptionKeys } from './options';
import { flattenTree, type ParamTree } from './tree';

export interface ArenaTensor {
  readonly name: string;
  readonly shape: readonly number[];
  /** First element of the tensor in every field. */
  readonly offset: number;
  /** Number of elements (the product of the shape). */
  readonly length: number;
}

/** Tensor names and shapes in arena order: `[['wte', [32000, 768]], ['norm', [768]]]` or a record. */
export type ArenaLayout =
  | Iterable<readonly [string, readonly number[] | number]>
  | Readonly<Record<string, readonly number[] | number>>;

export interface FlatArenaOptions {
  /**
   * Back every field with a SharedArrayBuffer so worker threads can read and write the same memory
   * (default false).
   */
  shared?: boolean;
}

/** The two fields every arena has; optimizers add theirs ('m', 'v', 'momentum') on first use. */
export type ArenaField = 'params' | 'grads' | (string & {});

function layoutEntries(layout: ArenaLayout): Array<readonly [string, readonly number[] | number]> {
  if (Symbol.iterator in layout)
    return [...(layout as Iterable<readonly [string, readonly number[] | number]>)];
  return Object.entries(layout as Record<string, readonly number[] | number>);
}

export class FlatArena {
  readonly tensors: readonly ArenaTensor[];
  /** Total number of fp32 elements per field. */
  readonly size: number;
  readonly shared: boolean;
  private readonly byName = new Map<string, ArenaTensor>();
  private readonly fields = new Map<string, Float32Array>();

  constructor(layout: ArenaLayout, options: FlatArenaOptions = {}) {
    checkOptionKeys('FlatArena', options, ['shared']);
    const tensors: ArenaTensor[] = [];
    let offset = 0;
    for (const [name, shapeInput] of layoutEntries(layout)) {
      const shape = typeof shapeInput === 'number' ? [shapeInput] : [...shapeInput];
      if (typeof name !== 'string' || name.length === 0) {
        throw new OptimizerConfigError(
          `FlatArena: tensor #${tensors.length} has name ${describeValue(name)}; give every tensor a non-empty name`,
          'layout',
        );
      }
      if (!shape.every((d) => Number.isInteger(d) && d >= 0)) {
        throw new OptimizerConfigError(
          `FlatArena: tensor '${name}' has shape [${shape.join(', ')}]; dimensions must be non-negative integers`,
          `layout.${name}`,
        );
      }
      if (this.byName.has(name)) {
        throw new OptimizerConfigError(
          `FlatArena: tensor '${name}' appears twice in the layout`,
          `layout.${name}`,
        );
      }
      const length = shape.reduce((a, b) => a * b, 1);
      const tensor: ArenaTensor = Object.freeze({ name, shape: Object.freeze(shape), offset, length });
      tensors.push(tensor);
      this.byName.set(name, tensor);
      offset += length;
    }
    this.tensors = Object.freeze(tensors);
    this.size = offset;
    this.shared = options.shared ?? false;
    this.field('params');
    this.field('grads');
  }

  /**
   * An arena holding the leaves of `tree` (in tree order, named by path, each shaped [length]),
   * with the tree's values copied into `params`.
   */
  static fromTree(tree: ParamTree, options: FlatArenaOptions = {}): FlatArena {
    const leaves = flattenTree(tree, 'FlatArena.fromTree');
    const arena = new FlatArena(
      leaves.map(([path, leaf]) => [path === '' ? 'param' : path, [leaf.length]] as const),
      options,
    );
    leaves.forEach(([, leaf], index) => {
      arena.params.set(leaf, (arena.tensors[index] as ArenaTensor).offset);
    });
    return arena;
  }

  /** All parameters: [size]. */
  get params(): Float32Array {
    return this.fields.get('params') as Float32Array;
  }

  /** All gradients: [size]. */
  get grads(): Float32Array {
    return this.fields.get('grads') as Float32Array;
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  /** The layout entry of tensor `name` (OptimizerInputError naming close names when unknown). */
  tensor(name: string): ArenaTensor {
    const tensor = this.byName.get(name);
    if (tensor === undefined) {
      const close = this.tensors
        .map((t) => t.name)
        .filter((n) => n.includes(name) || name.includes(n))
        .slice(0, 5);
      throw new OptimizerInputError(
        `FlatArena: no tensor named '${name}'${close.length > 0 ? `; did you mean ${close.map((n) => `'${n}'`).join(', ')}?` : ` (the arena has ${this.tensors.length} tensors, e.g. '${this.tensors[0]?.name ?? ''}')`}`,
        name,
      );
    }
    return tensor;
  }

  /** Tensor `name` as a view of `field` (default: the parameters); writes go to the arena. */
  view(name: string, field: ArenaField = 'params'): Float32Array {
    const tensor = this.tensor(name);
    return this.fieldIfPresent(field).subarray(tensor.offset, tensor.offset + tensor.length);
  }

  hasField(field: ArenaField): boolean {
    return this.fields.has(field);
  }

  /** Names of the fields allocated so far ('params', 'grads', then state fields in order of creation). */
  fieldNames(): string[] {
    return [...this.fields.keys()];
  }

  /** The whole buffer of `field`, [size]; a field other than params and grads is created zeroed. */
  field(field: ArenaField): Float32Array {
    let buffer = this.fields.get(field);
    if (buffer === undefined) {
      buffer = this.shared
        ? new Float32Array(new SharedArrayBuffer(this.size * 4))
        : new Float32Array(this.size);
      this.fields.set(field, buffer);
    }
    return buffer;
  }

  private fieldIfPresent(field: ArenaField): Float32Array {
    const buffer = this.fields.get(field);
    if (buffer === undefined) {
      throw new OptimizerInputError(
        `FlatArena: field '${field}' does not exist yet (fields: ${this.fieldNames().join(', ')}); optimizer state fields appear after the first step or loadState`,
      );
    }
    return buffer;
  }

  /** Sets every gradient to zero. */
  zeroGrads(): void {
    this.grads.fill(0);
  }

  /** The parameters as a flat record of views, `{ name: Float32Array }`, usable wherever a ParamTree is. */
  paramsTree(): Record<string, Float32Array> {
    return this.fieldTree('params');
  }

  /** The gradients as a flat record of views. */
  gradsTree(): Record<string, Float32Array> {
    return this.fieldTree('grads');
  }

  fieldTree(field: ArenaField): Record<string, Float32Array> {
    const buffer = this.fieldIfPresent(field);
    const tree: Record<string, Float32Array> = {};
    for (const t of this.tensors) tree[t.name] = buffer.subarray(t.offset, t.offset + t.length);
    return tree;
  }
}
