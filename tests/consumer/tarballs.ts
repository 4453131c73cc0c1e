/**
 * The published packages as tarballs: which workspace packages are public, packing them the way
 * `pnpm publish` does (workspace: ranges rewritten), unpacking them, and checks on what they hold.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, posix, relative, sep } from 'node:path';

export interface Manifest {
  name: string;
  version: string;
  private?: boolean;
  exports?: Record<string, unknown>;
  dependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
}

export function readManifest(dir: string): Manifest {
  return JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as Manifest;
}

/** The directories of the workspace packages that are published (not `private`). */
export function publicPackageDirs(workspaceRoot: string): string[] {
  const packagesDir = join(workspaceRoot, 'packages');
  return readdirSync(packagesDir)
    .map((name) => join(packagesDir, name))
    .filter((dir) => statSync(join(dir, 'package.json'), { throwIfNoEntry: false })?.isFile())
    .filter((dir) => readManifest(dir).private !== true);
}

/** The specifiers a consumer can import: one per `exports` subpath (not `./package.json`). */
export function entrySpecifiers(manifest: Manifest): string[] {
  return Object.keys(manifest.exports ?? { '.': {} })
    .filter((subpath) => subpath !== './package.json' && !subpath.includes('*'))
    .map((subpath) => (subpath === '.' ? manifest.name : `${manifest.name}${subpath.slice(1)}`));
}

export interface RunResult {
  status: number | null;
  output: string;
}

export function run(command: string, args: string[], cwd: string, env = process.env): RunResult {
  const result = spawnSync(command, args, { cwd, env, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  if (result.error) throw result.error;
  return { status: result.status, output: `${result.stdout}${result.stderr}`.trim() };
}

export function runOrThrow(command: string, args: string[], cwd: string, env = process.env): string {
  const result = run(command, args, cwd, env);
  if (result.status !== 0) {
    throw new Error(
      `\`${command} ${args.join(' ')}\` in ${cwd} exited with ${result.status}:\n${result.output}`,
    );
  }
  return result.output;
}

/** pnpm as the running `pnpm test` found it, else the one on PATH. */
function pnpmCommand(): [string, string[]] {
  const execPath = process.env.npm_execpath;
  if (execPath && /pnpm(\.c?js)?$/.test(execPath)) {
    return /\.c?js$/.test(execPath) ? [process.execPath, [execPath]] : [execPath, []];
  }
  return ['pnpm', []];
}

/** Packs one package with `pnpm pack` into `destination`; returns the tarball's path. */
export function pack(packageDir: string, destination: string): string {
  mkdirSync(destination, { recursive: true });
  const [command, prefix] = pnpmCommand();
  const output = runOrThrow(
    command,
    [...prefix, 'pack', '--json', '--pack-destination', destination],
    packageDir,
  );
  const report = JSON.parse(output.slice(output.indexOf('{'))) as { filename: string };
  return report.filename;
}

/** Unpacks a tarball into `destination`; returns the package root (npm tarballs hold `package/`). */
export function unpack(tarball: string, destination: string): string {
  mkdirSync(destination, { recursive: true });
  runOrThrow('tar', ['-xzf', tarball, '-C', destination], destination);
  return join(destination, 'package');
}

/** Every file under `root`, as POSIX paths relative to it. */
export function filesUnder(root: string): string[] {
  const files: string[] = [];
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else files.push(relative(root, path).split(sep).join('/'));
    }
  };
  walk(root);
  return files.sort();
}

/** Resolves `target` against the file `from` (both package-relative); undefined when it leaves the package. */
function resolveInside(from: string, target: string): string | undefined {
  const resolved = posix.normalize(posix.join(posix.dirname(from), target));
  return resolved.startsWith('../') || resolved === '..' || posix.isAbsolute(target) ? undefined : resolved;
}

/**
 * Source maps that point at what the tarball does not hold: a `.map` whose `sources` are not
 * shipped files (a copy in `sourcesContent` does not count: that is the bulk a map should not add)
 * and a `sourceMappingURL` comment naming a missing map.
 */
export function sourceMapProblems(root: string, files: readonly string[]): string[] {
  const shipped = new Set(files);
  const problems: string[] = [];
  for (const file of files) {
    if (file.endsWith('.map')) {
      const map = JSON.parse(readFileSync(join(root, file), 'utf8')) as {
        sources?: string[];
        sourceRoot?: string;
      };
      const missing = (map.sources ?? []).filter((source) => {
        const path = resolveInside(file, posix.join(map.sourceRoot ?? '', source));
        return path === undefined || !shipped.has(path);
      });
      if (missing.length > 0) {
        const listed = missing.slice(0, 3).join(', ') + (missing.length > 3 ? ', ...' : '');
        problems.push(`${file}: ${missing.length} of its sources are not in the tarball (${listed})`);
      }
    } else if (/\.(c|m)?js$|\.d\.(c|m)?ts$/.test(file)) {
      const text = readFileSync(join(root, file), 'utf8');
      const url = [...text.matchAll(/^\/\/[#@] sourceMappingURL=(\S+)\s*$/gm)].at(-1)?.[1];
      if (url === undefined || url.startsWith('data:')) continue;
      const path = resolveInside(file, decodeURI(url));
      if (path === undefined || !shipped.has(path)) {
        problems.push(`${file}: sourceMappingURL ${url} is not in the tarball`);
      }
    }
  }
  return problems;
}

/** Relative link targets of a shipped Markdown file that do not resolve to a shipped file. */
export function brokenLinks(
  markdownFile: string,
  targets: readonly string[],
  files: readonly string[],
): string[] {
  const shipped = new Set(files);
  return targets
    .filter((target) => {
      const path = resolveInside(markdownFile, target);
      return path === undefined || !shipped.has(path.replace(/\/$/, ''));
    })
    .map((target) => `${markdownFile}: ${target}`);
}
