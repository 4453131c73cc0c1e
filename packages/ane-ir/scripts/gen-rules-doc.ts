/**
 * Generates packages/ane-ir/RULES.md from the rule table in src/mil/rules.ts.
 *
 * The test in src/mil/rules.test.ts fails when RULES.md is stale; regenerate with
 *   UPDATE_RULES_DOC=1 npx vitest run src/mil/rules      (from packages/ane-ir)
 * or, where tsx is installed, `npx tsx scripts/gen-rules-doc.ts`.
 */
import { writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  ANE_RULES,
  type AneRule,
  CHIP_FAMILIES,
  IR_ONLY_SOURCE,
  isIrOnlyRule,
  type RuleEnforcement,
  type RuleKind,
  ruleSeverity,
} from '../src/mil/rules';

export const RULES_DOC_PATH = join(dirname(fileURLToPath(import.meta.url)), '..', 'RULES.md');

const KINDS: readonly RuleKind[] = [
  'compile-reject',
  'silent-hardware-behaviour',
  'runtime-failure',
  'performance',
  'advice',
];
const ENFORCEMENTS: readonly RuleEnforcement[] = ['mil-check', 'simulator', 'ir', 'documented'];

const ENFORCEMENT_MEANING: Readonly<Record<RuleEnforcement, string>> = {
  'mil-check': 'a static check on the parsed MIL program (`checkProgramRules`, `src/mil/rule-checks.ts`)',
  simulator: 'the simulator reproduces the hardware behaviour at run time (`ane-bridge` sim device)',
  ir: "the graph IR's constraint checker or lowering passes",
  documented: 'no program-visible condition this code can check or emulate; documentation only',
};

/** Table cell text: pipes escaped, no line breaks. */
function cell(text: string): string {
  return text.replace(/\|/g, '\\|').replace(/\s*\n\s*/g, ' ');
}

function chipsOf(rule: AneRule): string {
  const chips = rule.chips === 'all' ? 'all' : rule.chips.join(', ');
  return rule.chipNote === undefined ? chips : `${chips} (${rule.chipNote})`;
}

function limitOf(rule: AneRule): string {
  if (rule.limit === undefined) return '';
  if (typeof rule.limit === 'number') return String(rule.limit);
  const limits = rule.limit;
  return CHIP_FAMILIES.map((chip) => `${chip}: ${limits[chip]}`).join(', ');
}

function countBy<K extends string>(keys: readonly K[], of: (rule: AneRule) => K): string {
  return keys.map((key) => `${key} ${ANE_RULES.filter((r) => of(r) === key).length}`).join(', ');
}

export function renderRulesMarkdown(): string {
  const lines: string[] = [
    '# ANE rules',
    '',
    '<!-- Generated from src/mil/rules.ts by scripts/gen-rules-doc.ts. Do not edit by hand:',
    '     UPDATE_RULES_DOC=1 npx vitest run src/mil/rules -->',
    '',
    `Every known rule for MIL programs on the Apple Neural Engine, from \`reference/ane-quirks.md\`, as`,
    `\`ANE_RULES\` in \`ane-ir/mil\` records it: ${ANE_RULES.length} rules, of which ${ANE_RULES.filter(isIrOnlyRule).length} are`,
    `IR-only (source \`${IR_ONLY_SOURCE}\`: rules about graphs and kernels that no MIL text shows).`,
    '',
    `- By kind: ${countBy(KINDS, (r) => r.kind)}.`,
    `- By enforcement: ${countBy(ENFORCEMENTS, (r) => r.enforcement)}.`,
    '',
    'Enforcement:',
    '',
    ...ENFORCEMENTS.map((e) => `- \`${e}\`: ${ENFORCEMENT_MEANING[e]}.`),
    '',
    'Severity: `error` refuses the program (compile rejections, runtime failures, silent wrong results);',
    '`warning` reports performance, advice and unconfirmed claims. Chips "all" means every family,',
    'M1 (A13) to M5 (A16); the note says where a rule was measured when that is narrower.',
    '',
    '## What the simulator reproduces',
    '',
    '| id | what the simulator does |',
    '|---|---|',
    ...ANE_RULES.filter((r) => r.enforcement === 'simulator').map(
      (r) => `| \`${r.id}\` | ${cell(r.emulation ?? '')} |`,
    ),
    '',
    '## All rules',
    '',
    '| id | condition | chips | kind | severity | enforcement | limit | symptom | fix | conflict | source |',
    '|---|---|---|---|---|---|---|---|---|---|---|',
  ];
  for (const rule of ANE_RULES) {
    lines.push(
      `| \`${rule.id}\`<br>${cell(rule.title)} | ${cell(rule.condition)} | ${cell(chipsOf(rule))} | ${rule.kind} | ${ruleSeverity(rule)} | ${rule.enforcement} | ${cell(limitOf(rule))} | ${cell(rule.symptom)} | ${cell(rule.fix)} | ${cell(rule.conflict ?? '')} | ${cell(rule.source)} |`,
    );
  }
  lines.push('');
  return lines.join('\n');
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  writeFileSync(RULES_DOC_PATH, renderRulesMarkdown());
}
