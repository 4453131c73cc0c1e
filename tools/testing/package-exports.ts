/**
 * Checks a package's built entry points the way consumers load them: by package name (Node's
 * self-reference goes through the `exports` map), from an ESM `import` and a CJS `require`.
 */
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';

function loadExportNames(packageDir: string, specifier: string, system: 'esm' | 'cjs'): string[] {
  const script =
    system === 'esm'
      ? `const m = await import(${JSON.stringify(specifier)}); console.log(JSON.stringify(Object.keys(m)));`
      : `const m = require(${JSON.stringify(specifier)}); console.log(JSON.stringify(Object.keys(m)));`;
  const args = system === 'esm' ? ['--input-type=module', '-e', script] : ['-e', script];
  const stdout = execFileSync(process.execPath, args, { cwd: packageDir, encoding: 'utf8' });
  return JSON.parse(stdout) as string[];
}

/** For each `specifier -> names`, both module systems must load it and see at least those names. */
export function describePackageExports(packageDir: string, expected: Record<string, string[]>): void {
  describe('package exports', () => {
    for (const [specifier, names] of Object.entries(expected)) {
      for (const system of ['esm', 'cjs'] as const) {
        it(`${specifier} loads from ${system === 'esm' ? 'an ESM import' : 'a CJS require'}`, () => {
          const exported = loadExportNames(packageDir, specifier, system);
          for (const name of names) expect(exported).toContain(name);
        });
      }
    }
  });
}
