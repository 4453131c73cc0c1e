/**
 * The reverse sweep: walks the forward graph from the loss back to the sources in reverse creation
 * order (a reverse topological order), applies each node's VJP rule from `rules.ts`, and sums the
 * contributions a value gets from every reader (fan-out), like micrograd's `+=`. Every op it
 * emits is an ordinary ane-ir op in the forward's graph, named under the forward node it
 * differentiates (`layers.0.ffn.gate` -> `layers.0.ffn.gate.grad.da`), so the backward ops of
 * different layers carry the same local names and lower to the same programs.
 */
import { type CompositeTag, type Graph, isFloatDType, type Tensor, WEIGHT_GRAD_SUM_KIND } from 'ane-ir';
import { COMPOSITE_VJP_RULES } from './composite-rules';
import { AutogradError } from './errors';
import { add, reshape } from './folded-ops';
import { filled, vjpRule } from './rules';

/** The composite kind `stopGradient` tags its identity node with. */
export const STOP_GRADIENT = 'stop_gradient';

/**
 * `x` as a value the gradient does not flow through: an identity node (a reshape to the same shape)
 * tagged as a `stop_gradient` composite. Forward values are unchanged; backward treats it as a
 * constant.
 */
export function stopGradient(x: Tensor, options: { name?: string } = {}): Tensor {
  return x.graph.composite(STOP_GRADIENT, options.name ?? 'stop_gradient', () =>
    reshape(x, x.shape, { name: 'out' }),
  );
}

function stopsGradient(node: Tensor): boolean {
  return node.composites.some((tag) => tag.kind === STOP_GRADIENT);
}

export interface GradientsOptions {
  /**
   * The gradient of the result with respect to `loss` (shaped like it): the sweep computes the
   * gradients of `sum(seed * loss)`. Default: ones (a loss-scale value makes it `scale`).
   */
  seed?: Tensor;
  /**
   * Use the composite-level rules (`COMPOSITE_VJP_RULES`: RMSNorm) where a call's inner values are
   * read only inside it. Default true; false differentiates every primitive.
   */
  compositeRules?: boolean;
  /**
   * What the backward does with forward values of rank 3 or more it reads (attention heads
   * `[H, S, HD]`, probabilities `[H, S, S]`): 'recompute' (default) rebuilds them in the backward
   * from the values they derive from, so only `[C, S]` values (q, k, v before their heads are
   * split) cross from forward kernels to backward ones, the only values a packed ANE kernel input
   * carries; 'save' reads the forward's own values.
   */
  highRank?: 'recompute' | 'save';
}

/** What `derive` returns: the gradients and the forward values the backward recomputed. */
export interface Derivation {
  /** In `wrt`'s order. */
  readonly grads: Tensor[];
  /** Forward values of rank 3 or more rebuilt in the backward, with their copies. */
  readonly recomputed: ReadonlyMap<Tensor, Tensor>;
}

/**
 * The gradient of `loss` (summed, when it has several elements) with respect to each of `wrt`,
 * emitted as ane-ir ops in `loss`'s graph and returned in `wrt`'s order. A source the loss does not
 * depend on (or only through `stopGradient` or integer values) gets a gradient of zeros.
 */
export function gradients(loss: Tensor, wrt: readonly Tensor[], options: GradientsOptions = {}): Tensor[] {
  return derive(loss, wrt, options).grads;
}

/** `gradients`, also reporting which forward values the backward recomputed. */
export function derive(loss: Tensor, wrt: readonly Tensor[], options: GradientsOptions = {}): Derivation {
  const graph = loss.graph;
  for (const source of wrt) {
    if (source.graph !== graph) {
      throw new AutogradError(
        `gradients: '${source.name}' belongs to another graph than the loss '${loss.name}'; pass tensors of one graph`,
      );
    }
  }
  if (!isFloatDType(loss.dtype)) {
    throw new AutogradError(
      `gradients: the loss '${loss.name}' is ${loss.dtype}, expected a floating-point value (fp16 or fp32)`,
    );
  }
  const seed = options.seed ?? graph.unscoped(() => filled(graph, loss.shape, 1, loss.dtype));
  if (seed.size !== loss.size || seed.graph !== graph) {
    throw new AutogradError(
      `gradients: the seed '${seed.name}' [${seed.shape.join(', ')}] must have the loss's ${loss.size} elements [${loss.shape.join(', ')}] and belong to its graph`,
    );
  }

  // Nodes whose value depends on a `wrt` source through floating-point ops.
  const wrtSet = new Set(wrt);
  const dependent = new Set<Tensor>();
  for (const node of graph.nodes) {
    if (node.id > loss.id) break;
    if (!isFloatDType(node.dtype) || stopsGradient(node)) continue;
    if (wrtSet.has(node) || node.inputs.some((input) => dependent.has(input))) dependent.add(node);
  }
  // Of those, the ones the loss reads.
  const relevant = new Set<Tensor>();
  if (dependent.has(loss)) {
    const stack = [loss];
    while (stack.length > 0) {
      const node = stack.pop()!;
      if (relevant.has(node)) continue;
      relevant.add(node);
      for (const input of node.inputs) if (dependent.has(input)) stack.push(input);
    }
  }

  const contributions = new Map<Tensor, Tensor[]>();
  const contribute = (node: Tensor, gradient: Tensor) => {
    if (gradient.shape.length !== node.shape.length || gradient.shape.some((d, i) => d !== node.shape[i])) {
      throw new AutogradError(
        `internal: a gradient for '${node.name}' came out [${gradient.shape.join(', ')}], expected [${node.shape.join(', ')}] (a bug in a VJP rule)`,
      );
    }
    const list = contributions.get(node);
    if (list === undefined) contributions.set(node, [gradient]);
    else list.push(gradient);
  };
  if (relevant.has(loss)) {
    contribute(
      loss,
      seed.shape.length === loss.shape.length && seed.shape.every((d, i) => d === loss.shape[i])
        ? seed
        : inScope(graph, loss, () => reshape(seed, loss.shape, { name: 'seed' })),
    );
  }

  const recomputed = new Map<Tensor, Tensor>();
  const recompute = options.highRank === 'save' ? undefined : (node: Tensor) => ruleView(node, recomputed);
  const calls = options.compositeRules === false ? new Map() : compositeCalls(graph, loss, relevant, wrtSet);
  const bypassed = new Set<Tensor>();

  const result = new Map<Tensor, Tensor>();
  const ordered = [...relevant].sort((a, b) => b.id - a.id);
  for (const node of ordered) {
    const parts = contributions.get(node);
    // No gradient reached it (its readers' rules pass none, e.g. a cast to int): it is zero.
    if (bypassed.has(node) || parts === undefined) continue;
    const dy = inScope(graph, node, () => accumulate(parts, node));
    contributions.delete(node);
    if (wrtSet.has(node)) {
      result.set(node, dy);
      continue;
    }
    const call = calls.get(node);
    if (call !== undefined) {
      const grads = inScope(graph, node, () =>
        COMPOSITE_VJP_RULES[call.tag.kind]!({ call: call.tag, dy, needs: (t) => relevant.has(t) }),
      );
      if (grads !== undefined) {
        for (const inner of call.inner) bypassed.add(inner);
        for (const [operand, gradient] of grads) contribute(operand, gradient);
        continue;
      }
    }
    const needs = node.inputs.map((input) => relevant.has(input));
    const saved = recompute === undefined ? node : recompute(node);
    const grads = inScope(graph, node, () => vjpRule(node)({ node: saved, dy, needs }));
    node.inputs.forEach((input, i) => {
      const gradient = grads[i];
      if (needs[i] && gradient !== undefined) contribute(input, gradient);
    });
  }
  const grads = wrt.map(
    (source) =>
      result.get(source) ??
      graph.unscoped(() =>
        graph.scope(`${source.name}.grad`, () => filled(graph, source.shape, 0, source.dtype)),
      ),
  );
  return { grads, recomputed };
}

function isSource(node: Tensor): boolean {
  return node.op.kind === 'input' || node.op.kind === 'param' || node.op.kind === 'constant';
}

/**
 * `node` as the backward should read it: itself, or when an op result of rank 3 or more, a copy
 * computed from copies of its inputs (down to values of rank 2 or less and sources), named
 * `<node>.recompute.<local name>`. The copy carries no composite tag: it is backward work.
 */
function recomputedView(node: Tensor, memo: Map<Tensor, Tensor>): Tensor {
  if (isSource(node) || node.rank < 3) return node;
  return copyOf(node, memo);
}

/**
 * The node a rule is given: its recomputed view, or for a node of lower rank that reads recomputed
 * values (a reduce_max over heads), a copy reading them. Copies a rule does not read stay dead.
 */
function ruleView(node: Tensor, memo: Map<Tensor, Tensor>): Tensor {
  if (isSource(node)) return node;
  if (node.rank >= 3) return copyOf(node, memo);
  return node.inputs.some((input) => recomputedView(input, memo) !== input) ? copyOf(node, memo) : node;
}

function copyOf(node: Tensor, memo: Map<Tensor, Tensor>): Tensor {
  const known = memo.get(node);
  if (known !== undefined) return known;
  const inputs = node.inputs.map((input) => recomputedView(input, memo));
  const graph = node.graph;
  const copy = graph.unscoped(() =>
    graph.scope(`${node.name}.recompute`, () =>
      graph.add(node.op, inputs, { name: node.localName }, { shape: node.shape, dtype: node.dtype }),
    ),
  );
  memo.set(node, copy);
  return copy;
}

interface CompositeCall {
  readonly tag: CompositeTag;
  /** The call's nodes other than its result. */
  readonly inner: readonly Tensor[];
}

/**
 * Calls with a composite-level rule whose result the loss reads and whose other nodes are read only
 * inside the call (and are no `wrt` source), keyed by their result.
 */
function compositeCalls(
  graph: Graph,
  loss: Tensor,
  relevant: ReadonlySet<Tensor>,
  wrt: ReadonlySet<Tensor>,
): Map<Tensor, CompositeCall> {
  const members = new Map<number, { tag: CompositeTag; nodes: Tensor[] }>();
  const readers = new Map<Tensor, Tensor[]>();
  for (const node of graph.nodes) {
    if (node.id > loss.id) break;
    for (const input of node.inputs) {
      const list = readers.get(input);
      if (list === undefined) readers.set(input, [node]);
      else list.push(node);
    }
    for (const tag of node.composites) {
      if (COMPOSITE_VJP_RULES[tag.kind] === undefined) continue;
      let entry = members.get(tag.id);
      if (entry === undefined) {
        entry = { tag, nodes: [] };
        members.set(tag.id, entry);
      }
      entry.nodes.push(node);
    }
  }
  const calls = new Map<Tensor, CompositeCall>();
  for (const { tag, nodes } of members.values()) {
    const result = tag.result;
    if (result === undefined || !relevant.has(result) || !nodes.includes(result)) continue;
    const own = new Set(nodes);
    const inner = nodes.filter((n) => n !== result);
    const sealed = inner.every(
      (n) => n !== loss && !wrt.has(n) && (readers.get(n) ?? []).every((reader) => own.has(reader)),
    );
    if (sealed) calls.set(result, { tag, inner });
  }
  return calls;
}

/** Runs `build` with node names under `<node>.grad`, outside any scope or composite of the caller. */
function inScope<T>(graph: Graph, node: Tensor, build: () => T): T {
  return graph.unscoped(() => graph.scope(`${node.name}.grad`, build));
}

/**
 * The composite kind of the sum of a weight's gradient contributions (a tied embedding table read by
 * the lookup and the classifier: its `scatter_add` and its `weight_grad`), recording `{ weight }`.
 * Those contributions are weight gradients computed on the host in fp32, so their sum belongs
 * there too (ane-ir places it by rule `ir-weight-grad-host`, as it places `weight_grad`): through
 * the ANE it would be an fp16 round trip of the whole table.
 */
export const WEIGHT_GRAD_SUM = WEIGHT_GRAD_SUM_KIND;

/**
 * The sum of a value's gradient contributions, in the order they arrived; for a weight (a param)
 * with several, one `weight_grad_sum` call.
 */
function accumulate(parts: readonly Tensor[], node: Tensor): Tensor {
  const sum = () => {
    let total = parts[0]!;
    for (let i = 1; i < parts.length; i++) total = add(total, parts[i]!, { name: 'acc' });
    return total;
  };
  if (parts.length < 2 || node.op.kind !== 'param') return sum();
  return node.graph.composite(WEIGHT_GRAD_SUM, WEIGHT_GRAD_SUM, sum, { weight: node });
}
