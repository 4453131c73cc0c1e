/**
 * The packages as a new user gets them. Every public workspace package is packed with `pnpm pack`
 * (so `workspace:` ranges are rewritten as on publish); the tarballs' contents are checked (README
 * links, source maps, manifests); then they are installed with plain npm into a fresh consumer
 * outside the workspace, which a strict TypeScript type-checks (module nodenext, no skipLibCheck,
 * an ES module file and a CommonJS .cts file) and which imports and requires every entry point.
 *
 * ANE_CONSUMER_TARBALLS=<dir> checks the tarballs in <dir> instead of packing the workspace;
 * ANE_CONSUMER_KEEP=1 keeps the temporary directory (its path is printed).
 */
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { relativeLinkTargets } from './links';
import {
  brokenLinks,
  entrySpecifiers,
  filesUnder,
  type Manifest,
  pack,
  publicPackageDirs,
  readManifest,
  run,
  runOrThrow,
  sourceMapProblems,
  unpack,
} from './tarballs';

const workspaceRoot = fileURLToPath(new URL('../../', import.meta.url));
const fixtures = fileURLToPath(new URL('./fixtures/', import.meta.url));
const givenTarballs = process.env.ANE_CONSUMER_TARBALLS;
const workspacePackages = publicPackageDirs(workspaceRoot).map((dir) => ({
  dir,
  manifest: readManifest(dir),
}));

interface Packed {
  tarball: string;
  root: string;
  manifest: Manifest;
  files: string[];
}

const work = mkdtempSync(join(tmpdir(), 'ane-consumer-'));
const packed = new Map<string, Packed>();

beforeAll(() => {
  const tarballs = givenTarballs
    ? readdirSync(givenTarballs)
        .filter((name) => name.endsWith('.tgz'))
        .map((name) => join(givenTarballs, name))
    : workspacePackages.map(({ dir }) => pack(dir, join(work, 'tarballs')));
  for (const [index, tarball] of tarballs.entries()) {
    const root = unpack(tarball, join(work, 'unpacked', String(index)));
    const manifest = readManifest(root);
    packed.set(manifest.name, { tarball, root, manifest, files: filesUnder(root) });
  }
});

afterAll(() => {
  if (process.env.ANE_CONSUMER_KEEP === '1') console.log(`consumer test directory kept: ${work}`);
  else rmSync(work, { recursive: true, force: true });
});

function packedOrFail(name: string): Packed {
  const found = packed.get(name);
  if (!found) throw new Error(`no tarball of ${name} was packed (or found in ANE_CONSUMER_TARBALLS)`);
  return found;
}

describe('the tarballs', () => {
  it('exist for every public workspace package', () => {
    expect([...packed.keys()].sort()).toEqual(workspacePackages.map(({ manifest }) => manifest.name).sort());
  });

  for (const { manifest } of workspacePackages) {
    describe(manifest.name, () => {
      it('has no workspace: ranges left in its manifest', () => {
        const { manifest: shipped } = packedOrFail(manifest.name);
        const ranges = {
          ...shipped.dependencies,
          ...shipped.peerDependencies,
          ...shipped.optionalDependencies,
        };
        expect(Object.entries(ranges).filter(([, range]) => range.startsWith('workspace:'))).toEqual([]);
      });

      it('has a README whose relative links (and those of every shipped .md) resolve to shipped files', () => {
        const { root, files } = packedOrFail(manifest.name);
        expect(files).toContain('README.md');
        const broken = files
          .filter((file) => file.endsWith('.md'))
          .flatMap((file) =>
            brokenLinks(file, relativeLinkTargets(readFileSync(join(root, file), 'utf8')), files),
          );
        expect(
          broken,
          'link to https://github.com/ane-sdk/ane-sdk/blob/main/... or add the file to "files"',
        ).toEqual([]);
      });

      it('ships source maps only together with the sources they point at', () => {
        const { root, files } = packedOrFail(manifest.name);
        expect(sourceMapProblems(root, files)).toEqual([]);
      });
    });
  }
});

/** npm with the environment of a user's shell, not the `pnpm run` that started this test. */
function userEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, ANE_BRIDGE_SKIP_BUILD: '1' };
  for (const key of Object.keys(env)) {
    const kept = /^npm_config_(registry|cache|(https?_|no)?proxy|cafile|strict_ssl)$/i.test(key);
    if (/^npm_/i.test(key) && !kept) delete env[key];
  }
  return env;
}

/** The version the workspace itself installed of a tool, so npm finds it in its cache. */
function workspaceVersion(name: string): string {
  const require = createRequire(import.meta.url);
  return (JSON.parse(readFileSync(require.resolve(`${name}/package.json`), 'utf8')) as Manifest).version;
}

describe('a fresh npm consumer of the tarballs', () => {
  const consumer = join(work, 'consumer');
  let specifiers: string[] = [];

  beforeAll(() => {
    mkdirSync(consumer, { recursive: true });
    cpSync(fixtures, consumer, { recursive: true });
    const dependencies: Record<string, string> = {
      typescript: workspaceVersion('typescript'),
      '@types/node': workspaceVersion('@types/node'),
    };
    for (const [name, { tarball }] of packed) dependencies[name] = `file:${tarball}`;
    writeFileSync(
      join(consumer, 'package.json'),
      `${JSON.stringify({ name: 'consumer', private: true, type: 'module', dependencies }, null, 2)}\n`,
    );
    specifiers = [...packed.values()].flatMap(({ manifest }) => entrySpecifiers(manifest));
    writeEntryFiles(consumer, specifiers);
    runOrThrow(
      'npm',
      ['install', '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error', '--no-package-lock'],
      consumer,
      userEnv(),
    );
    // A dependency range the tarballs do not satisfy makes npm fetch that package from the
    // registry instead: every package must be the single, top-level copy from its tarball.
    for (const name of packed.keys()) {
      for (const other of packed.keys()) {
        if (existsSync(join(consumer, 'node_modules', name, 'node_modules', other))) {
          throw new Error(
            `npm installed a second ${other} under ${name}: its range does not match the tarball`,
          );
        }
      }
    }
  });

  const tsc = (project: string) =>
    run(
      process.execPath,
      [join(consumer, 'node_modules/typescript/bin/tsc'), '-p', project, '--pretty', 'false'],
      consumer,
    );

  it('type-checks in strict nodenext, ESM and CJS, with @types/node found on its own', () => {
    const { status, output } = tsc('tsconfig.json');
    expect(output.split('\n').filter(Boolean)).toEqual([]);
    expect(status).toBe(0);
  });

  it('type-checks with `types: []` and the disposable lib: the declarations reference what they use', () => {
    const { status, output } = tsc('tsconfig.explicit-types.json');
    expect(output.split('\n').filter(Boolean)).toEqual([]);
    expect(status).toBe(0);
  });

  for (const system of ['esm', 'cjs'] as const) {
    it(`${system === 'esm' ? 'imports' : 'requires'} every entry point and runs an AdamW step`, () => {
      const script = system === 'esm' ? 'runtime.mjs' : 'runtime.cjs';
      const output = runOrThrow(process.execPath, [script], consumer, userEnv());
      const result = JSON.parse(output.split('\n').at(-1)!) as {
        loaded: Record<string, { exports: number; version: unknown }>;
        adamw: string;
      };
      expect(Object.keys(result.loaded).sort()).toEqual([...specifiers].sort());
      for (const [name, { manifest }] of packed) {
        expect(result.loaded[name]?.version, `${name}'s version export`).toBe(manifest.version);
      }
      for (const [specifier, { exports }] of Object.entries(result.loaded)) {
        expect(exports, `${specifier} exports`).toBeGreaterThan(0);
      }
      // AdamW, lr 0.1, weight decay 0.1, first step on p = 1, g = 0.5: p·(1 − 0.01) − 0.1·m̂/(√v̂ + ε)
      // with m̂ = 0.5, √v̂ = 0.5, so 0.99 − 0.1 = 0.89.
      expect(result.adamw).toBe('0.8900');
    });
  }

  for (const system of ['esm', 'cjs'] as const) {
    it(`hands device work over to a worker process over the compile budget, from ${system === 'esm' ? 'import' : 'require'}`, () => {
      // A budget just above one plan's programs and two sequence lengths: the installed package must
      // find and fork its own worker entry, and the worker must train exactly as this process does.
      const script = system === 'esm' ? 'handover.mjs' : 'handover.cjs';
      const output = runOrThrow(process.execPath, [script], consumer, userEnv());
      const result = JSON.parse(output.split('\n').at(-1)!) as {
        handOvers: number;
        where: string[];
        loss: number[];
        freeHandOvers: number;
        freeLoss: number[];
      };
      expect(result.handOvers).toBeGreaterThan(0);
      expect(result.where).toContain('worker');
      expect(result.freeHandOvers).toBe(0);
      expect(result.loss).toHaveLength(4);
      expect(result.loss).toEqual(result.freeLoss);
    }, 120_000);
  }

  it('trains on a text file, writes its report and ends with a sample (node_modules/.bin/ane-train)', () => {
    const dir = join(consumer, 'cli-run');
    mkdirSync(dir, { recursive: true });
    writeFileSync(
      join(dir, 'story.txt'),
      'The cat sat on the mat and looked at the little bird. '.repeat(40),
    );
    const output = runOrThrow(
      join(consumer, 'node_modules', '.bin', 'ane-train'),
      [
        'train',
        '--data',
        'story.txt',
        '--steps',
        '3',
        '--seq',
        '16',
        '--batch',
        '2',
        '--eval-every',
        '3',
        '--eval-batches',
        '1',
        '--sample-tokens',
        '4',
        '--backend',
        'sim',
        '--out',
        'run',
      ],
      dir,
      userEnv(),
    );
    expect(output).toMatch(/^step 3\/3 {2}loss /m);
    expect(output).toContain('A sample (prompt "Once upon a time")');
    for (const file of [
      'metrics.jsonl',
      'loss.svg',
      'report.html',
      'run.json',
      'checkpoints/latest.safetensors',
    ])
      expect(existsSync(join(dir, 'run', file)), file).toBe(true);
  }, 120_000);
});

/**
 * entries.ts / entries.cts import every entry point, so a subpath added later is type-checked too;
 * runtime.mjs / runtime.cjs load each one and run one optimizer step through ane-bridge's kernels.
 */
function writeEntryFiles(dir: string, specifiers: readonly string[]): void {
  const names = specifiers.map((_, index) => `entry${index}`);
  writeFileSync(
    join(dir, 'entries.ts'),
    `${specifiers.map((s, i) => `import * as ${names[i]} from '${s}';`).join('\n')}\n` +
      `export const entries: readonly object[] = [${names.join(', ')}];\n`,
  );
  writeFileSync(
    join(dir, 'entries.cts'),
    `${specifiers.map((s, i) => `import ${names[i]} = require('${s}');`).join('\n')}\n` +
      `export = [${names.join(', ')}];\n`,
  );
  const adamw =
    'const params = { w: new Float32Array([1]) };\n' +
    'new AdamW({ learningRate: 0.1, weightDecay: 0.1 }).update(params, { w: new Float32Array([0.5]) });\n' +
    'console.log(JSON.stringify({ loaded, adamw: params.w[0].toFixed(4) }));\n';
  writeFileSync(
    join(dir, 'runtime.mjs'),
    `const loaded = {};\nfor (const specifier of ${JSON.stringify(specifiers)}) {\n` +
      '  const entry = await import(specifier);\n' +
      '  loaded[specifier] = { exports: Object.keys(entry).length, version: entry.version ?? null };\n}\n' +
      "const { AdamW } = await import('ane-optim');\n" +
      adamw,
  );
  writeFileSync(
    join(dir, 'runtime.cjs'),
    `const loaded = {};\nfor (const specifier of ${JSON.stringify(specifiers)}) {\n` +
      '  const entry = require(specifier);\n' +
      '  loaded[specifier] = { exports: Object.keys(entry).length, version: entry.version ?? null };\n}\n' +
      "const { AdamW } = require('ane-optim');\n" +
      adamw,
  );
}
