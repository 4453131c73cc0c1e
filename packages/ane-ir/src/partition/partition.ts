/**
 * The partitioner: cuts a graph into ANE kernels and host ops, lowers every kernel, and folds
 * kernels with identical programs (same text, same hash) into one program driven with per-layer
 * inputs. The plan says which op runs where and why, and what each kernel reads and writes.
 *
 * Placement: ops with no ANE lowering (gather: embeddings), non-fp16 arithmetic (int32 token math),
 * bool values other than a comparison read only by selects (rule `dtype-bool`), and sums of squares
 * that can overflow fp16 (RMSNorm, LayerNorm) run on the host, each as a whole composite call;
 * everything else runs on the ANE. Kernels grow greedily in dependency order while their inputs
 * still pack into one input within the chip's shape limits; a norm that three or more runtime-weight
 * matmuls read ends its kernel (the ANE falls back to the CPU on that fusion). Ops on weights alone
 * (a transpose of a weight) run inside every kernel that reads them, and so does a comparison,
 * recomputed from its fp16 operands wherever a select reads it (a bool never crosses a kernel). A
 * kernel the checker rejects moves the offending composite call to the host and the graph is
 * partitioned again.
 */
import { computeBounds, sumOfSquaresOperand } from '../check/bounds';
import { WEIGHT_GRAD_KIND } from '../check/ir-checks';
import { ConstraintError, IrError } from '../graph/errors';
import type { Graph } from '../graph/graph';
import { type CompositeTag, isConstantLike, opLabel, type Tensor } from '../graph/tensor';
import { isTrainableWeight, type KernelPort, planIo } from '../lower/io';
import {
  boundaryOf,
  type ConstraintWarning,
  countFlops,
  type LoweredKernel,
  type LowerOptions,
  lowerKernel,
} from '../lower/kernel';
import { physicalShape } from '../lower/layout';
import { liveNodes } from '../lower/rewrite';
import { byteLength, type Program } from '../mil/program';
import { type ChipFamily, DEFAULT_CHIP, getRule, ruleLimit } from '../mil/rules';
import { formatPlan } from './report';
import { kernelSignature } from './signature';

/**
 * The composite kind of the sum of a weight's gradient contributions (a tied embedding table's
 * `scatter_add` plus its classifier `weight_grad`), as ane-autograd tags it: placed on the host
 * with the weight gradients it sums (rule `ir-weight-grad-host`).
 */
export const WEIGHT_GRAD_SUM_KIND = 'weight_grad_sum';

/** Where an op runs: on the Neural Engine (in a kernel) or on the host CPU (a host op). */
export type ExecutionTarget = 'ane' | 'host';

export interface PartitionOptions extends LowerOptions {
  /**
   * Overrides by node or composite-call name: e.g. `{ 'layers.0.attn_norm': 'ane' }` keeps an
   * RMSNorm on the ANE (the constraint checker still refuses it if it can overflow).
   */
  placement?: Readonly<Record<string, ExecutionTarget>>;
  /**
   * What to do with an op no ANE kernel can hold (the constraint checker rejects its kernel, or its
   * values pack into no kernel input): 'error' (default) throws a `ConstraintError` naming the rule
   * and the op; 'allow' runs it on the host, with its composite call, and the plan report says why.
   * Structural host placements (gather and embeddings, int32 and bool arithmetic, sums of squares
   * that can overflow fp16, weight gradients) are not fallbacks: they happen either way.
   */
  hostFallback?: 'error' | 'allow';
}

export interface Placement {
  readonly node: string;
  readonly op: string;
  readonly device: ExecutionTarget;
  readonly reason: string;
  /** The rule behind a host placement. */
  readonly ruleId?: string;
  /** The kernel (`Plan.kernels[index]`) or host op (`Plan.hostOps[index]`) that runs it. */
  readonly step: PlanStep;
}

export interface HostOp {
  /** The composite call (`layers.0.attn_norm`) or the node. */
  readonly name: string;
  /** The composite kind (`rmsnorm`, `embedding`) or the primitive (`gather`). */
  readonly kind: string;
  /** The composite call it runs (its `args` and `result`), when it is one. */
  readonly composite?: CompositeTag;
  readonly nodes: readonly Tensor[];
  /** Values it reads (from inputs, params, kernels or other host ops). */
  readonly inputs: readonly Tensor[];
  /** Values it produces that something else reads. */
  readonly outputs: readonly Tensor[];
  /** The names `inputs` and `outputs` travel under (as in `PackedSegment.source`): a graph output's own name, else the node's. */
  readonly inputSources: readonly string[];
  readonly outputSources: readonly string[];
  readonly reason: string;
  readonly ruleId?: string;
  readonly flops: number;
}

export interface KernelInstance {
  readonly name: string;
  /** Index into `Plan.programs`. */
  readonly program: number;
  readonly nodes: readonly Tensor[];
  /** What to stage into each input and read from each output: this instance's own values. */
  readonly inputs: readonly KernelPort[];
  readonly outputs: readonly KernelPort[];
}

export interface PlannedProgram {
  readonly index: number;
  readonly hash: string;
  readonly program: Program;
  /** The lowering of the first instance (text, checks, rewrites). */
  readonly lowered: LoweredKernel;
  /** Indices into `Plan.kernels` of the kernels this program runs. */
  readonly instances: readonly number[];
  readonly inputBytes: number;
  readonly outputBytes: number;
  readonly flops: number;
}

export interface PlanOutput {
  readonly name: string;
  readonly tensor: Tensor;
}

export type PlanStep =
  | { readonly kind: 'kernel'; readonly index: number }
  | { readonly kind: 'host'; readonly index: number };

export interface Plan {
  readonly chip: ChipFamily;
  /** Execution order. */
  readonly steps: readonly PlanStep[];
  readonly kernels: readonly KernelInstance[];
  /** Distinct programs: compile each once. */
  readonly programs: readonly PlannedProgram[];
  readonly hostOps: readonly HostOp[];
  /** Every op of the graph, where it runs and why. */
  readonly placements: readonly Placement[];
  /** The graph's outputs (`g.output(name, tensor)`), under the names they travel as. */
  readonly outputs: readonly PlanOutput[];
  readonly warnings: readonly ConstraintWarning[];
  /** A readable summary: programs, kernels with I/O sizes and FLOPs, host ops with reasons. */
  report(): string;
}

interface Decision {
  readonly device: ExecutionTarget;
  readonly reason: string;
  readonly ruleId?: string;
}

/** Partitions `graph` (everything its outputs need) into kernels and host ops, and lowers the kernels. */
export function partition(graph: Graph, options: PartitionOptions = {}): Plan {
  if (graph.outputs.length === 0)
    throw new IrError('partition: the graph has no outputs (call graph.output)');
  const chip = options.chip ?? DEFAULT_CHIP;
  const outputs = graph.outputs.map((o) => o.tensor);
  const live = liveNodes(outputs);
  const ops = live.filter((n) => n.op.kind !== 'input' && n.op.kind !== 'param' && n.op.kind !== 'constant');
  const bounds = computeBounds(live);
  const decisions = initialPlacement(ops, bounds, options, outputs);
  // Graph outputs travel under the names the user gave them (`g.output('y', t)` -> 'y').
  const sourceNames = new Map(graph.outputs.map((o) => [o.tensor, o.name] as const));

  // Every round that does not settle moves at least one op to the host, so this ends.
  for (let round = 0; round <= ops.length; round++) {
    const kernels = formKernels(ops, decisions, outputs, chip, options);
    const lowered: LoweredKernel[] = [];
    const bySignature = new Map<string, LoweredKernel>();
    let moved = false;
    for (const [index, kernel] of kernels.entries()) {
      const definition = {
        nodes: kernel.nodes,
        outputs: kernel.outputs,
        // Returned values are named as they travel (a graph output's name, else the node's), so a
        // separate-I/O kernel's output parameters carry those names, as lowerGraph's do.
        outputNames: kernel.outputs.map((node) => sourceNames.get(node) ?? node.name),
        sourceNames,
        name: `kernel${index}`,
      };
      try {
        // Kernels of identical structure (every layer of a model) lower to the same program: lower the
        // first, and only plan the I/O of the others (their ports name their own values).
        const signature = kernelSignature(kernel, bounds);
        const twin = bySignature.get(signature);
        if (twin !== undefined) {
          const plan = planIo(boundaryOf(definition), options.io ?? 'packed', chip);
          lowered.push({ ...twin, name: definition.name, inputs: plan.inputs, outputs: plan.outputs });
          continue;
        }
        const result = lowerKernel(definition, { ...options, chip, bounds });
        bySignature.set(signature, result);
        lowered.push(result);
      } catch (error) {
        if (!(error instanceof ConstraintError)) throw error;
        const culprit = culpritOf(error, kernel.nodes);
        const forced = [culprit?.name, ...(culprit?.composites.map((t) => t.name) ?? [])].some(
          (name) => name !== undefined && options.placement?.[name] === 'ane',
        );
        if (culprit === undefined || forced) throw error;
        if (options.hostFallback !== 'allow') throw fallbackError(error, culprit, chip);
        moveToHost(culprit, ops, decisions, {
          device: 'host',
          reason: `the ANE kernel would break a rule: ${error.detail}`,
          ruleId: error.ruleId,
        });
        moved = true;
        break;
      }
    }
    if (!moved) return assemble(chip, ops, decisions, kernels, lowered, graph.outputs, sourceNames);
  }
  throw new IrError(`partition: placement did not settle after ${ops.length + 1} rounds`);
}

/**
 * The kernel op a checker error is about: the op it names, or, when it names a value the lowering
 * made from a kernel input (a weight's matmul layout, named for the weight: a `[32000, 768]` table
 * laid out over the M1 spatial cap), the first op of the kernel that reads that input.
 */
function culpritOf(error: ConstraintError, nodes: readonly Tensor[]): Tensor | undefined {
  return (
    nodes.find((n) => n.name === error.node) ??
    nodes.find((n) => n.inputs.some((input) => input.name === error.node && !nodes.includes(input)))
  );
}

/**
 * A kernel the checker rejects is not moved to the host silently: the error names the rule, the op,
 * the composite call that would move, and how to allow it.
 */
function fallbackError(error: ConstraintError, culprit: Tensor, chip: ChipFamily): ConstraintError {
  const call = innermostTag(culprit);
  const unit =
    call === undefined ? `${opLabel(culprit.op)} '${culprit.name}'` : `${call.kind} '${call.name}'`;
  return new ConstraintError(
    error.ruleId,
    { op: error.op, node: error.node },
    `no ANE kernel can hold ${opLabel(culprit.op)} '${culprit.name}': ${error.detail}`,
    chip,
    {
      fix: `run ${unit} on the host with \`partition(graph, { hostFallback: 'allow' })\` (the plan report then says why) or \`placement: { '${call?.name ?? culprit.name}': 'host' }\`, or change the graph so its kernel keeps the rule.`,
    },
  );
}

function innermostTag(node: Tensor) {
  return node.composites[node.composites.length - 1];
}

/** Moves `node` to the host, with the whole innermost composite call it belongs to. */
function moveToHost(
  node: Tensor,
  ops: readonly Tensor[],
  decisions: Map<Tensor, Decision>,
  decision: Decision,
): void {
  if (decision.ruleId !== undefined) getRule(decision.ruleId); // a reason always names a real rule
  const tag = innermostTag(node);
  const group = tag === undefined ? [node] : ops.filter((n) => n.composites.some((t) => t.id === tag.id));
  for (const member of group) {
    if (decisions.get(member)?.device === 'host') continue;
    decisions.set(
      member,
      member === node || tag === undefined
        ? decision
        : { ...decision, reason: `part of ${tag.kind} '${tag.name}': ${decision.reason}` },
    );
  }
}

/** Places every node of a composite call on the host (the call's outermost `tag`). */
function moveCallToHost(
  tag: CompositeTag,
  ops: readonly Tensor[],
  decisions: Map<Tensor, Decision>,
  decision: Decision,
): void {
  for (const member of ops) {
    if (!member.composites.some((t) => t.id === tag.id) || decisions.get(member)?.device === 'host') continue;
    decisions.set(member, decision);
  }
}

function initialPlacement(
  ops: readonly Tensor[],
  bounds: ReadonlyMap<Tensor, number | undefined>,
  options: PartitionOptions,
  graphOutputs: readonly Tensor[],
): Map<Tensor, Decision> {
  const decisions = new Map<Tensor, Decision>();
  const limit = ruleLimit(getRule('ir-fp16-sum-of-squares'), options.chip ?? DEFAULT_CHIP)!;
  const consumers = consumersOf(ops);
  for (const node of ops) decisions.set(node, { device: 'ane', reason: 'lowers to ANE primitives' });
  const movedCalls = new Set<number>();
  for (const node of ops) {
    let decision: Decision | undefined;
    const weightGrad = node.composites.find(
      (tag) => tag.kind === WEIGHT_GRAD_KIND || tag.kind === WEIGHT_GRAD_SUM_KIND,
    );
    if (weightGrad !== undefined) {
      // Every node of the call is placed by its first one (moveCallToHost walks every op).
      if (movedCalls.has(weightGrad.id)) continue;
      movedCalls.add(weightGrad.id);
      decision = {
        device: 'host',
        reason:
          weightGrad.kind === WEIGHT_GRAD_KIND
            ? `a weight gradient (dW over every position of the batch) accumulates unsafely in fp16, and the optimizer reads it in fp32`
            : `the sum of a weight's gradient contributions (computed on the host in fp32) stays on the host: through the ANE it would be an fp16 round trip of the whole weight`,
        ruleId: 'ir-weight-grad-host',
      };
      moveCallToHost(weightGrad, ops, decisions, decision);
      continue;
    }
    if (node.op.kind === 'gather') {
      decision = {
        device: 'host',
        reason: 'gather has no ANE lowering (embedding lookup)',
        ruleId: 'ir-host-only-op',
      };
    } else if (node.op.kind === 'compare' || node.op.kind === 'select') {
      decision = boolPlacement(node, consumers, graphOutputs);
    } else if (
      node.inputs.some((i) => i.dtype === 'int32' || i.dtype === 'bool') ||
      node.dtype === 'int32' ||
      node.dtype === 'bool'
    ) {
      decision = {
        device: 'host',
        reason: `${node.dtype} arithmetic: the ANE computes in fp16`,
        ruleId: 'dtype-compute',
      };
    } else {
      const operand = sumOfSquaresOperand(node);
      if (operand !== undefined) {
        const bound = bounds.get(operand);
        const count = node.inputs[0]!.size / node.size;
        if (bound === undefined) {
          decision = {
            device: 'host',
            reason: `sum of ${count} squares of an input with no declared bound can exceed 65504 in fp16`,
            ruleId: 'ir-fp16-sum-of-squares',
          };
        } else if (count * bound * bound > limit) {
          decision = {
            device: 'host',
            reason: `sum of ${count} squares can reach ${count * bound * bound} > 65504 in fp16`,
            ruleId: 'ir-fp16-sum-of-squares',
          };
        }
      }
    }
    if (decision !== undefined) moveToHost(node, ops, decisions, decision);
  }
  for (const [name, device] of Object.entries(options.placement ?? {})) {
    const matched = ops.filter((n) => n.name === name || n.composites.some((t) => t.name === name));
    if (matched.length === 0)
      throw new IrError(
        `partition: placement names '${name}', which is no op or composite call of the graph`,
      );
    for (const node of matched) {
      // A placement that agrees with the default keeps the default's reason and rule.
      if (decisions.get(node)?.device === device) continue;
      decisions.set(node, {
        device,
        reason: `placed on the ${device === 'ane' ? 'ANE' : 'host'} by the caller`,
      });
    }
  }
  return decisions;
}

/** The ANE computes in fp16 (rule `dtype-compute`): fp32 exists there only as a cast intermediate. */
const isFp16 = (node: Tensor) => node.dtype === 'fp16';

/**
 * Where a comparison or a select runs (rule `dtype-bool`): on the ANE a bool exists only inside a
 * kernel, between a comparison and the selects that read it, never as kernel I/O. A comparison of
 * fp16 values whose every reader is a select of fp16 values taking it as the condition (and that is
 * no graph output) stays on the ANE with those selects; anything else runs on the host. Returns the
 * host decision, or undefined for the ANE.
 */
function boolPlacement(
  node: Tensor,
  consumers: ReadonlyMap<Tensor, Tensor[]>,
  graphOutputs: readonly Tensor[],
): Decision | undefined {
  const host = (reason: string, ruleId: string): Decision => ({ device: 'host', reason, ruleId });
  const comparisonProblem = (comparison: Tensor): Decision | undefined => {
    if (!comparison.inputs.every(isFp16)) {
      return host(`${comparison.inputs[0]!.dtype} comparison: the ANE computes in fp16`, 'dtype-compute');
    }
    if (graphOutputs.includes(comparison)) {
      return host('its bool result is a graph output, and bool is never ANE kernel I/O', 'dtype-bool');
    }
    for (const reader of consumers.get(comparison) ?? []) {
      if (
        reader.op.kind !== 'select' ||
        reader.inputs[0] !== comparison ||
        reader.inputs.indexOf(comparison, 1) > 0
      )
        return host(
          `its bool result is read by ${opLabel(reader.op)} '${reader.name}'; on the ANE only a select's condition may be bool`,
          'dtype-bool',
        );
      if (!isFp16(reader)) {
        return host(`its select '${reader.name}' picks ${reader.dtype} values on the host`, 'dtype-bool');
      }
    }
    return undefined;
  };
  if (node.op.kind === 'compare') return comparisonProblem(node);
  if (!isFp16(node)) return host(`${node.dtype} arithmetic: the ANE computes in fp16`, 'dtype-compute');
  const cond = node.inputs[0]!;
  if (cond.op.kind !== 'compare') {
    return host(
      `its condition '${cond.name}' is a bool ${opLabel(cond.op)}, not a comparison computed in the same kernel`,
      'dtype-bool',
    );
  }
  const problem = comparisonProblem(cond);
  return problem === undefined
    ? undefined
    : host(`its condition '${cond.name}' runs on the host (${problem.reason})`, 'dtype-bool');
}

interface FormedKernel {
  readonly nodes: Tensor[];
  readonly outputs: Tensor[];
}

/** Values consumed by each op. */
function consumersOf(ops: readonly Tensor[]): Map<Tensor, Tensor[]> {
  const consumers = new Map<Tensor, Tensor[]>();
  for (const node of ops) {
    for (const input of node.inputs) {
      const list = consumers.get(input) ?? [];
      list.push(node);
      consumers.set(input, list);
    }
  }
  return consumers;
}

/** Whether the kernel's packed input would fit the chip's shape caps (and pack at all). */
function packingProblem(
  nodes: readonly Tensor[],
  chip: ChipFamily,
  options: LowerOptions,
): Problem | undefined {
  const boundary = boundaryOf({ nodes, outputs: [] });
  try {
    const plan = planIo(boundary, options.io ?? 'packed', chip);
    const spatial = ruleLimit(getRule('dim-spatial'), chip)!;
    const channels = ruleLimit(getRule('dim-channel'), chip)!;
    for (const port of plan.inputs) {
      const [, c, h, w] = port.spec.shape as [number, number, number, number];
      const shape = `[${physicalShape(port.logicalShape).join(', ')}]`;
      if (c > channels) {
        return {
          detail: `its packed input ${shape} has more than ${channels} channels`,
          ruleId: 'dim-channel',
        };
      }
      if (h > spatial || w > spatial) {
        return {
          detail: `its packed input ${shape} is wider than the ${chip} spatial cap ${spatial}`,
          ruleId: 'dim-spatial',
        };
      }
    }
  } catch (error) {
    if (error instanceof ConstraintError) return { detail: error.detail, ruleId: error.ruleId };
    throw error;
  }
  return undefined;
}

interface Problem {
  readonly detail: string;
  readonly ruleId: string;
}

/** Values from outside the kernel that `node` (with its weight-only inputs) reads. */
function newBoundaryValues(
  node: Tensor,
  pending: ReadonlySet<Tensor>,
  weightOnly: ReadonlySet<Tensor>,
): Tensor[] {
  const reads: Tensor[] = [];
  const stack = [...node.inputs];
  const seen = new Set<Tensor>();
  while (stack.length > 0) {
    const value = stack.pop()!;
    if (seen.has(value)) continue;
    seen.add(value);
    if (pending.has(value) || value.op.kind === 'constant' || isConstantLike(value)) continue;
    if (weightOnly.has(value)) stack.push(...value.inputs);
    else reads.push(value);
  }
  return reads;
}

/** Outputs of norm composites (calls holding a sum of squares) that three or more runtime-weight matmuls read. */
function normsFeedingManyMatmuls(
  ops: readonly Tensor[],
  consumers: ReadonlyMap<Tensor, Tensor[]>,
): Set<Tensor> {
  const normCalls = new Set<number>();
  for (const node of ops) {
    const tag = innermostTag(node);
    if (tag !== undefined && sumOfSquaresOperand(node) !== undefined) normCalls.add(tag.id);
  }
  const result = new Set<Tensor>();
  for (const node of ops) {
    const tag = innermostTag(node);
    if (tag === undefined || !normCalls.has(tag.id)) continue;
    const readers = (consumers.get(node) ?? []).filter((r) => !r.composites.some((t) => t.id === tag.id));
    if (runtimeMatmulCount(readers) >= 3) result.add(node);
  }
  return result;
}

function runtimeMatmulCount(nodes: readonly Tensor[]): number {
  return nodes.filter((n) => n.op.kind === 'matmul' && n.inputs.some(isTrainableWeight)).length;
}

/** Greedy list scheduling: grow the current kernel with ready ANE ops; run host ops when none is ready. */
function formKernels(
  ops: readonly Tensor[],
  decisions: Map<Tensor, Decision>,
  graphOutputs: readonly Tensor[],
  chip: ChipFamily,
  options: PartitionOptions,
): FormedKernel[] {
  const consumers = consumersOf(ops);
  const opSet = new Set(ops);
  // Ops on weights and constants alone (a reshape of a gain, a transpose of a weight) run inside
  // every kernel that reads them, so kernels of different layers stay identical.
  const weightOnly = new Set<Tensor>();
  for (const node of ops) {
    if (
      decisions.get(node)!.device === 'ane' &&
      !graphOutputs.includes(node) &&
      node.inputs.every((i) => (opSet.has(i) ? weightOnly.has(i) : i.op.kind !== 'input'))
    ) {
      weightOnly.add(node);
    }
  }
  for (const node of [...weightOnly].reverse()) {
    const readers = consumers.get(node) ?? [];
    if (readers.some((c) => decisions.get(c)!.device !== 'ane')) weightOnly.delete(node);
  }
  // A comparison on the ANE never leaves a kernel (rule dtype-bool): it runs inside every kernel
  // that selects with it, recomputed from its fp16 operands (a ReLU mask in forward and backward).
  const comparisons = keepComparisonsWithSelects(ops, decisions, consumers, weightOnly, graphOutputs);
  // A value of rank 3 or more (attention heads [H, S, D], probabilities [H, S, S]) packs into no
  // kernel input or output (rule ir-single-io): it runs inside every kernel that reads it, recomputed
  // from the [C, S] values it derives from (heads, RoPE and probabilities in the backward).
  const highRank = recomputedHighRank(ops, decisions, consumers, graphOutputs, [weightOnly, comparisons]);
  const recomputedInKernels = new Set([...comparisons, ...highRank]);
  const inlined = new Set([...weightOnly, ...recomputedInKernels]);
  const scopes = kernelScopes(ops);
  // Backward ops that read no gradient (a SiLU's 1 - σ, recomputed values) are ready as soon as
  // their layer's forward is done. Opening a kernel with one while the gradient it waits for is
  // still on the host would split that layer's backward differently from the others (the layers
  // whose backward the scheduler reached during such a wait): one program more, depending on
  // depth. They join a kernel that a gradient op opens, and open one only when nothing else can.
  const forwardOnly = forwardOnlyBackwardOps(ops, scopes);
  let stalled = false;
  let groups: Tensor[][] | undefined;
  const withWeightOnlyInputs = (nodes: readonly Tensor[]): Tensor[] => {
    const all = new Set(nodes);
    const stack = [...nodes];
    while (stack.length > 0) {
      for (const input of stack.pop()!.inputs) {
        if (inlined.has(input) && !all.has(input)) {
          all.add(input);
          stack.push(input);
        }
      }
    }
    return [...all].sort((a, b) => a.id - b.id);
  };
  const done = new Set<Tensor>(weightOnly);
  const kernels: FormedKernel[] = [];
  let current: Tensor[] = [];
  let currentScope: string | undefined;
  // An op is ready when what it reads is done or in the kernel; a value recomputed in every kernel
  // that reads it (a comparison, a high-rank value) is ready when its own inputs are.
  const ready = (node: Tensor, pending: ReadonlySet<Tensor>): boolean => {
    const seen = new Set<Tensor>();
    const check = (n: Tensor): boolean =>
      n.inputs.every((input) => {
        if (recomputedInKernels.has(input)) {
          if (seen.has(input)) return true;
          seen.add(input);
          return check(input);
        }
        return !opSet.has(input) || done.has(input) || pending.has(input);
      });
    return check(node);
  };
  const currentBoundary = new Set<Tensor>();
  const fanOutNorms = normsFeedingManyMatmuls(ops, consumers);
  const closeKernel = () => {
    if (current.length === 0) return;
    kernels.push({ nodes: withWeightOnlyInputs(current), outputs: [] });
    for (const node of current) done.add(node);
    current = [];
    currentScope = undefined;
    currentBoundary.clear();
  };
  const remaining = ops.filter((n) => !inlined.has(n));
  while (remaining.length > 0) {
    const pending = new Set(current);
    let progressed = false;
    for (let i = 0; i < remaining.length; i++) {
      const node = remaining[i]!;
      if (decisions.get(node)!.device !== 'ane') continue;
      if (current.length === 0 && !stalled && forwardOnly.has(node)) continue;
      // A kernel never spans two scopes (layers, or forward and backward of one layer).
      if (currentScope !== undefined && scopes.get(node) !== currentScope) continue;
      if (!ready(node, pending)) continue;
      const reads = newBoundaryValues(node, pending, inlined);
      let problem =
        current.length > 0 && reads.every((value) => currentBoundary.has(value))
          ? undefined
          : packingProblem(withWeightOnlyInputs([...current, node]), chip, options);
      if (
        problem === undefined &&
        node.inputs.some((input) => fanOutNorms.has(input) && pending.has(input))
      ) {
        // A norm feeding three or more runtime-weight matmuls ends its kernel.
        problem = {
          detail: 'a norm fused with three runtime-weight matmuls falls back to the CPU',
          ruleId: 'op-rmsnorm-3matmul-fallback',
        };
      }
      if (problem !== undefined) {
        if (current.length === 0) {
          if (options.hostFallback !== 'allow') {
            throw fallbackError(
              new ConstraintError(
                problem.ruleId,
                { op: opLabel(node.op), node: node.name },
                problem.detail,
                chip,
              ),
              node,
              chip,
            );
          }
          moveToHost(node, ops, decisions, {
            device: 'host',
            reason: `no ANE kernel can hold it: ${problem.detail}`,
            ruleId: problem.ruleId,
          });
          groups = undefined;
          progressed = true;
          break;
        }
        continue;
      }
      current.push(node);
      currentScope = scopes.get(node);
      stalled = false;
      pending.add(node);
      for (const value of reads) currentBoundary.add(value);
      remaining.splice(i, 1);
      i--;
      progressed = true;
    }
    if (progressed) continue;
    closeKernel();
    // No ANE op is ready: run the host ops that are, each host op (a composite call) as a whole, so
    // no kernel runs between two parts of one host op.
    const left = new Set(remaining);
    // Host groups change only when an op moves to the host (then the cache is dropped).
    groups ??= hostGroups(ops, decisions);
    const hostReady = groups.filter((group) => {
      const members = new Set(group);
      return left.has(group[0]!) && group.every((node) => ready(node, members));
    });
    if (hostReady.length === 0) {
      if (remaining.some((n) => decisions.get(n)!.device === 'ane' && ready(n, new Set()))) {
        stalled = true;
        continue;
      }
      throw new IrError('partition: no op is ready (the graph has a cycle?)');
    }
    for (const node of hostReady.flat()) {
      done.add(node);
      remaining.splice(remaining.indexOf(node), 1);
    }
  }
  closeKernel();
  // Outputs: values another kernel or a host op reads (a value recomputed in another kernel reads its
  // operands there), or the graph returns.
  const readOutside = new Set<Tensor>(graphOutputs);
  for (const kernel of kernels) {
    const inside = new Set(kernel.nodes);
    for (const node of kernel.nodes)
      for (const input of node.inputs) if (!inside.has(input)) readOutside.add(input);
  }
  for (const node of ops)
    if (decisions.get(node)!.device === 'host') for (const input of node.inputs) readOutside.add(input);
  for (const kernel of kernels) {
    for (const node of kernel.nodes)
      if (!inlined.has(node) && readOutside.has(node)) kernel.outputs.push(node);
  }
  return kernels;
}

/**
 * Ops of a layer's backward scope (not the top level's) whose inputs are all sources, forward ops
 * or other such ops (no gradient).
 */
function forwardOnlyBackwardOps(ops: readonly Tensor[], scopes: ReadonlyMap<Tensor, string>): Set<Tensor> {
  const result = new Set<Tensor>();
  for (const node of ops) {
    const own = scopes.get(node);
    if (own === undefined || !own.startsWith('backward') || own === 'backward of top') continue;
    const noGradient = node.inputs.every((input) => {
      const scope = scopes.get(input);
      return scope === undefined || scope.startsWith('forward') || result.has(input);
    });
    if (noGradient) result.add(node);
  }
  return result;
}

/**
 * The comparisons that run inside the kernels of the selects reading them. One that a host op reads
 * (a select moved to the host since) goes to the host, with every select reading it.
 */
function keepComparisonsWithSelects(
  ops: readonly Tensor[],
  decisions: Map<Tensor, Decision>,
  consumers: ReadonlyMap<Tensor, Tensor[]>,
  weightOnly: ReadonlySet<Tensor>,
  graphOutputs: readonly Tensor[],
): Set<Tensor> {
  const onAne = (node: Tensor) => decisions.get(node)!.device === 'ane';
  for (let changed = true; changed; ) {
    changed = false;
    for (const node of ops) {
      if (node.op.kind !== 'compare' || !onAne(node)) continue;
      const readers = consumers.get(node) ?? [];
      const hostReader = readers.find((reader) => !onAne(reader));
      if (hostReader === undefined) continue;
      moveToHost(node, ops, decisions, {
        device: 'host',
        reason: `its bool result is read on the host by ${opLabel(hostReader.op)} '${hostReader.name}'`,
        ruleId: 'dtype-bool',
      });
      for (const reader of readers.filter(onAne)) {
        moveToHost(reader, ops, decisions, {
          device: 'host',
          reason: `its condition '${node.name}' runs on the host`,
          ruleId: 'dtype-bool',
        });
      }
      changed = true;
    }
  }
  // Only a comparison read by selects alone (as their condition) is recomputed; any other on the ANE
  // (placed there by the caller) is left to the lowering, which refuses its bool I/O.
  const kept = ops.filter(
    (n) =>
      n.op.kind === 'compare' &&
      onAne(n) &&
      !weightOnly.has(n) &&
      !graphOutputs.includes(n) &&
      (consumers.get(n) ?? []).every((c) => c.op.kind === 'select' && c.inputs.indexOf(n) === 0),
  );
  for (const node of kept) {
    decisions.set(node, {
      device: 'ane',
      reason: 'runs inside every kernel that selects with it (a bool never crosses a kernel boundary)',
    });
  }
  return new Set(kept);
}

/**
 * Values of rank 3 or more on the ANE that run inside every kernel reading them (never kernel I/O):
 * not graph outputs, read only by ANE ops.
 */
function recomputedHighRank(
  ops: readonly Tensor[],
  decisions: ReadonlyMap<Tensor, Decision>,
  consumers: ReadonlyMap<Tensor, Tensor[]>,
  graphOutputs: readonly Tensor[],
  alreadyInlined: readonly ReadonlySet<Tensor>[],
): Set<Tensor> {
  const onAne = (node: Tensor) => decisions.get(node)!.device === 'ane';
  return new Set(
    ops.filter(
      (node) =>
        node.rank > 2 &&
        onAne(node) &&
        !graphOutputs.includes(node) &&
        !alreadyInlined.some((set) => set.has(node)) &&
        (consumers.get(node) ?? []).every(onAne),
    ),
  );
}

/** `.grad.` and `.recompute.` in a node's name: a backward node of ane-autograd, named for the forward node it derives from. */
const BACKWARD_MARKER = /\.(?:grad|recompute)(?=\.|$)/g;

/**
 * The scope of every op, which a kernel never spans: the outermost composite call that holds other
 * calls (a layer: `llama_block` 'layers.3', an attention), or the top level, in the forward or the
 * backward. A backward node (ane-autograd names them `<forward node>.grad.*` and
 * `<forward node>.recompute.*`) belongs to the backward of its forward node's scope. So every layer
 * of a model forms the same kernels, forward and backward, and programs do not grow with depth.
 */
export function kernelScopes(ops: readonly Tensor[]): Map<Tensor, string> {
  const graph = ops[0]?.graph;
  const byName = new Map<string, Tensor>();
  for (const node of graph?.nodes ?? []) if (!byName.has(node.name)) byName.set(node.name, node);
  // Calls that hold another call: their nested tags appear after them on some node.
  const layers = new Set<number>();
  for (const node of graph?.nodes ?? []) for (const tag of node.composites.slice(0, -1)) layers.add(tag.id);
  const forwardScope = (node: Tensor): string => {
    const layer = node.composites.find((tag) => layers.has(tag.id));
    return layer === undefined ? 'top' : `${layer.kind} '${layer.name}'`;
  };
  const scopes = new Map<Tensor, string>();
  for (const node of ops) {
    let scope = `forward of ${forwardScope(node)}`;
    for (const match of node.name.matchAll(BACKWARD_MARKER)) {
      const forward = byName.get(node.name.slice(0, match.index));
      if (forward !== undefined && forward !== node) {
        scope = `backward of ${forwardScope(forward)}`;
        break;
      }
    }
    scopes.set(node, scope);
  }
  return scopes;
}

/**
 * Host ops: each composite call placed on the host as a whole, with the calls nested in it that its
 * other nodes read (an attention's RoPE: apart, they would wait on each other), is one host op; a
 * nested call nothing else in it reads (a weight gradient inside a norm's backward) stays its own.
 * Host nodes of no call (or of a call partly on the ANE) group by their innermost call.
 */
function hostGroups(ops: readonly Tensor[], decisions: Map<Tensor, Decision>): Tensor[][] {
  const onHost = ops.filter((node) => decisions.get(node)!.device === 'host');
  const graphNodes = ops[0]?.graph.nodes ?? [];
  // Calls every node of which (among the ops) runs on the host.
  const opSet = new Set(ops);
  const partlyOnAne = new Set<number>();
  for (const node of graphNodes) {
    if (!opSet.has(node) || decisions.get(node)?.device === 'host') continue;
    for (const tag of node.composites) partlyOnAne.add(tag.id);
  }
  const groupTag = (node: Tensor) =>
    node.composites.find((tag) => !partlyOnAne.has(tag.id)) ?? innermostTag(node);
  const byKey = new Map<string, Tensor[]>();
  const groups: Tensor[][] = [];
  const add = (key: string, node: Tensor) => {
    let group = byKey.get(key);
    if (group === undefined) {
      group = [];
      byKey.set(key, group);
      groups.push(group);
    }
    group.push(node);
  };
  const byOuterCall = new Map<number, Tensor[]>();
  for (const node of onHost) {
    const outer = groupTag(node);
    if (outer === undefined) continue;
    const members = byOuterCall.get(outer.id) ?? [];
    members.push(node);
    byOuterCall.set(outer.id, members);
  }
  const splits = new Map<string, boolean>();
  for (const node of onHost) {
    const outer = groupTag(node);
    if (outer === undefined) {
      groups.push([node]);
      continue;
    }
    // Split off the innermost call when the rest of the outer call does not read it.
    const inner = innermostTag(node)!;
    const pair = `${inner.id}/${outer.id}`;
    let split = splits.get(pair);
    if (split === undefined) {
      split = inner.id !== outer.id && !readByRestOfCall(inner.id, byOuterCall.get(outer.id)!);
      splits.set(pair, split);
    }
    add(`t${split ? inner.id : outer.id}`, node);
  }
  return groups;
}

/** Whether a node of `call` outside the nested call `inner` reads a value of `inner`. */
function readByRestOfCall(inner: number, call: readonly Tensor[]): boolean {
  const innerNodes = new Set(call.filter((n) => innermostTag(n)?.id === inner));
  return call.some((n) => !innerNodes.has(n) && n.inputs.some((input) => innerNodes.has(input)));
}

function assemble(
  chip: ChipFamily,
  ops: readonly Tensor[],
  decisions: Map<Tensor, Decision>,
  formed: readonly FormedKernel[],
  lowered: readonly LoweredKernel[],
  namedOutputs: readonly PlanOutput[],
  sourceNames: ReadonlyMap<Tensor, string>,
): Plan {
  const graphOutputs = namedOutputs.map((o) => o.tensor);
  const sourceOf = (node: Tensor) => sourceNames.get(node) ?? node.name;
  const consumers = consumersOf(ops);
  const programs: PlannedProgram[] = [];
  const byHash = new Map<string, number>();
  const kernels: KernelInstance[] = [];
  formed.forEach((kernel, index) => {
    const result = lowered[index]!;
    let programIndex = byHash.get(result.hash);
    if (programIndex === undefined) {
      programIndex = programs.length;
      byHash.set(result.hash, programIndex);
      programs.push({
        index: programIndex,
        hash: result.hash,
        program: result.program,
        lowered: result,
        instances: [],
        inputBytes: result.program.inputs.reduce((n, s) => n + byteLength(s), 0),
        outputBytes: result.program.outputs.reduce((n, s) => n + byteLength(s), 0),
        flops: result.flops,
      });
    }
    (programs[programIndex]!.instances as number[]).push(index);
    kernels.push({
      name: result.name,
      program: programIndex,
      nodes: kernel.nodes,
      inputs: result.inputs,
      outputs: result.outputs,
    });
  });

  const hostOps: HostOp[] = hostGroups(ops, decisions).map((nodes) => {
    const inside = new Set(nodes);
    const first = nodes[0]!;
    const tag = innermostTag(first);
    const decision = decisions.get(nodes.find((n) => decisions.get(n)!.ruleId !== undefined) ?? first)!;
    const inputs: Tensor[] = [];
    for (const node of nodes)
      for (const input of node.inputs) if (!inside.has(input) && !inputs.includes(input)) inputs.push(input);
    const outputs = nodes.filter(
      (n) => graphOutputs.includes(n) || (consumers.get(n) ?? []).some((c) => !inside.has(c)),
    );
    return {
      name: tag?.name ?? first.name,
      kind: tag?.kind ?? opLabel(first.op),
      ...(tag !== undefined ? { composite: tag } : {}),
      nodes,
      inputs,
      outputs,
      inputSources: inputs.map(sourceOf),
      outputSources: outputs.map(sourceOf),
      reason: decision.reason.replace(/^part of [^:]*: /, ''),
      ...(decision.ruleId !== undefined ? { ruleId: decision.ruleId } : {}),
      flops: countFlops(nodes),
    };
  });

  // Execution order: each step after everything it reads.
  const producedBy = new Map<Tensor, PlanStep>();
  kernels.forEach((kernel, index) => {
    for (const node of kernel.nodes) producedBy.set(node, { kind: 'kernel', index });
  });
  hostOps.forEach((op, index) => {
    for (const node of op.nodes) producedBy.set(node, { kind: 'host', index });
  });
  const allSteps: PlanStep[] = [
    ...kernels.map((_, index): PlanStep => ({ kind: 'kernel', index })),
    ...hostOps.map((_, index): PlanStep => ({ kind: 'host', index })),
  ];
  const nodesOf = (step: PlanStep) =>
    step.kind === 'kernel' ? kernels[step.index]!.nodes : hostOps[step.index]!.nodes;
  const steps: PlanStep[] = [];
  const placed = new Set<string>();
  const key = (step: PlanStep) => `${step.kind}${step.index}`;
  const readyStep = (step: PlanStep): boolean => {
    const own = new Set(nodesOf(step));
    return nodesOf(step).every((node) =>
      node.inputs.every((input) => {
        if (own.has(input)) return true;
        const producer = producedBy.get(input);
        return producer === undefined || placed.has(key(producer));
      }),
    );
  };
  while (steps.length < allSteps.length) {
    const next = allSteps.find((step) => !placed.has(key(step)) && readyStep(step));
    if (next === undefined)
      throw new IrError('partition: the kernels and host ops depend on each other in a cycle');
    steps.push(next);
    placed.add(key(next));
  }

  const placements: Placement[] = ops.map((node) => {
    const decision = decisions.get(node)!;
    const step = producedBy.get(node)!;
    return {
      node: node.name,
      op: opLabel(node.op),
      device: decision.device,
      reason: decision.reason,
      ...(decision.ruleId !== undefined ? { ruleId: decision.ruleId } : {}),
      step,
    };
  });
  const warnings = programs.flatMap((p) => p.lowered.warnings);
  const plan: Plan = {
    chip,
    steps,
    kernels,
    programs,
    hostOps,
    placements,
    outputs: namedOutputs.map(({ name, tensor }) => ({ name, tensor })),
    warnings,
    report: () => formatPlan(plan),
  };
  return plan;
}
