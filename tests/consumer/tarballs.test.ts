import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { brokenLinks, entrySpecifiers, filesUnder, sourceMapProblems } from './tarballs';

const root = mkdtempSync(join(tmpdir(), 'ane-tarball-checks-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

function write(path: string, text: string): void {
  mkdirSync(dirname(join(root, path)), { recursive: true });
  writeFileSync(join(root, path), text);
}

describe('entrySpecifiers', () => {
  it('names one specifier per exports subpath, leaving out ./package.json', () => {
    const manifest = {
      name: 'ane-ir',
      version: '1.0.0',
      exports: { '.': {}, './mil': {}, './package.json': '' },
    };
    expect(entrySpecifiers(manifest)).toEqual(['ane-ir', 'ane-ir/mil']);
  });
});

describe('brokenLinks', () => {
  const files = ['README.md', 'RULES.md', 'docs/guide.md', 'package.json'];

  it('accepts links to shipped files, from the file that holds them', () => {
    expect(brokenLinks('README.md', ['RULES.md', './docs/guide.md'], files)).toEqual([]);
    expect(brokenLinks('docs/guide.md', ['../RULES.md'], files)).toEqual([]);
  });

  it('reports missing files, folders and anything outside the package', () => {
    expect(brokenLinks('README.md', ['CHANGELOG.md', 'docs/', '../ane-ir', '/etc/passwd'], files)).toEqual([
      'README.md: CHANGELOG.md',
      'README.md: docs/',
      'README.md: ../ane-ir',
      'README.md: /etc/passwd',
    ]);
  });
});

describe('sourceMapProblems', () => {
  write('pkg/dist/index.js', 'export {};\n//# sourceMappingURL=index.js.map\n');
  // What tsup wrote before: the map names ../src/index.ts and carries it in sourcesContent.
  write(
    'pkg/dist/index.js.map',
    JSON.stringify({
      version: 3,
      sources: ['../src/index.ts'],
      sourcesContent: ['export {};'],
      mappings: '',
    }),
  );
  write('pkg/dist/other.js', 'export {};\n//# sourceMappingURL=other.js.map\n');
  write('pkg/dist/inline.js', 'export {};\n//# sourceMappingURL=data:application/json;base64,e30=\n');
  write('pkg/dist/plain.cjs', 'module.exports = {};\n');
  write('shipped/src/index.ts', 'export {};\n');
  write(
    'shipped/dist/index.js.map',
    JSON.stringify({ version: 3, sources: ['../src/index.ts'], mappings: '' }),
  );

  it('reports maps whose sources are not shipped, even with sourcesContent, and dangling map comments', () => {
    const pkg = join(root, 'pkg');
    expect(sourceMapProblems(pkg, filesUnder(pkg))).toEqual([
      'dist/index.js.map: 1 of its sources are not in the tarball (../src/index.ts)',
      'dist/other.js: sourceMappingURL other.js.map is not in the tarball',
    ]);
  });

  it('accepts a map whose sources are shipped', () => {
    const shipped = join(root, 'shipped');
    expect(sourceMapProblems(shipped, filesUnder(shipped))).toEqual([]);
  });
});
