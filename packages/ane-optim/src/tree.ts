/**
 * Parameter trees, as in MLX: nested objects and arrays whose leaves are fp32 tensors. A leaf is
 * named by its path, the keys joined with '.', e.g. `layers.0.attention.wq`; a flat record keyed by
 * such names (`{ 'layers.0.wq': w }`, as a safetensors file gives them) names its leaves the same way.
 */
import { describeValue, OptimizerInputError } from './errors';

export type ParamTree = Float32Array | readonly ParamTree[] | { readonly [key: string]: ParamTree };

/** How a root that is itself a tensor is named in paths and messages. */
export const ROOT_PATH = '';

export function describePath(path: string): string {
  return path === ROOT_PATH ? 'the root tensor' : `'${path}'`;
}

function joinPath(prefix: string, key: string): string {
  return prefix === ROOT_PATH ? key : `${prefix}.${key}`;
}

/**
 * The leaves of `tree` as `[path, tensor]`, in key order (arrays by index). Throws
 * OptimizerInputError on a leaf that is not a Float32Array and on two leaves with the same path.
 */
export function flattenTree(tree: ParamTree, what = 'tree'): Array<[string, Float32Array]> {
  const leaves: Array<[string, Float32Array]> = [];
  const seen = new Set<string>();
  const visit = (node: unknown, path: string): void => {
    if (node instanceof Float32Array) {
      if (seen.has(path)) {
        throw new OptimizerInputError(
          `${what}: two tensors are named ${describePath(path)} (a nested key and a dotted key collide); rename one`,
          path,
        );
      }
      seen.add(path);
      leaves.push([path, node]);
      return;
    }
    if (Array.isArray(node)) {
      node.forEach((child, index) => {
        visit(child, joinPath(path, String(index)));
      });
      return;
    }
    if (typeof node === 'object' && node !== null && !ArrayBuffer.isView(node)) {
      for (const [key, child] of Object.entries(node)) visit(child, joinPath(path, key));
      return;
    }
    throw new OptimizerInputError(
      `${what}: ${describePath(path)} is ${describeValue(node)}, expected a Float32Array (fp32 weights) or an object or array of them`,
      path,
    );
  };
  visit(tree, ROOT_PATH);
  return leaves;
}

/** Total number of elements in the leaves of `tree`. */
export function treeSize(tree: ParamTree): number {
  let size = 0;
  for (const [, leaf] of flattenTree(tree)) size += leaf.length;
  return size;
}

/** A tree of the same structure filled with zeros, every leaf a view of one Float32Array (one allocation). */
export function zerosLike<T extends ParamTree>(tree: T): T {
  const flat = new Float32Array(treeSize(tree));
  let offset = 0;
  const build = (node: ParamTree): ParamTree => {
    if (node instanceof Float32Array) {
      const view = flat.subarray(offset, offset + node.length);
      offset += node.length;
      return view;
    }
    if (Array.isArray(node)) return node.map(build);
    const out: Record<string, ParamTree> = {};
    for (const [key, child] of Object.entries(node as Record<string, ParamTree>)) out[key] = build(child);
    return out;
  };
  return build(tree) as T;
}

/**
 * The one view that spans `leaves` when they lie back to back, in order, in one buffer (a
 * FlatArena's gradsTree(), a zerosLike tree); null otherwise (separate arrays, gaps, overlaps or
 * another order). An element-wise pass over the leaves can then run as one kernel call over the
 * span, with the same result bits, instead of one call per leaf.
 */
export function contiguousSpan(leaves: ReadonlyArray<readonly [string, Float32Array]>): Float32Array | null {
  const first = leaves[0]?.[1];
  if (first === undefined) return null;
  let end = first.byteOffset + first.byteLength;
  for (let i = 1; i < leaves.length; i++) {
    const leaf = (leaves[i] as readonly [string, Float32Array])[1];
    if (leaf.buffer !== first.buffer || leaf.byteOffset !== end) return null;
    end += leaf.byteLength;
  }
  if (leaves.length === 1) return first;
  return new Float32Array(first.buffer, first.byteOffset, (end - first.byteOffset) / 4);
}
