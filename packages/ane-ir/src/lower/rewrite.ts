/**
 * The pattern-rewrite engine of the lowering passes. A rule looks at one node about to be rebuilt
 * (its op, its already-rewritten inputs, its shape) and returns a replacement built from those
 * inputs, or null. A pass rebuilds the whole kernel graph in topological order, offering every node
 * to the rules, and repeats until no rule fires. Rules must preserve each node's shape and dtype.
 */
import type { DType } from '../graph/dtype';
import { IrError } from '../graph/errors';
import { Graph } from '../graph/graph';
import type { CompositeTag, NodeMeta, Op, Tensor } from '../graph/tensor';

/** A node being rebuilt: not yet in the target graph. */
export interface PendingNode {
  readonly op: Op;
  /** Already rewritten, in the target graph. */
  readonly inputs: readonly Tensor[];
  readonly shape: readonly number[];
  readonly dtype: DType;
  /** The original node's full name. */
  readonly name: string;
  readonly meta: NodeMeta;
  readonly composites: readonly CompositeTag[];
  /** The original node (in the previous graph). */
  readonly original: Tensor;
}

export interface RewriteContext {
  /** The graph being built. */
  readonly graph: Graph;
  /**
   * Adds a node to the target graph on behalf of `pending`: it inherits the composite tags and
   * origin, is named after `pending` (with `suffix`), and carries `label` as its MIL name.
   */
  emit(
    pending: PendingNode,
    op: Op,
    inputs: readonly Tensor[],
    options?: {
      suffix?: string;
      label?: string;
      meta?: NodeMeta;
      inferred?: { shape: readonly number[]; dtype: DType };
    },
  ): Tensor;
}

export interface RewriteRule {
  /** Kebab-case, e.g. `linear-to-conv`. */
  readonly name: string;
  readonly apply: (node: PendingNode, context: RewriteContext) => Tensor | null;
}

/** A graph being lowered: its nodes (in `graph`) and the values it returns. */
export interface KernelGraph {
  readonly graph: Graph;
  readonly outputs: readonly Tensor[];
}

/** How many times each rule fired, for tests and reports. */
export type RewriteStats = Map<string, number>;

const MAX_PASSES = 32;

/** Rebuilds `kernel` applying `rules` until none fires; returns the new graph (dead nodes dropped). */
export function rewriteGraph(
  kernel: KernelGraph,
  rules: readonly RewriteRule[],
  stats?: RewriteStats,
): KernelGraph {
  let current = kernel;
  for (let pass = 0; pass < MAX_PASSES; pass++) {
    const { result, fired } = rewriteOnce(current, rules, stats);
    current = result;
    if (!fired) return current;
  }
  throw new IrError(`lowering rewrites did not settle after ${MAX_PASSES} passes (a rule keeps firing)`);
}

/** Nodes reachable from `outputs`, in id (topological) order. */
export function liveNodes(outputs: readonly Tensor[]): Tensor[] {
  const seen = new Set<Tensor>();
  const stack = [...outputs];
  while (stack.length > 0) {
    const node = stack.pop()!;
    if (seen.has(node)) continue;
    seen.add(node);
    for (const input of node.inputs) stack.push(input);
  }
  return [...seen].sort((a, b) => a.id - b.id);
}

function rewriteOnce(
  kernel: KernelGraph,
  rules: readonly RewriteRule[],
  stats: RewriteStats | undefined,
): { result: KernelGraph; fired: boolean } {
  const target = new Graph();
  const mapped = new Map<Tensor, Tensor>();
  let fired = false;
  // Common subexpressions: an op applied to the same inputs twice is built once.
  const structural = new Map<string, Tensor>();
  const shared = (op: Op, inputs: readonly Tensor[], build: () => Tensor): Tensor => {
    if (op.kind === 'input' || op.kind === 'param' || op.kind === 'constant') return build();
    const key = `${JSON.stringify(op)}|${inputs.map((i) => i.id).join(',')}`;
    const existing = structural.get(key);
    if (existing !== undefined) return existing;
    const node = build();
    structural.set(key, node);
    return node;
  };
  const context: RewriteContext = {
    graph: target,
    emit(pending, op, inputs, options = {}) {
      const meta: NodeMeta = {
        ...(pending.meta.origin !== undefined ? { origin: pending.meta.origin } : { origin: pending.name }),
        ...(options.meta ?? {}),
        ...(options.label !== undefined ? { label: options.label } : {}),
      };
      const name = options.suffix === undefined ? pending.name : `${pending.name}_${options.suffix}`;
      return shared(op, inputs, () =>
        target.add(op, inputs, { name, meta, composites: pending.composites }, options.inferred),
      );
    },
  };
  for (const node of liveNodes(kernel.outputs)) {
    const pending: PendingNode = {
      op: node.op,
      inputs: node.inputs.map((input) => mapped.get(input)!),
      shape: node.shape,
      dtype: node.dtype,
      name: node.name,
      meta: node.meta,
      composites: node.composites,
      original: node,
    };
    let replacement: Tensor | null = null;
    for (const rule of rules) {
      replacement = rule.apply(pending, context);
      if (replacement !== null) {
        if (replacement.dtype !== node.dtype || replacement.shape.join() !== node.shape.join()) {
          throw new IrError(
            `rewrite '${rule.name}' changed ${node} into ${replacement.dtype}[${replacement.shape.join(', ')}]`,
          );
        }
        stats?.set(rule.name, (stats.get(rule.name) ?? 0) + 1);
        fired = true;
        break;
      }
    }
    mapped.set(node, replacement ?? shared(pending.op, pending.inputs, () => clone(target, pending)));
  }
  return { result: { graph: target, outputs: kernel.outputs.map((output) => mapped.get(output)!) }, fired };
}

/** The pending node added unchanged to the target graph. */
function clone(target: Graph, pending: PendingNode): Tensor {
  const meta: NodeMeta =
    pending.meta.label === undefined ? { ...pending.meta, label: pending.original.label } : pending.meta;
  return target.add(
    pending.op,
    pending.inputs,
    { name: pending.name, meta, composites: pending.composites },
    { shape: pending.shape, dtype: pending.dtype },
  );
}
