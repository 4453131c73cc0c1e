import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { RULES_DOC_PATH, renderRulesMarkdown } from '../../scripts/gen-rules-doc';
import { RULE_CHECKS } from './rule-checks';
import {
  ANE_RULES,
  CHIP_FAMILIES,
  chipAtLeast,
  DEFAULT_CHIP,
  getRule,
  IR_ONLY_SOURCE,
  isIrOnlyRule,
  MIL_CHECKED_RULE_IDS,
  ruleAppliesTo,
  ruleLimit,
  ruleSeverity,
  SIMULATED_RULE_IDS,
} from './rules';

// The project's reference, beside the repository (absent in a plain clone: those tests then skip).
const QUIRKS_PATH = join(__dirname, '../../../../../shared/reference/ane-quirks.md');
const withReference = existsSync(QUIRKS_PATH) ? it : it.skip;
const REFERENCE_NOTE = ` (skipped when ${QUIRKS_PATH} is absent)`;

/** The rows of the reference table: id -> row text. */
function referenceRows(): Map<string, string> {
  const rows = new Map<string, string>();
  for (const line of readFileSync(QUIRKS_PATH, 'utf8').split('\n')) {
    const match = /^\| `([a-z0-9]+\.[a-z0-9-]+)` \|/.exec(line);
    if (match) rows.set(match[1]!, line);
  }
  return rows;
}

describe('the rule table', () => {
  it('has unique, stable kebab-case ids derived from the reference ids', () => {
    const ids = ANE_RULES.map((r) => r.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const rule of ANE_RULES) {
      expect(rule.id).toMatch(/^[a-z0-9]+(-[a-z0-9]+)*$/);
      expect(rule.id).toBe(rule.referenceId.replace('.', '-'));
    }
  });

  it('fills every descriptive field', () => {
    for (const rule of ANE_RULES) {
      for (const field of ['title', 'condition', 'symptom', 'fix', 'source'] as const) {
        expect(rule[field].trim(), `${rule.id}.${field}`).not.toBe('');
      }
      if (isIrOnlyRule(rule)) expect(rule.source, rule.id).toMatch(/^ane-ir \(IR-only\): \S/);
      else expect(rule.source, rule.id).toContain(`reference/ane-quirks.md \`${rule.referenceId}\``);
      expect(rule.symptom, rule.id).toMatch(/\.$/);
      expect(rule.fix, rule.id).toMatch(/\.$/);
      if (rule.chips !== 'all') expect(rule.chips.length, rule.id).toBeGreaterThan(0);
    }
  });

  withReference(`holds every rule of reference/ane-quirks.md and nothing else${REFERENCE_NOTE}`, () => {
    const reference = referenceRows();
    expect(reference.size).toBe(108);
    const fromReference = ANE_RULES.filter((r) => !isIrOnlyRule(r));
    expect(fromReference.map((r) => r.referenceId).sort()).toEqual([...reference.keys()].sort());
  });

  it('marks the rules only the graph IR can see, and enforces them in the IR', () => {
    const irOnly = ANE_RULES.filter(isIrOnlyRule);
    expect(irOnly.length).toBeGreaterThan(0);
    for (const rule of irOnly) {
      expect(rule.referenceId, rule.id).toMatch(/^ir\.[a-z0-9-]+$/);
      expect(rule.source.startsWith(IR_ONLY_SOURCE), rule.id).toBe(true);
      expect(rule.enforcement, rule.id).toBe('ir');
    }
  });

  withReference(`marks a conflict exactly where the reference says CONFLICT${REFERENCE_NOTE}`, () => {
    const reference = referenceRows();
    for (const rule of ANE_RULES.filter((r) => !isIrOnlyRule(r))) {
      const referenceHasConflict = reference.get(rule.referenceId)!.includes('CONFLICT');
      expect(rule.conflict !== undefined, rule.id).toBe(referenceHasConflict);
    }
  });

  it('records the rules the issue names', () => {
    expect(getRule('op-runtime-weight-conv')).toMatchObject({
      kind: 'compile-reject',
      enforcement: 'mil-check',
    });
    expect(getRule('op-sdpa-mil')).toMatchObject({
      kind: 'silent-hardware-behaviour',
      enforcement: 'simulator',
    });
    expect(getRule('num-fp16-range')).toMatchObject({ limit: 65504, enforcement: 'simulator' });
    expect(getRule('num-matmul-output-inf')).toMatchObject({ limit: 32752, enforcement: 'simulator' });
    expect(getRule('dtype-fp32-io-in-memory')).toMatchObject({
      chips: ['M1', 'M2'],
      enforcement: 'mil-check',
    });
  });

  it('finds rules by either id and refuses unknown ones', () => {
    expect(getRule('op.sdpa-mil')).toBe(getRule('op-sdpa-mil'));
    expect(() => getRule('op-nonexistent')).toThrow("unknown ANE rule 'op-nonexistent'");
  });

  it('answers chip questions', () => {
    expect(DEFAULT_CHIP).toBe('M4');
    expect(CHIP_FAMILIES).toEqual(['M1', 'M2', 'M3', 'M4', 'M5']);
    expect(chipAtLeast('M3', 'M3')).toBe(true);
    expect(chipAtLeast('M2', 'M3')).toBe(false);
    const fp32Io = getRule('dtype-fp32-io-in-memory');
    expect(CHIP_FAMILIES.filter((chip) => ruleAppliesTo(fp32Io, chip))).toEqual(['M1', 'M2']);
    expect(CHIP_FAMILIES.every((chip) => ruleAppliesTo(getRule('op-runtime-weight-conv'), chip))).toBe(true);
    expect(ruleLimit(getRule('dim-spatial'), 'M3')).toBe(16384);
    expect(ruleLimit(getRule('dim-spatial'), 'M4')).toBe(65536);
    expect(ruleLimit(getRule('op-nan'), 'M4')).toBeUndefined();
  });

  it('derives severity from kind unless a rule overrides it', () => {
    expect(ruleSeverity(getRule('op-runtime-weight-conv'))).toBe('error');
    expect(ruleSeverity(getRule('perf-sram'))).toBe('warning');
    expect(ruleSeverity(getRule('op-matmul-k32-claim'))).toBe('warning');
  });
});

describe('the rule table and the code do not drift apart', () => {
  it('every mil-check rule has a registered check, and every check names a mil-check rule', () => {
    const registered = [...RULE_CHECKS.keys()].sort();
    expect(registered).toEqual([...MIL_CHECKED_RULE_IDS].sort());
    for (const id of registered) expect(getRule(id).enforcement).toBe('mil-check');
  });

  it('exports the simulated rules, each with what the simulator must do', () => {
    expect(SIMULATED_RULE_IDS).toEqual(
      ANE_RULES.filter((r) => r.enforcement === 'simulator').map((r) => r.id),
    );
    expect(SIMULATED_RULE_IDS.length).toBeGreaterThan(0);
    for (const rule of ANE_RULES) {
      expect(rule.emulation !== undefined, rule.id).toBe(rule.enforcement === 'simulator');
    }
  });

  it('gives every limit-reading rule a limit on every chip', () => {
    const limited = ANE_RULES.filter((r) => r.limit !== undefined);
    for (const rule of limited) {
      for (const chip of CHIP_FAMILIES)
        expect(ruleLimit(rule, chip), `${rule.id} on ${chip}`).toBeGreaterThan(0);
    }
  });

  it('keeps RULES.md in step with the table (UPDATE_RULES_DOC=1 rewrites it)', () => {
    const rendered = renderRulesMarkdown();
    if (process.env.UPDATE_RULES_DOC === '1') writeFileSync(RULES_DOC_PATH, rendered);
    expect(
      existsSync(RULES_DOC_PATH),
      'RULES.md is missing: run UPDATE_RULES_DOC=1 npx vitest run src/mil/rules',
    ).toBe(true);
    expect(
      readFileSync(RULES_DOC_PATH, 'utf8') === rendered,
      'RULES.md is stale: run UPDATE_RULES_DOC=1 npx vitest run src/mil/rules',
    ).toBe(true);
  });
});
