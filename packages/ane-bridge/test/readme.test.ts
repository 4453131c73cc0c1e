import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { SIMULATED_RULE_IDS } from 'ane-ir/mil';
import { describe, expect, it } from 'vitest';
import { extractExamples, runnableCode } from '../../../tools/testing/readme-examples';

const readme = readFileSync(join(import.meta.dirname, '..', 'README.md'), 'utf8');

describe('README', () => {
  it('documents every simulated hardware behaviour of the rule table', () => {
    for (const id of SIMULATED_RULE_IDS) expect(readme, id).toContain(`| \`${id}\` |`);
  });
});

describe('the README example runner (tools/testing/readme-examples.ts)', () => {
  const markdown = [
    '```ts',
    '{ using held = { [Symbol.dispose]() { console.log("disposed"); } }; }',
    '```',
    '```js',
    '{ using held = { [Symbol.dispose]() { console.log("disposed"); } }; }',
    '```',
    '```ts signature',
    'openDevice(options?): Device',
    '```',
  ].join('\n');
  const run = (code: string) =>
    spawnSync(process.execPath, ['--input-type=module', '-e', code], { encoding: 'utf8' });
  const nodeParsesUsing = run('{ using held = null; }').status === 0;

  it('runs ```ts blocks transpiled for Node 20 and ```js blocks exactly as written', () => {
    const examples = extractExamples(markdown);
    expect(examples.map((e) => [e.language, e.line])).toEqual([
      ['ts', 1],
      ['js', 4],
    ]);
    const [ts, js] = examples;
    expect(runnableCode(js!)).toBe(js!.code);
    expect(run(runnableCode(ts!)).stdout).toBe('disposed\n');
  });

  it.skipIf(nodeParsesUsing)(
    `fails a \`\`\`js block that Node ${process.versions.node} cannot parse (skipped on a Node that parses using)`,
    () => {
      const js = extractExamples(markdown)[1]!;
      const result = run(runnableCode(js));
      expect(result.status).not.toBe(0);
      expect(result.stderr).toContain('SyntaxError');
    },
  );
});
