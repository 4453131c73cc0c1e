/**
 * The graph IR's constraint checks: one per rule of the rule table whose enforcement is 'ir' (the
 * reference rules only a graph shows, and the IR-only rules), keyed by rule id. A check reports
 * findings (which op, what is wrong); `checkKernelRules` turns them into violations whose message
 * also says what the hardware does and the fix, from the rule's own data. A few 'ir' rules are
 * enforced where the condition arises (a composite, the I/O planner); `IR_RULE_ENFORCEMENT` says where.
 */
import { formatConstraintMessage } from '../graph/errors';
import { opLabel, type Tensor } from '../graph/tensor';
import type { KernelPort } from '../lower/io';
import { physicalShape } from '../lower/layout';
import {
  ANE_RULES,
  type AneRule,
  type ChipFamily,
  getRule,
  type RuleSeverity,
  ruleAppliesTo,
  ruleLimit,
  ruleSeverity,
} from '../mil/rules';
import { type Bounds, sumOfSquaresOperand } from './bounds';

export interface IrCheckContext {
  readonly chip: ChipFamily;
  /** Live nodes of the kernel as the user built it (boundary values as inputs and params). */
  readonly graph: readonly Tensor[];
  /** Live nodes after packing and the lowering rewrites. */
  readonly lowered: readonly Tensor[];
  /** Magnitude bounds of `graph`. */
  readonly bounds: Bounds;
  readonly inputs: readonly KernelPort[];
  readonly outputs: readonly KernelPort[];
  readonly rule: AneRule;
}

export interface IrFinding {
  readonly op: string;
  readonly node: string;
  readonly detail: string;
  /** This finding's symptom, when it says more than the rule's (e.g. with the real dimension). */
  readonly symptom?: string;
}

export type IrCheck = (context: IrCheckContext) => IrFinding[];

/**
 * The composite kind of a weight gradient call (`dW = dY·Xᵀ`, a gain's or a bias's gradient: a sum
 * over every position of the batch), as ane-autograd tags it. The partitioner places these calls on
 * the host by default (rule `ir-weight-grad-host`).
 */
export const WEIGHT_GRAD_KIND = 'weight_grad';

export interface ConstraintViolation {
  readonly ruleId: string;
  readonly severity: RuleSeverity;
  readonly chip: ChipFamily;
  readonly op: string;
  readonly node: string;
  readonly detail: string;
  /** The finding's own symptom, if it has one (the message already includes it). */
  readonly symptom?: string;
  /** What is wrong (op and node), what the hardware does, the fix and the rule id. */
  readonly message: string;
}

function origin(node: Tensor): string {
  return node.meta.origin ?? node.name;
}

function at(node: Tensor, detail: string): IrFinding {
  return { op: opLabel(node.op), node: origin(node), detail };
}

function innermost(node: Tensor): string | undefined {
  const tag = node.composites[node.composites.length - 1];
  return tag === undefined ? undefined : `${tag.kind} '${tag.name}'`;
}

const WIDE_ROW = 16384;
const ATTENTION_TILE = 512;

function isRuntimeWeight(node: Tensor): boolean {
  if (node.op.kind === 'param' && node.op.trainable) return true;
  return node.op.kind === 'transpose' && isRuntimeWeight(node.inputs[0]!);
}

const checks: Record<string, IrCheck> = {
  'emit-wide-row-concat': ({ lowered }) => {
    const findings: IrFinding[] = [];
    for (const node of lowered) {
      if (node.op.kind !== 'concat' || node.inputs.length < 2) continue;
      const widths = new Set(node.inputs.map((input) => input.shape[input.rank - 1]));
      const wide = node.inputs.find(
        (input) =>
          input.op.kind === 'reshape' &&
          input.shape.slice(0, -1).every((d) => d === 1) &&
          input.shape[input.rank - 1]! > WIDE_ROW,
      );
      if (wide !== undefined && widths.size > 1) {
        findings.push(
          at(
            node,
            `concat joins '${origin(wide)}' reshaped into one row of ${wide.shape[wide.rank - 1]} (over ${WIDE_ROW}) with rows of other widths`,
          ),
        );
      }
    }
    return findings;
  },

  'dim-internal-extents': ({ lowered, chip }) => {
    const spatialCap = ruleLimit(getRule('dim-spatial'), chip)!;
    const channelCap = ruleLimit(getRule('dim-channel'), chip)!;
    const findings: IrFinding[] = [];
    for (const node of lowered) {
      const composite = innermost(node);
      if (composite === undefined || node.op.kind === 'input' || node.op.kind === 'param' || node.rank > 4)
        continue;
      const shape = physicalShape(node.shape);
      const over =
        shape[1]! > channelCap
          ? `channel axis ${shape[1]} > ${channelCap}`
          : shape[2]! > spatialCap || shape[3]! > spatialCap
            ? `spatial axis ${Math.max(shape[2]!, shape[3]!)} > ${spatialCap}`
            : undefined;
      if (over !== undefined) {
        findings.push(
          at(node, `an internal tensor of ${composite} is [${node.shape.join(', ')}] (${over} on ${chip})`),
        );
      }
    }
    return findings;
  },

  'op-rmsnorm-3matmul-fallback': ({ graph }) => {
    const norms = graph.filter((node) => sumOfSquaresOperand(node) !== undefined);
    const runtimeMatmuls = graph.filter(
      (node) => node.op.kind === 'matmul' && node.inputs.some((input) => isRuntimeWeight(input)),
    );
    if (norms.length === 0 || runtimeMatmuls.length < 3) return [];
    return [
      at(
        norms[0]!,
        `the kernel fuses a norm with ${runtimeMatmuls.length} runtime-weight matmuls (${runtimeMatmuls
          .slice(0, 3)
          .map((m) => `'${origin(m)}'`)
          .join(', ')}${runtimeMatmuls.length > 3 ? ', ...' : ''})`,
      ),
    ];
  },

  'io-layout': ({ inputs, outputs }) => {
    const findings: IrFinding[] = [];
    for (const port of [...inputs, ...outputs]) {
      const shape = port.spec.shape;
      const last = shape[shape.length - 1]!;
      const bytes = last * (port.spec.dtype === 'fp16' ? 2 : 4);
      const rows = shape.slice(0, -1).reduce((a, b) => a * b, 1);
      if (bytes <= 16 && rows > 1) {
        findings.push({
          op: 'io',
          node: port.spec.name,
          detail: `kernel I/O '${port.spec.name}' [${shape.join(', ')}] has a last axis of ${bytes} bytes under ${rows} rows (${64 / bytes}x padding)`,
        });
      }
    }
    return findings;
  },

  'perf-attention-tiles': ({ graph }) => {
    const findings: IrFinding[] = [];
    for (const node of graph) {
      if (node.op.kind !== 'softmax' || node.rank < 3) continue;
      const queries = node.shape[node.rank - 2]!;
      if (queries > ATTENTION_TILE && node.op.axis === node.rank - 1) {
        findings.push(
          at(
            node,
            `softmax over scores [${node.shape.join(', ')}] materializes ${queries} query rows at once (over ${ATTENTION_TILE})`,
          ),
        );
      }
    }
    return findings;
  },

  'ir-fp16-sum-of-squares': ({ graph, bounds, rule, chip }) => {
    const limit = ruleLimit(rule, chip)!;
    const findings: IrFinding[] = [];
    for (const node of graph) {
      const operand = sumOfSquaresOperand(node);
      if (operand === undefined) continue;
      const bound = bounds.get(operand);
      const count = node.inputs[0]!.size / node.size;
      // The rule's example dimension, replaced by this sum's: D squares reach the limit at RMS sqrt(limit / D).
      const symptom = rule.symptom.replace(
        /\(D = \d+ reaches (\d+) at an RMS of [\d.]+\)/,
        (_, max: string) =>
          `(D = ${count} reaches ${max} at an RMS of ${Number(Math.sqrt(Number(max) / count).toPrecision(3))})`,
      );
      if (bound === undefined) {
        findings.push({
          ...at(
            node,
            `sum of ${count} squares of '${origin(operand)}', which has no declared bound (maxAbs)`,
          ),
          symptom,
        });
      } else if (count * bound * bound > limit) {
        findings.push({
          ...at(
            node,
            `sum of ${count} squares of '${origin(operand)}' (|x| <= ${bound}) can reach ${count * bound * bound} > ${limit}`,
          ),
          symptom,
        });
      }
    }
    return findings;
  },

  'ir-fp16-range-bound': ({ graph, bounds, rule, chip }) => {
    const limit = ruleLimit(rule, chip)!;
    const findings: IrFinding[] = [];
    for (const node of graph) {
      if (node.op.kind === 'input' || node.op.kind === 'param' || node.op.kind === 'constant') continue;
      if (sumOfSquaresOperand(node) !== undefined) continue;
      if (node.dtype !== 'fp16') continue;
      const bound = bounds.get(node);
      if (bound !== undefined && bound > limit) {
        findings.push(
          at(node, `result can reach ${bound} given the declared input bounds (fp16 max ${limit})`),
        );
      }
    }
    return findings;
  },

  'ir-host-only-op': ({ graph }) =>
    graph.filter((node) => node.op.kind === 'gather').map((node) => at(node, 'gather has no ANE lowering')),

  'ir-weight-grad-host': ({ graph }) => {
    const findings: IrFinding[] = [];
    const seen = new Set<number>();
    for (const node of graph) {
      const call = node.composites.find((tag) => tag.kind === WEIGHT_GRAD_KIND);
      // The kernel graph is a copy: the call's result is found by name.
      if (call === undefined || seen.has(call.id) || call.result?.name !== node.name) continue;
      seen.add(call.id);
      findings.push(
        at(node, `weight gradient '${call.name}' [${node.shape.join(', ')}] accumulates in fp16 on the ANE`),
      );
    }
    return findings;
  },
};

/** Registered kernel checks, keyed by rule id (each names an 'ir' rule of `ANE_RULES`). */
export const IR_CHECKS: ReadonlyMap<string, IrCheck> = new Map(Object.entries(checks));

/**
 * Where each 'ir' rule is enforced: a kernel check of `IR_CHECKS`, or the place that refuses the
 * condition when it is built.
 */
export const IR_RULE_ENFORCEMENT: ReadonlyMap<string, string> = new Map([
  ...[...IR_CHECKS.keys()].map((id): [string, string] => [id, 'kernel check (check/ir-checks.ts)']),
  ['op-conv-transpose-stride', 'composite convTranspose2d (composites.ts)'],
  ['op-pool-vjp-envelope', 'composites avgPool and maxPool (composites.ts)'],
  ['rt-weights-as-inputs', 'kernel I/O planner (lower/io.ts)'],
  ['ir-single-io', 'kernel I/O planner (lower/io.ts)'],
]);

/** Checks that read the lowered kernel and its ports; the others read the graph as built. */
const LOWERED_CHECKS: ReadonlySet<string> = new Set([
  'emit-wide-row-concat',
  'dim-internal-extents',
  'io-layout',
]);

/**
 * Runs every kernel check whose rule applies to the chip; violations in rule-table order. Phase
 * 'graph' runs the checks that need only the graph (before packing); 'lowered' the rest.
 */
export function checkKernelRules(
  context: Omit<IrCheckContext, 'rule'>,
  phase: 'graph' | 'lowered' | 'all' = 'all',
): ConstraintViolation[] {
  const violations: ConstraintViolation[] = [];
  for (const rule of ANE_RULES) {
    const check = IR_CHECKS.get(rule.id);
    if (check === undefined || !ruleAppliesTo(rule, context.chip)) continue;
    if (phase !== 'all' && LOWERED_CHECKS.has(rule.id) !== (phase === 'lowered')) continue;
    for (const finding of check({ ...context, rule })) {
      violations.push({
        ruleId: rule.id,
        severity: ruleSeverity(rule),
        chip: context.chip,
        op: finding.op,
        node: finding.node,
        detail: finding.detail,
        ...(finding.symptom !== undefined ? { symptom: finding.symptom } : {}),
        message: formatConstraintMessage(
          rule,
          finding,
          finding.detail,
          context.chip,
          finding.symptom !== undefined ? { symptom: finding.symptom } : {},
        ),
      });
    }
  }
  return violations;
}
