/**
 * Typed errors of the graph IR. Every message says what was expected, what was found and what to do.
 */
import { type AneRule, type ChipFamily, getRule } from '../mil/rules';
import { formatShape } from './dtype';

/** Base class of every error the graph IR raises. */
export class IrError extends Error {
  override name = 'IrError';
}

/** An op whose operands do not fit: wrong shapes, ranks, axes or dtypes. */
export class ShapeError extends IrError {
  override name = 'ShapeError';
  constructor(
    /** The primitive, e.g. `matmul`. */
    readonly op: string,
    /** The node name the op would have had, e.g. `layers.0.attn.scores`. */
    readonly node: string,
    /** The operand shapes, in operand order. */
    readonly shapes: readonly (readonly number[])[],
    /** What is wrong, without the op and shapes. */
    readonly reason: string,
  ) {
    super(
      `${op} '${node}': ${reason} (operand shapes: ${shapes.map((shape) => formatShape(shape)).join(', ')})`,
    );
  }
}

/** Where a constraint violation was found. */
export interface ConstraintSubject {
  /** The graph op kind or MIL op type, e.g. `matmul`, `reduce_sum`. */
  readonly op: string;
  /** The node's name in the user's graph (or the kernel's value name). */
  readonly node: string;
}

/**
 * A kernel breaks a rule of the ANE rule table (`ANE_RULES` in ane-ir/mil). The message names the
 * op, what is wrong, what the hardware does and the fix, and ends with the rule id.
 */
export class ConstraintError extends IrError {
  override name = 'ConstraintError';
  readonly ruleId: string;
  readonly op: string;
  readonly node: string;
  readonly chip: ChipFamily;
  /** What is wrong, without the rule's symptom and fix. */
  readonly detail: string;

  /**
   * @param specifics the symptom and fix of this case, when they are more specific than the rule's
   *   own text (which they replace in the message): the real dimension, the call that works.
   */
  constructor(
    rule: AneRule | string,
    subject: ConstraintSubject,
    detail: string,
    chip: ChipFamily,
    specifics: ConstraintSpecifics = {},
  ) {
    const resolved = typeof rule === 'string' ? getRule(rule) : rule;
    super(formatConstraintMessage(resolved, subject, detail, chip, specifics));
    this.ruleId = resolved.id;
    this.op = subject.op;
    this.node = subject.node;
    this.chip = chip;
    this.detail = detail;
  }
}

export function lowerFirst(text: string): string {
  return /^[A-Z][a-z]/.test(text) ? text[0]!.toLowerCase() + text.slice(1) : text;
}

/** A violation's own symptom and fix, replacing the rule's generic text in the message. */
export interface ConstraintSpecifics {
  readonly symptom?: string;
  readonly fix?: string;
}

/** `<detail> (op 'matmul' 'attn.q'): <symptom> Fix: <fix> [ANE rule <id>, <chip>]` */
export function formatConstraintMessage(
  rule: AneRule,
  subject: ConstraintSubject,
  detail: string,
  chip: ChipFamily,
  { symptom = rule.symptom, fix = rule.fix }: ConstraintSpecifics = {},
): string {
  return `${detail} (op ${subject.op} '${subject.node}'): ${lowerFirst(symptom)} Fix: ${fix} [ANE rule ${rule.id}, ${chip}]`;
}
