/**
 * Loads the native addon, or explains why the pure-TS fallbacks are in use. Never throws: a missing
 * or broken addon is a reason in the result, shown by `ane doctor`.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { findPackageRoot } from './package-root';

/** Bumped whenever the addon's exports change shape; a stale build is then refused, not misused. */
export const NATIVE_ABI_VERSION = 1;

export type SimdLevel = 'avx512' | 'avx2-fma' | 'neon' | 'scalar';

export interface NativeCapabilities {
  simdLevel: SimdLevel;
  cpu: { avx2: boolean; fma: boolean; f16c: boolean; avx512f: boolean; neon: boolean };
  /** Present only in macOS arm64 builds. */
  aneFramework: { loaded: boolean; classesFound: boolean; detail: string } | null;
}

export interface NativeAddon {
  abiVersion: number;
  capabilities(): NativeCapabilities;
}

export type NativeLoadResult =
  | { implementation: 'native'; addon: NativeAddon; path: string; reason: string }
  | { implementation: 'ts'; addon: null; reason: string; fix: string };

export interface NativeLoadOptions {
  /** Use the TS fallbacks even when the addon is built (env ANE_BRIDGE_FORCE_TS=1). */
  forceTs?: boolean;
  /** Load this `.node` file instead of the package's build (env ANE_BRIDGE_NATIVE_PATH). */
  nativePath?: string;
  /** Where to look for build/ (default: this package). */
  packageRoot?: string;
}

export function nativeLoadOptionsFromEnv(env: NodeJS.ProcessEnv = process.env): NativeLoadOptions {
  const options: NativeLoadOptions = {};
  if (env.ANE_BRIDGE_FORCE_TS === '1') options.forceTs = true;
  if (env.ANE_BRIDGE_NATIVE_PATH) options.nativePath = env.ANE_BRIDGE_NATIVE_PATH;
  return options;
}

const REBUILD_HINT =
  'then run `pnpm rebuild ane-bridge` (inside the ane-sdk repository: `pnpm --filter ane-bridge rebuild`; npm: `npm rebuild ane-bridge`) and check with `npx ane doctor`';

interface InstallReport {
  status: 'built' | 'failed' | 'skipped';
  reason: string;
  log?: string;
}

function readInstallReport(packageRoot: string): InstallReport | undefined {
  try {
    return JSON.parse(readFileSync(join(packageRoot, 'build', 'ane-bridge-install.json'), 'utf8'));
  } catch {
    return undefined;
  }
}

function explainMissingBuild(packageRoot: string): { reason: string; fix: string } {
  const report = readInstallReport(packageRoot);
  if (report?.status === 'failed') {
    const toolchain =
      process.platform === 'darwin'
        ? 'install the Xcode command-line tools (`xcode-select --install`)'
        : 'install a C++ toolchain and Python (Debian/Ubuntu: `apt-get install g++ make python3`)';
    return {
      reason: `the native build failed during install: ${report.reason}`,
      fix: `${toolchain}, ${REBUILD_HINT}`,
    };
  }
  if (report?.status === 'skipped') {
    return {
      reason: `the native build was skipped: ${report.reason}`,
      fix: `unset ANE_BRIDGE_SKIP_BUILD, ${REBUILD_HINT}`,
    };
  }
  return {
    reason:
      'the native addon was never built: its install script did not run (pnpm 10 runs dependency build scripts only when allowed, and --ignore-scripts skips them all)',
    fix: `with pnpm, allow the build: add "ane-bridge" to onlyBuiltDependencies in pnpm-workspace.yaml (or run \`pnpm approve-builds\`), ${REBUILD_HINT}`,
  };
}

function requireAddon(file: string): NativeAddon {
  return createRequire(import.meta.url)(file) as NativeAddon;
}

function resolveBuiltAddon(packageRoot: string): string | undefined {
  const nodeGypBuild = createRequire(import.meta.url)('node-gyp-build') as { path(dir: string): string };
  try {
    return nodeGypBuild.path(packageRoot);
  } catch {
    return undefined;
  }
}

export function loadNativeAddon(options: NativeLoadOptions = nativeLoadOptionsFromEnv()): NativeLoadResult {
  if (options.forceTs) {
    return {
      implementation: 'ts',
      addon: null,
      reason: 'the TypeScript fallbacks were requested (ANE_BRIDGE_FORCE_TS=1)',
      fix: 'unset ANE_BRIDGE_FORCE_TS to use the native addon',
    };
  }
  const packageRoot = options.packageRoot ?? findPackageRoot();
  const file = options.nativePath ?? resolveBuiltAddon(packageRoot);
  if (file === undefined) return { implementation: 'ts', addon: null, ...explainMissingBuild(packageRoot) };
  if (options.nativePath !== undefined && !existsSync(file)) {
    return {
      implementation: 'ts',
      addon: null,
      reason: `ANE_BRIDGE_NATIVE_PATH points at ${file}, which does not exist`,
      fix: 'point ANE_BRIDGE_NATIVE_PATH at a built ane_bridge.node, or unset it',
    };
  }
  let addon: NativeAddon;
  try {
    addon = requireAddon(file);
  } catch (error) {
    return {
      implementation: 'ts',
      addon: null,
      reason: `the native addon at ${file} failed to load: ${(error as Error).message.split('\n')[0]}`,
      fix: `it was probably built for another Node version or platform; ${REBUILD_HINT}`,
    };
  }
  if (addon.abiVersion !== NATIVE_ABI_VERSION) {
    return {
      implementation: 'ts',
      addon: null,
      reason: `the native addon at ${file} is stale (ABI ${String(addon.abiVersion)}, this package needs ${NATIVE_ABI_VERSION})`,
      fix: REBUILD_HINT.replace(/^then /, ''),
    };
  }
  const how =
    options.nativePath !== undefined ? 'loaded from ANE_BRIDGE_NATIVE_PATH' : 'loaded the package build';
  return { implementation: 'native', addon, path: file, reason: how };
}

let cached: NativeLoadResult | undefined;

/** The process-wide addon load result (loaded once, on first use). */
export function nativeAddon(): NativeLoadResult {
  cached ??= loadNativeAddon();
  return cached;
}
