/**
 * Loads the native addon, or explains why the pure-TS fallbacks are in use. Never throws: a missing
 * or broken addon is a reason in the result, shown by `ane doctor`.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import type { NativeAne } from '../ane/native-ane';
import type { HostKernels, SgemmArgs } from '../kernels/types';
import { findPackageRoot } from './package-root';

/** Bumped whenever the addon's exports change shape; a stale build is then refused, not misused. */
export const NATIVE_ABI_VERSION = 3;

export type SimdLevel = 'avx512' | 'avx2-fma' | 'neon' | 'scalar';

export interface NativeCapabilities {
  /** The SIMD path the host kernels take: the CPU's best unless narrowed with kernels.setSimdLevel. */
  simdLevel: SimdLevel;
  /** Threads of the host-kernel pool, the calling thread included (every build since ABI 2 reports it). */
  hostThreads?: number;
  cpu: { avx2: boolean; fma: boolean; f16c: boolean; avx512f: boolean; neon: boolean };
  /** Present only in macOS arm64 builds. */
  aneFramework: { loaded: boolean; classesFound: boolean; detail: string } | null;
}

export interface NativeAddon {
  abiVersion: number;
  capabilities(): NativeCapabilities;
  /**
   * The host kernels (native/kernels/napi_kernels.cc); src/kernels/native.ts is the typed face.
   * Every build since ABI 2 has them; optional only so that test doubles of the addon may leave them out.
   */
  kernels?: NativeKernelBindings;
  /**
   * The Neural Engine device (native/ane/ane_addon.h): present in macOS arm64 builds, `null`
   * elsewhere. Optional only so that test doubles of the addon may leave it out.
   */
  ane?: NativeAne | null;
}

type Sync<Args extends unknown[], Result = void> = (...args: Args) => Result;

/**
 * The addon's raw kernel exports: each `name` runs synchronously and `nameAsync` returns a Promise
 * and runs off the JS thread. Arguments are positional and already validated by src/kernels.
 */
export interface NativeKernelBindings {
  sgemm: Sync<SgemmArgs>;
  sgemmAsync: Sync<SgemmArgs, Promise<void>>;
  fp32ToFp16: Sync<ToHalfArgs>;
  fp32ToFp16Async: Sync<ToHalfArgs, Promise<void>>;
  fp16ToFp32: Sync<ToFloatArgs>;
  fp16ToFp32Async: Sync<ToFloatArgs, Promise<void>>;
  sgdUpdate: Sync<SgdArgs>;
  sgdUpdateAsync: Sync<SgdArgs, Promise<void>>;
  adamUpdate: Sync<AdamArgs>;
  adamUpdateAsync: Sync<AdamArgs, Promise<void>>;
  lionUpdate: Sync<LionArgs>;
  lionUpdateAsync: Sync<LionArgs, Promise<void>>;
  sumOfSquares: Sync<[x: Float32Array], number>;
  sumOfSquaresAsync: Sync<[x: Float32Array], Promise<number>>;
  rmsnormForward: Sync<RmsnormForwardArgs>;
  rmsnormForwardAsync: Sync<RmsnormForwardArgs, Promise<void>>;
  rmsnormBackward: Sync<RmsnormBackwardArgs>;
  rmsnormBackwardAsync: Sync<RmsnormBackwardArgs, Promise<void>>;
  softmaxCrossEntropyForward: Sync<CrossEntropyForwardArgs>;
  softmaxCrossEntropyForwardAsync: Sync<CrossEntropyForwardArgs, Promise<void>>;
  softmaxCrossEntropyBackward: Sync<CrossEntropyBackwardArgs>;
  softmaxCrossEntropyBackwardAsync: Sync<CrossEntropyBackwardArgs, Promise<void>>;
  embeddingForward: Sync<EmbeddingArgs>;
  embeddingForwardAsync: Sync<EmbeddingArgs, Promise<void>>;
  embeddingBackward: Sync<EmbeddingArgs>;
  embeddingBackwardAsync: Sync<EmbeddingArgs, Promise<void>>;
  causalSoftmaxForward: Sync<CausalForwardArgs>;
  causalSoftmaxForwardAsync: Sync<CausalForwardArgs, Promise<void>>;
  causalSoftmaxBackward: Sync<CausalBackwardArgs>;
  causalSoftmaxBackwardAsync: Sync<CausalBackwardArgs, Promise<void>>;
  hostThreads(): number;
  /** 0 restores the default (the CPUs this process may use, or ANE_BRIDGE_THREADS). Returns the new size. */
  setHostThreads(threads: number): number;
  simdLevel(): SimdLevel;
  bestSimdLevel(): SimdLevel;
  /** False (and no change) when this CPU cannot run that path. */
  setSimdLevel(level: SimdLevel): boolean;
}

type ToHalfArgs = [
  src: Float32Array,
  srcOffset: number,
  srcRowStride: number,
  dst: Uint16Array,
  dstOffset: number,
  dstRowStride: number,
  rows: number,
  cols: number,
  saturate: boolean,
];
type ToFloatArgs = [
  src: Uint16Array,
  srcOffset: number,
  srcRowStride: number,
  dst: Float32Array,
  dstOffset: number,
  dstRowStride: number,
  rows: number,
  cols: number,
];
type SgdArgs = [
  params: Float32Array,
  grads: Float32Array,
  momentumBuffer: Float32Array | null,
  negLr: number,
  weightDecay: number,
  momentum: number,
  oneMinusDampening: number,
  nesterov: boolean,
  firstStep: boolean,
  fp16Out: Uint16Array | null,
];
type AdamArgs = [
  params: Float32Array,
  grads: Float32Array,
  m: Float32Array,
  v: Float32Array,
  negStepSize: number,
  biasCorrection2Sqrt: number,
  oneMinusBeta1: number,
  beta2: number,
  oneMinusBeta2: number,
  eps: number,
  l2: number,
  decay: number,
  fp16Out: Uint16Array | null,
];
type LionArgs = [
  params: Float32Array,
  grads: Float32Array,
  m: Float32Array,
  decay: number,
  negLr: number,
  beta1: number,
  oneMinusBeta1: number,
  beta2: number,
  oneMinusBeta2: number,
  fp16Out: Uint16Array | null,
];
// The row-wise kernels take the public arguments unchanged (kernels/types.ts).
type RmsnormForwardArgs = Parameters<HostKernels['rmsnormForward']>;
type RmsnormBackwardArgs = Parameters<HostKernels['rmsnormBackward']>;
type CrossEntropyForwardArgs = Parameters<HostKernels['softmaxCrossEntropyForward']>;
type CrossEntropyBackwardArgs = Parameters<HostKernels['softmaxCrossEntropyBackward']>;
type EmbeddingArgs = Parameters<HostKernels['embeddingForward']>;
type CausalForwardArgs = Parameters<HostKernels['causalSoftmaxForward']>;
type CausalBackwardArgs = Parameters<HostKernels['causalSoftmaxBackward']>;

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
