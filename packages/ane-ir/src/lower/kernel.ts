/**
 * Lowering one kernel: a set of graph nodes -> a checked `Program` (DESIGN.md's contract).
 *
 *   1. extract the nodes into a kernel graph (boundary values become inputs and params; constants
 *      and frozen weights are captured),
 *   2. plan the I/O (one packed input and one output by default) and rewrite the boundary values
 *      into slices of the packed input (`packWeightsIntoInput`),
 *   3. run the lowering rewrites (`LOWERING_RULES`) to a fixpoint,
 *   4. check the IR rules (`checkKernelRules`), lay every tensor out channels-first and build the
 *      MIL AST, check the MIL rules on it (`checkProgramRules`), then print it.
 *
 * Errors are `ConstraintError`s naming the op and the rule; warnings come back with the result.
 */
import { computeBounds } from '../check/bounds';
import { checkKernelRules } from '../check/ir-checks';
import { hashProgram } from '../emit/hash';
import { type Dialect, MilBuilder, type MilValue } from '../emit/mil-builder';
import { ConstraintError, formatConstraintMessage, IrError, lowerFirst } from '../graph/errors';
import { Graph } from '../graph/graph';
import { isConstantLike, type NodeMeta, type Op, type Tensor } from '../graph/tensor';
import type { MilProgram } from '../mil/ast';
import { MilError } from '../mil/errors';
import { roundToFp16 } from '../mil/fp16';
import { printProgram } from '../mil/print';
import type { Program } from '../mil/program';
import { checkProgramRules } from '../mil/rule-checks';
import { type ChipFamily, DEFAULT_CHIP, getRule, ruleSeverity } from '../mil/rules';
import { validateProgram } from '../mil/validate';
import { type Boundary, type IoMode, type IoPlan, type KernelPort, planIo } from './io';
import { layoutKernel } from './layout';
import { type KernelGraph, liveNodes, type RewriteRule, type RewriteStats, rewriteGraph } from './rewrite';
import { LOWERING_RULES } from './rules';

export interface KernelDefinition {
  /** Op nodes of one graph to run as one kernel (any order; sources among them are ignored). */
  readonly nodes: readonly Tensor[];
  /** Values the kernel returns, in order. */
  readonly outputs: readonly Tensor[];
  /** Output names for `io: 'separate'` (default: the values' local names). */
  readonly outputNames?: readonly string[];
  /** Names values travel under in the ports' segments (graph outputs keep the user's name). */
  readonly sourceNames?: ReadonlyMap<Tensor, string>;
  /** For reports and messages. */
  readonly name?: string;
}

export interface LowerOptions {
  /** Chip family whose rules apply (default 'M4'). */
  chip?: ChipFamily;
  /** 'ios18' (default): program(1.3); 'ios16': program(1.0) for older chips. */
  dialect?: Dialect;
  /** buildInfo entries (default: the fixed dict maderix/ANE and the corpus use). */
  buildInfo?: readonly (readonly [string, string])[];
  /** 'packed' (default): one input and one output; 'separate': a parameter per value. */
  io?: IoMode;
  /** Treat warnings as errors. */
  strict?: boolean;
  /** Magnitude bounds of user-graph values (the partitioner passes them for kernel inputs). */
  bounds?: ReadonlyMap<Tensor, number | undefined>;
}

export interface ConstraintWarning {
  readonly ruleId: string;
  readonly op: string;
  readonly node: string;
  readonly message: string;
}

export interface LoweredKernel {
  readonly name: string;
  /** MIL text, weights and I/O specs: what a device compiles. */
  readonly program: Program;
  /** The AST the text was printed from. */
  readonly ast: MilProgram;
  /** Content hash of `program`: equal for identical kernels. */
  readonly hash: string;
  /** What each input holds (packing) and each output returns. */
  readonly inputs: readonly KernelPort[];
  readonly outputs: readonly KernelPort[];
  readonly warnings: readonly ConstraintWarning[];
  /** Frozen weights without data, emitted as zeros. */
  readonly placeholders: readonly string[];
  /** Floating-point operations of one evaluation (2 per multiply-add). */
  readonly flops: number;
  /** How many times each rewrite fired. */
  readonly rewrites: ReadonlyMap<string, number>;
}

/** Lowers, checks and prints one kernel. Throws `ConstraintError` (or `ShapeError`). */
export function lowerKernel(definition: KernelDefinition, options: LowerOptions = {}): LoweredKernel {
  return lower(definition, options, 'throw').kernel!;
}

export interface KernelCheckResult {
  readonly errors: readonly ConstraintError[];
  readonly warnings: readonly ConstraintWarning[];
}

/** Runs the constraint checker on a kernel and returns every violation instead of throwing. */
export function checkKernel(definition: KernelDefinition, options: LowerOptions = {}): KernelCheckResult {
  try {
    const result = lower(definition, options, 'collect');
    return { errors: result.errors, warnings: result.warnings };
  } catch (error) {
    if (error instanceof ConstraintError) return { errors: [error], warnings: [] };
    throw error;
  }
}

/** Lowers every op node of `graph` that its outputs need as one kernel returning the graph's outputs. */
export function lowerGraph(graph: Graph, options: LowerOptions = {}): LoweredKernel {
  if (graph.outputs.length === 0)
    throw new IrError('lowerGraph: the graph has no outputs (call graph.output)');
  const outputs = graph.outputs.map((o) => o.tensor);
  const nodes = liveNodes(outputs).filter(
    (n) => n.op.kind !== 'input' && n.op.kind !== 'param' && n.op.kind !== 'constant',
  );
  const sourceNames = new Map(graph.outputs.map((o) => [o.tensor, o.name] as const));
  return lowerKernel({ nodes, outputs, outputNames: graph.outputs.map((o) => o.name), sourceNames }, options);
}

interface LowerResult {
  kernel: LoweredKernel | undefined;
  errors: ConstraintError[];
  warnings: ConstraintWarning[];
}

function isSource(node: Tensor): boolean {
  return node.op.kind === 'input' || node.op.kind === 'param' || node.op.kind === 'constant';
}

/** The values a kernel reads from outside and returns, with their consumers inside. */
export function boundaryOf(definition: KernelDefinition): Boundary {
  const nodes = [...new Set(definition.nodes.filter((n) => !isSource(n)))].sort((a, b) => a.id - b.id);
  const inside = new Set(nodes);
  const inputs: Tensor[] = [];
  const consumers = new Map<Tensor, Tensor[]>();
  const addInput = (value: Tensor) => {
    if (inside.has(value) || isConstantLike(value)) return;
    if (!inputs.includes(value)) inputs.push(value);
  };
  for (const node of nodes) {
    for (const input of node.inputs) {
      addInput(input);
      const list = consumers.get(input) ?? [];
      list.push(node);
      consumers.set(input, list);
    }
  }
  for (const output of definition.outputs) addInput(output);
  return {
    inputs,
    outputs: definition.outputs,
    consumers,
    ...(definition.outputNames !== undefined ? { outputNames: definition.outputNames } : {}),
    ...(definition.sourceNames !== undefined ? { sourceNames: definition.sourceNames } : {}),
  };
}

function lower(definition: KernelDefinition, options: LowerOptions, mode: 'throw' | 'collect'): LowerResult {
  const chip = options.chip ?? DEFAULT_CHIP;
  const dialect = options.dialect ?? 'ios18';
  const io = options.io ?? 'packed';
  const name = definition.name ?? 'kernel';
  const errors: ConstraintError[] = [];
  const warnings: ConstraintWarning[] = [];
  const report = (violation: {
    ruleId: string;
    severity: 'error' | 'warning';
    op: string;
    node: string;
    detail: string;
    symptom?: string;
    message: string;
  }) => {
    if (violation.severity === 'error' || options.strict) {
      const error = new ConstraintError(
        violation.ruleId,
        { op: violation.op, node: violation.node },
        violation.detail,
        chip,
        violation.symptom !== undefined ? { symptom: violation.symptom } : {},
      );
      if (mode === 'throw') throw error;
      errors.push(error);
    } else {
      warnings.push({
        ruleId: violation.ruleId,
        op: violation.op,
        node: violation.node,
        message: violation.message,
      });
    }
  };

  if (definition.outputs.length === 0) throw new IrError(`kernel '${name}': no outputs`);
  const boundary = boundaryOf(definition);

  // 1. The kernel graph as the user built it, boundary values as placeholders; the rules a graph shows.
  const extracted = extract(definition, boundary, options.bounds);
  const graphNodes = liveNodes(extracted.kernel.outputs);
  const bounds = computeBounds(graphNodes);
  for (const violation of checkKernelRules(
    { chip, graph: graphNodes, lowered: [], bounds, inputs: [], outputs: [] },
    'graph',
  )) {
    report(violation);
  }
  if (errors.length > 0) return { kernel: undefined, errors, warnings };
  const plan = planIo(boundary, io, chip);
  const withOutputs = packOutputs(extracted.kernel, plan);

  // 2. Packing, 3. rewrites.
  const stats: RewriteStats = new Map();
  const packed = rewriteGraph(withOutputs, [packWeightsIntoInput(plan, extracted.placeholders)], stats);
  const lowered = rewriteGraph(packed, LOWERING_RULES, stats);

  // 4. IR rules, layout, MIL rules.
  const loweredNodes = liveNodes(lowered.outputs);
  for (const violation of checkKernelRules(
    { chip, graph: graphNodes, lowered: loweredNodes, bounds, inputs: plan.inputs, outputs: plan.outputs },
    'lowered',
  )) {
    report(violation);
  }
  // The MIL text holds log's epsilon already rounded to fp16, where a vanished one no longer shows.
  for (const node of loweredNodes) {
    if (node.op.kind !== 'unary' || node.op.fn !== 'log' || node.dtype !== 'fp16') continue;
    const epsilon = node.op.epsilon;
    if (epsilon === 0 || roundToFp16(epsilon) !== 0) continue;
    const rule = getRule('num-eps-underflow');
    const subject = { op: 'log', node: node.meta.origin ?? node.name };
    const detail = `log's epsilon ${epsilon} rounds to 0 in fp16`;
    report({
      ruleId: rule.id,
      severity: ruleSeverity(rule),
      ...subject,
      detail,
      message: formatConstraintMessage(rule, subject, detail, chip),
    });
  }
  if (errors.length > 0) return { kernel: undefined, errors, warnings };

  const builder = new MilBuilder(dialect);
  const scratch = new Graph();
  const params = plan.inputs.map((port) => {
    const node =
      loweredNodes.find((n) => n.op.kind === 'input' && n.meta.label === port.spec.name) ??
      scratch.add(
        { kind: 'input' },
        [],
        { name: port.spec.name },
        { shape: port.logicalShape, dtype: port.spec.dtype },
      );
    return { node, name: port.spec.name };
  });
  const outputs = plan.outputs.map((port, i) => ({ node: lowered.outputs[i]!, name: port.spec.name }));
  const layout = layoutKernel(builder, params, outputs, chip);
  const built = builder.build(layout.returns, {
    dialect,
    ...(options.buildInfo !== undefined ? { buildInfo: options.buildInfo } : {}),
  });

  const originByName = new Map<string, string>();
  for (const [value, valueName] of built.names)
    originByName.set(valueName, (value as MilValue).origin ?? valueName);
  for (const violation of checkProgramRules(built.program, { chip, weights: built.weights })) {
    const node =
      violation.subject === undefined ? name : (originByName.get(violation.subject) ?? violation.subject);
    const rule = getRule(violation.ruleId);
    const end = violation.message.lastIndexOf(`: ${lowerFirst(rule.symptom)}`);
    const detail = (end < 0 ? violation.message : violation.message.slice(0, end)).replace(
      / \(op '[^']*'\)$/,
      '',
    );
    report({
      ruleId: violation.ruleId,
      severity: violation.severity,
      op: violation.op ?? 'program',
      node,
      detail,
      message: violation.message,
    });
  }
  if (errors.length > 0) return { kernel: undefined, errors, warnings };

  try {
    validateProgram(built.program, { weights: built.weights });
  } catch (error) {
    if (error instanceof MilError) {
      throw new IrError(
        `internal error: kernel '${name}' lowered to MIL that does not validate: ${error.message}`,
      );
    }
    throw error;
  }
  const program: Program = {
    mil: printProgram(built.program),
    weights: built.weights,
    inputs: plan.inputs.map((p) => p.spec),
    outputs: plan.outputs.map((p) => p.spec),
  };
  const kernel: LoweredKernel = {
    name,
    program,
    ast: built.program,
    hash: hashProgram(program),
    inputs: plan.inputs,
    outputs: plan.outputs,
    warnings,
    placeholders: layout.placeholders,
    flops: countFlops(graphNodes),
    rewrites: stats,
  };
  return { kernel, errors, warnings };
}

interface Extracted {
  readonly kernel: KernelGraph;
  /** Placeholder node -> the boundary value it stands for. */
  readonly placeholders: ReadonlyMap<Tensor, Tensor>;
}

/** Copies the kernel's nodes into a fresh graph; boundary values become inputs and params. */
function extract(
  definition: KernelDefinition,
  boundary: Boundary,
  bounds: ReadonlyMap<Tensor, number | undefined> | undefined,
): Extracted {
  const graph = new Graph();
  const mapped = new Map<Tensor, Tensor>();
  const placeholders = new Map<Tensor, Tensor>();
  for (const value of boundary.inputs) {
    const bound =
      bounds?.get(value) ??
      (value.op.kind === 'input' || value.op.kind === 'param' ? value.op.maxAbs : undefined);
    const op: Op =
      value.op.kind === 'param' && value.op.trainable
        ? { kind: 'param', trainable: true, ...(bound !== undefined ? { maxAbs: bound } : {}) }
        : { kind: 'input', ...(bound !== undefined ? { maxAbs: bound } : {}) };
    const node = graph.add(
      op,
      [],
      { name: value.name, meta: { origin: value.name } },
      { shape: value.shape, dtype: value.dtype },
    );
    mapped.set(value, node);
    placeholders.set(node, value);
  }
  const copy = (node: Tensor): Tensor => {
    const done = mapped.get(node);
    if (done !== undefined) return done;
    const inputs = node.inputs.map(copy);
    const meta: NodeMeta = { origin: node.name };
    const result = graph.add(
      node.op,
      inputs,
      { name: node.name, meta, composites: node.composites },
      { shape: node.shape, dtype: node.dtype },
    );
    mapped.set(node, result);
    return result;
  };
  const nodes = [...definition.nodes].sort((a, b) => a.id - b.id);
  for (const node of nodes) copy(node);
  const outputs = definition.outputs.map(copy);
  return { kernel: { graph, outputs }, placeholders };
}

/** Several values, one output: the "forward taps" concat. */
function packOutputs(kernel: KernelGraph, plan: IoPlan): KernelGraph {
  const segments = plan.outputs[0]?.segments ?? [];
  if (plan.outputs.length !== 1 || segments.length < 2) return kernel;
  const axis = segments[0]!.axis === 'channel' ? 0 : 1;
  const concat = kernel.graph.add({ kind: 'concat', axis }, kernel.outputs, {
    name: 'outputs',
    meta: { label: 'y' },
  });
  return { graph: kernel.graph, outputs: [concat] };
}

/**
 * The packing rewrite: each boundary value becomes a slice of its kernel input (a transposed slice
 * for weights staged `[in, out]`); several outputs become one concat.
 */
function packWeightsIntoInput(plan: IoPlan, placeholders: ReadonlyMap<Tensor, Tensor>): RewriteRule {
  return {
    name: 'pack-weights-into-input',
    apply(node, context) {
      if (node.op.kind !== 'input' && node.op.kind !== 'param') return null;
      const value = placeholders.get(node.original);
      const placement = value === undefined ? undefined : plan.placements.get(value);
      if (placement === undefined) return null;
      const port = plan.inputs[placement.port]!;
      const { segment } = placement;
      const role = segment.role;
      // Weights keep their local names (`wq`); activations are named by position (`in0`), so kernels
      // of different layers print the same text.
      const activationIndex = port.segments.filter((seg) => seg.role === 'activation').indexOf(segment);
      const label = role === 'weight' ? node.original.localName : `in${activationIndex}`;
      let portNode = context.graph.nodes.find(
        (n) => n.op.kind === 'input' && n.meta.label === port.spec.name,
      );
      if (portNode === undefined) {
        const meta: NodeMeta = {
          origin: port.spec.name,
          label: port.spec.name,
          ...(segment.axis === 'whole' ? { packed: { role, source: segment.source } } : {}),
        };
        portNode = context.graph.add(
          { kind: 'input' },
          [],
          { name: `${port.spec.name}`, meta },
          {
            shape: port.logicalShape,
            dtype: port.spec.dtype,
          },
        );
      }
      const packedMeta: NodeMeta = { packed: { role, source: segment.source }, origin: segment.source };
      let staged: Tensor;
      if (segment.axis === 'whole') staged = portNode;
      else {
        const [channels, width] = port.logicalShape as [number, number];
        const begin = segment.axis === 'channel' ? [segment.offset, 0] : [0, segment.offset];
        const size = segment.axis === 'channel' ? [segment.extent, width] : [channels, segment.extent];
        staged = context.emit(node, { kind: 'slice', begin, size }, [portNode], {
          suffix: 'packed',
          label: segment.transposed ? `${label}_t` : label,
          meta: packedMeta,
        });
      }
      if (segment.transposed) {
        return context.emit(node, { kind: 'transpose', perm: [1, 0] }, [staged], {
          label,
          meta: { origin: segment.source },
        });
      }
      if (staged.rank !== node.shape.length) {
        return context.emit(node, { kind: 'reshape', shape: node.shape }, [staged], {
          label,
          meta: { origin: segment.source },
        });
      }
      return staged;
    },
  };
}

/** Floating-point operations of one evaluation: 2 per multiply-add, 1 per elementwise result. */
export function countFlops(nodes: readonly Tensor[]): number {
  let flops = 0;
  for (const node of nodes) {
    const op = node.op;
    switch (op.kind) {
      case 'matmul': {
        const x = node.inputs[0]!;
        const k = op.transposeX ? x.shape[x.rank - 2]! : x.shape[x.rank - 1]!;
        flops += 2 * node.size * k;
        break;
      }
      case 'conv': {
        const w = node.inputs[1]!;
        flops += 2 * node.size * w.shape[1]! * w.shape[2]! * w.shape[3]!;
        break;
      }
      case 'unary':
      case 'binary':
      case 'compare':
      case 'select':
      case 'cast':
        flops += node.size;
        break;
      case 'reduce':
        flops += node.inputs[0]!.size;
        break;
      case 'softmax':
        flops += 5 * node.size;
        break;
      default:
        break;
    }
  }
  return flops;
}
