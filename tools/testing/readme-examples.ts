/**
 * Runs the examples of a package README the way a user would, from the package directory, so
 * imports resolve through the package's own `exports`:
 *
 * - each ```ts block is TypeScript: transpiled (esbuild, target node20: `using` is lowered) and run
 *   as an ES module;
 * - each ```js block is plain JavaScript: run as an ES module exactly as written, with no
 *   transpiling, on the Node running the tests (the oldest supported, Node 20, in CI), so a JS user
 *   can paste it. Syntax Node 20 cannot parse (`using`, type annotations) fails the test.
 *
 * A line ending in `// prints: <text>` is a promise about stdout: the printed lines must equal those
 * texts, in order. ```ts signature (or any other info string) is not run.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { transformSync } from 'esbuild';
import { describe, expect, it } from 'vitest';

export interface ReadmeExample {
  language: 'ts' | 'js';
  code: string;
  line: number;
}

export function extractExamples(markdown: string): ReadmeExample[] {
  const examples: ReadmeExample[] = [];
  const fence = /^```(ts|js)\n([\s\S]*?)^```/gm;
  for (const match of markdown.matchAll(fence)) {
    examples.push({
      language: match[1] as 'ts' | 'js',
      code: match[2]!,
      line: markdown.slice(0, match.index).split('\n').length,
    });
  }
  return examples;
}

function promisedOutput(code: string): string[] {
  return [...code.matchAll(/\/\/ prints: (.*)$/gm)].map((m) => m[1]!.trim());
}

/** The module text Node runs: TypeScript transpiled for Node 20, JavaScript untouched. */
export function runnableCode(example: ReadmeExample): string {
  if (example.language === 'js') return example.code;
  return transformSync(example.code, { loader: 'ts', format: 'esm', target: 'node20' }).code;
}

export function describeReadmeExamples(packageDir: string): void {
  const examples = extractExamples(readFileSync(join(packageDir, 'README.md'), 'utf8'));
  describe('README examples', () => {
    it('has at least one example', () => expect(examples.length).toBeGreaterThan(0));
    for (const example of examples) {
      const kind = example.language === 'js' ? 'JavaScript example (run as written)' : 'example';
      it(`the ${kind} at README.md:${example.line} runs and prints what it says`, () => {
        const stdout = execFileSync(process.execPath, ['--input-type=module', '-e', runnableCode(example)], {
          cwd: packageDir,
          encoding: 'utf8',
          env: { ...process.env, NODE_NO_WARNINGS: '1' },
        });
        const promised = promisedOutput(example.code);
        if (promised.length > 0)
          expect(
            stdout
              .trim()
              .split('\n')
              .map((l) => l.trim()),
          ).toEqual(promised);
      });
    }
  });
}
