import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { SIMULATED_RULE_IDS } from 'ane-ir/mil';
import { describe, expect, it } from 'vitest';

const readme = readFileSync(join(import.meta.dirname, '..', 'README.md'), 'utf8');

describe('README', () => {
  it('documents every simulated hardware behaviour of the rule table', () => {
    for (const id of SIMULATED_RULE_IDS) expect(readme, id).toContain(`| \`${id}\` |`);
  });
});
