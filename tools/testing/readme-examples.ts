/**
 * Runs the TypeScript examples of a package README the way a user would: each ```ts block is
 * transpiled and run as an ES module from the package directory, so imports resolve through the
 * package's own `exports`. A line ending in `// prints: <text>` is a promise about stdout: the
 * printed lines must equal those texts, in order.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { transformSync } from 'esbuild';
import { describe, expect, it } from 'vitest';

interface Example {
  code: string;
  line: number;
}

function extractExamples(markdown: string): Example[] {
  const examples: Example[] = [];
  const fence = /^```ts\n([\s\S]*?)^```/gm;
  for (const match of markdown.matchAll(fence)) {
    examples.push({ code: match[1]!, line: markdown.slice(0, match.index).split('\n').length });
  }
  return examples;
}

function promisedOutput(code: string): string[] {
  return [...code.matchAll(/\/\/ prints: (.*)$/gm)].map((m) => m[1]!.trim());
}

export function describeReadmeExamples(packageDir: string): void {
  const examples = extractExamples(readFileSync(join(packageDir, 'README.md'), 'utf8'));
  describe('README examples', () => {
    it('has at least one example', () => expect(examples.length).toBeGreaterThan(0));
    for (const example of examples) {
      it(`the example at README.md:${example.line} runs and prints what it says`, () => {
        const { code } = transformSync(example.code, { loader: 'ts', format: 'esm', target: 'node20' });
        const stdout = execFileSync(process.execPath, ['--input-type=module', '-e', code], {
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
