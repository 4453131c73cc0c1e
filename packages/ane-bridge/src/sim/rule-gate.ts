/**
 * The rule table's static checks as the simulator's compile gate. A violation of severity 'error'
 * refuses the program with a CompileError naming the rule: for 'compile-reject' rules that is what
 * the ANE compiler does; for rules where the hardware would run the program but compute something
 * else (or fail at run time), refusing is the only faithful answer a simulator that cannot
 * reproduce the garbage can give. Warnings are returned for the executable to carry.
 */
import type { ChipFamily, MilProgram, Program, RuleViolation } from 'ane-ir/mil';
import { checkProgramRules, getRule } from 'ane-ir/mil';
import { CompileError } from '../errors';

/** Throws a CompileError for the first error-severity violation; returns the warnings. */
export function checkRulesForChip(parsed: MilProgram, program: Program, chip: ChipFamily): RuleViolation[] {
  const violations = checkProgramRules(parsed, { chip, weights: program.weights });
  const errors = violations.filter((violation) => violation.severity === 'error');
  const first = errors[0];
  if (first !== undefined) throw compileErrorFor(first, errors.length);
  return violations;
}

function compileErrorFor(violation: RuleViolation, errorCount: number): CompileError {
  const rule = getRule(violation.ruleId);
  const preface =
    rule.kind === 'compile-reject'
      ? `the ANE compiler for ${violation.chip} refuses this program`
      : `the ANE (${violation.chip}) would run this program but ${rule.kind === 'runtime-failure' ? 'fail at run time' : 'compute something else than the MIL says'}, so the simulator refuses it`;
  const more =
    errorCount > 1
      ? ` (${errorCount - 1} more rule violation${errorCount > 2 ? 's' : ''} after this one)`
      : '';
  return new CompileError(`${preface}: ${violation.message}${more}`, {
    ruleId: violation.ruleId,
    line: violation.position.line,
    column: violation.position.column,
  });
}
