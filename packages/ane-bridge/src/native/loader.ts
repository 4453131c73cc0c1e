/**
 * Loads the native addon, or explains why the pure-TS fallbacks are in use. Never throws: a missing
 * or broken addon is a reason in the result, shown by `ane doctor`.
 */
import {
  closeSync,
  existsSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  type Stats,
  statSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { join, resolve as resolvePath } from 'node:path';
import type { NativeAne } from '../ane/native-ane';
import type { HostKernels, SgemmArgs } from '../kernels/types';
import { findPackageRoot } from './package-root';

/** Bumped whenever the addon's exports change shape; a stale build is then refused, not misused. */
export const NATIVE_ABI_VERSION = 7;

export type SimdLevel = 'avx512' | 'avx2-fma' | 'neon' | 'scalar';

export interface NativeCapabilities {
  /** The SIMD path the host kernels take: the CPU's best unless narrowed with kernels.setSimdLevel. */
  simdLevel: SimdLevel;
  /** Threads of the host-kernel pool, the calling thread included (every build since ABI 2 reports it). */
  hostThreads?: number;
  cpu: { avx2: boolean; fma: boolean; f16c: boolean; avx512f: boolean; neon: boolean };
  /**
   * The GEMM behind sgemm: 'accelerate' (Apple's, macOS arm64 builds) or 'ane-bridge' (ours,
   * whose results do not depend on operand layout); absent from builds before it was reported.
   */
  gemm?: 'accelerate' | 'ane-bridge';
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
  /**
   * The simulator's native ops (native/kernels/napi_sim_ops.cc); src/sim/native-ops.ts is the
   * typed face. Absent from builds before they existed: the simulator then runs its TS twins.
   */
  simOps?: NativeSimOpsBindings;
}

/** Positional, synchronous; the op codes and walks are planned by src/sim (see native-ops.ts). */
export interface NativeSimOpsBindings {
  binary(
    op: number,
    out: Float32Array,
    x: Float32Array,
    y: Float32Array,
    rows: number,
    inner: number,
    xStride: number,
    yStride: number,
    xRowOffsets: Int32Array,
    yRowOffsets: Int32Array,
    roundFp16: boolean,
  ): void;
  unary(op: number, out: Float32Array, x: Float32Array, epsilon: number, roundFp16: boolean): void;
  /** saturateAt: Infinity for none, else rounded |v| >= saturateAt become ±inf. */
  roundToFp16(data: Float32Array, saturateAt: number): void;
  saturateToInfinity(data: Float32Array, threshold: number, inclusive: boolean): void;
  gather<T extends Float32Array | Int32Array | Int8Array | Uint8Array>(
    out: T,
    src: T,
    rows: number,
    inner: number,
    stride: number,
    rowOffsets: Int32Array,
  ): void;
  softmax(
    out: Float32Array,
    x: Float32Array,
    outer: number,
    reduced: number,
    inner: number,
    roundFp16: boolean,
  ): void;
  matmul(
    out: Float32Array,
    x: Float32Array,
    y: Float32Array,
    transX: boolean,
    transY: boolean,
    M: number,
    N: number,
    K: number,
    alpha: number,
    xOffsets: Int32Array,
    yOffsets: Int32Array,
    roundFp16: boolean,
    saturateAt: number,
  ): void;
  /**
   * out [M, N] = op(a) · op(b): each operand a Float32Array or fp16 bits (Uint16Array) read from
   * `offset` with row stride `ld` (stored [M, K] or, transposed, [K, M]; b: [K, N] or [N, K]).
   * Finished as the simulator finishes a matmul (finishSaturated), block by block as the GEMM
   * completes them: rounded to fp16 when `roundFp16` (then saturated at `saturateAt`), else only
   * saturated; `saturateAt` Infinity saturates nothing. `matmul` finishes each product the same way.
   */
  gemm(
    out: Float32Array,
    a: Float32Array | Uint16Array,
    aOffset: number,
    lda: number,
    transA: boolean,
    b: Float32Array | Uint16Array,
    bOffset: number,
    ldb: number,
    transB: boolean,
    M: number,
    N: number,
    K: number,
    roundFp16: boolean,
    saturateAt: number,
  ): void;
  copyRows<T extends Float32Array | Int32Array | Int8Array | Uint8Array>(
    dst: T,
    dstOffset: number,
    dstStride: number,
    src: T,
    srcOffset: number,
    srcStride: number,
    rows: number,
    cols: number,
  ): void;
  reduce(
    kind: number,
    out: Float32Array,
    x: Float32Array,
    outer: number,
    reduced: number,
    inner: number,
    roundFp16: boolean,
  ): void;
  /**
   * A fused elementwise chain (src/sim/ops/fused.ts): `code` holds six int32 per instruction
   * (kind, op, dst, a, b, round), `epsilons` one per instruction; operand k is `operands[k]` read
   * through `walks[2k]` (inner), `walks[2k + 1]` (stride) and `rowOffsets[k]`.
   */
  fused(
    code: Int32Array,
    epsilons: Float64Array,
    registers: number,
    length: number,
    operands: readonly Float32Array[],
    walks: Int32Array,
    rowOffsets: readonly Int32Array[],
    outputs: readonly Float32Array[],
  ): void;
}

type Sync<Args extends unknown[], Result = void> = (...args: Args) => Result;

/**
 * The addon's raw kernel exports: each `name` runs synchronously, `nameAsync` returns a Promise
 * and runs off the JS thread, and `nameAsyncBackground` is `nameAsync` run as background work
 * (native/kernels/thread_pool.h runInBackground). Arguments are positional and already validated
 * by src/kernels.
 */
export interface NativeKernelBindings extends ForegroundKernelBindings, BackgroundKernelBindings {}

type BackgroundKernelBindings = {
  [K in keyof ForegroundKernelBindings as K extends `${string}Async`
    ? `${K}Background`
    : never]: ForegroundKernelBindings[K];
};

interface ForegroundKernelBindings {
  sgemm: Sync<SgemmArgs>;
  sgemmAsync: Sync<SgemmArgs, Promise<void>>;
  fp32ToFp16: Sync<ToHalfArgs>;
  fp32ToFp16Async: Sync<ToHalfArgs, Promise<void>>;
  fp16ToFp32: Sync<ToFloatArgs>;
  fp16ToFp32Async: Sync<ToFloatArgs, Promise<void>>;
  /** As fp32ToFp16, writing element (r, c) at dst[dstOffset + c*dstRowStride + r]. */
  fp32ToFp16Transposed: Sync<ToHalfArgs>;
  fp32ToFp16TransposedAsync: Sync<ToHalfArgs, Promise<void>>;
  /** As fp16ToFp32, writing element (r, c) at dst[dstOffset + c*dstRowStride + r]. */
  fp16ToFp32Transposed: Sync<ToFloatArgs>;
  fp16ToFp32TransposedAsync: Sync<ToFloatArgs, Promise<void>>;
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
  softmaxCrossEntropyStats: Sync<CrossEntropyStatsArgs>;
  softmaxCrossEntropyStatsAsync: Sync<CrossEntropyStatsArgs, Promise<void>>;
  softmaxCrossEntropyGrad: Sync<CrossEntropyGradArgs>;
  softmaxCrossEntropyGradAsync: Sync<CrossEntropyGradArgs, Promise<void>>;
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
type CrossEntropyStatsArgs = Parameters<HostKernels['softmaxCrossEntropyStats']>;
type CrossEntropyGradArgs = Parameters<HostKernels['softmaxCrossEntropyGrad']>;
type EmbeddingArgs = Parameters<HostKernels['embeddingForward']>;
type CausalForwardArgs = Parameters<HostKernels['causalSoftmaxForward']>;
type CausalBackwardArgs = Parameters<HostKernels['causalSoftmaxBackward']>;

/**
 * Where the loaded addon came from: `override` (ANE_BRIDGE_NATIVE_PATH), `source` (this package's
 * build/, compiled from native/ at install or by a developer) or `prebuilt` (prebuilds/, shipped in
 * the npm package for linux-x64 and linux-arm64; without the Neural Engine bridge).
 */
export type NativeAddonKind = 'override' | 'source' | 'prebuilt';

export type NativeLoadResult =
  | { implementation: 'native'; addon: NativeAddon; path: string; kind: NativeAddonKind; reason: string }
  | { implementation: 'ts'; addon: null; reason: string; fix: string };

export interface NativeLoadOptions {
  /** Use the TS fallbacks even when the addon is built (env ANE_BRIDGE_FORCE_TS=1). */
  forceTs?: boolean;
  /** Load this `.node` file instead of the package's build (env ANE_BRIDGE_NATIVE_PATH). */
  nativePath?: string;
  /** Where to look for build/ and prebuilds/ (default: this package). */
  packageRoot?: string;
}

export function nativeLoadOptionsFromEnv(env: NodeJS.ProcessEnv = process.env): NativeLoadOptions {
  const options: NativeLoadOptions = {};
  if (env.ANE_BRIDGE_FORCE_TS === '1') options.forceTs = true;
  if (env.ANE_BRIDGE_NATIVE_PATH) options.nativePath = env.ANE_BRIDGE_NATIVE_PATH;
  return options;
}

/** How to run the install script again, npm first (most users), then pnpm, then this repository. */
const REBUILD =
  'npm: `npm rebuild ane-bridge`; pnpm: `pnpm rebuild ane-bridge`; inside the ane-sdk repository: `pnpm --filter ane-bridge rebuild`';
const REBUILD_HINT = `then rebuild it (${REBUILD}) and check with \`npx ane doctor\``;
const FROM_SOURCE = `rebuild from source: \`ANE_BRIDGE_BUILD_FROM_SOURCE=1 npm rebuild ane-bridge\` (pnpm: \`ANE_BRIDGE_BUILD_FROM_SOURCE=1 pnpm rebuild ane-bridge\`; needs a C++ toolchain), then \`npx ane doctor\``;

interface InstallReport {
  status: 'built' | 'prebuilt' | 'failed' | 'skipped';
  reason: string;
  /** The compiler's first `error:` line (or make's), when the build failed. */
  error?: string;
  /** Why the prebuilt binary was not used, when the install compiled. */
  prebuild?: string;
  path?: string;
  log?: string;
}

function readInstallReport(packageRoot: string): InstallReport | undefined {
  try {
    return JSON.parse(readFileSync(join(packageRoot, 'build', 'ane-bridge-install.json'), 'utf8'));
  } catch {
    return undefined;
  }
}

function toolchainFix(): string {
  return process.platform === 'darwin'
    ? 'install the Xcode command-line tools (`xcode-select --install`)'
    : 'install a C++ toolchain and Python (Debian/Ubuntu: `apt-get install g++ make python3`)';
}

function explainMissingBuild(packageRoot: string): { reason: string; fix: string } {
  const report = readInstallReport(packageRoot);
  const prebuildNote = report?.prebuild ? ` (the prebuilt binary was not used: ${report.prebuild})` : '';
  if (report?.status === 'failed') {
    const said = report.error ? `; the compiler said: ${report.error}` : '';
    return {
      reason: `the native build failed during install: ${report.reason}${said}${prebuildNote}`,
      fix: `${toolchainFix()}, ${REBUILD_HINT}`,
    };
  }
  if (report?.status === 'skipped') {
    return {
      reason: `the native build was skipped: ${report.reason}`,
      fix: `unset ANE_BRIDGE_SKIP_BUILD, ${REBUILD_HINT}`,
    };
  }
  if (report?.status === 'prebuilt') {
    return {
      reason: `the install chose the prebuilt binary ${report.path ?? ''}, which is no longer there`,
      fix: `reinstall ane-bridge, or ${REBUILD_HINT.replace(/^then /, '')}`,
    };
  }
  return {
    reason: `no native addon for ${process.platform}-${process.arch}: there is no prebuilt binary for it, and the install script, which compiles one, did not run (npm and pnpm skip it with --ignore-scripts; pnpm 10 runs dependency build scripts only when allowed)`,
    fix: `npm: run \`npm rebuild ane-bridge\` (recent npm 11 lists install scripts not approved in package.json's "allowScripts", and a later npm will block them: approve this one with \`npm approve-scripts ane-bridge\`); pnpm: add "ane-bridge" to onlyBuiltDependencies in pnpm-workspace.yaml (or run \`pnpm approve-builds\`), then \`pnpm rebuild ane-bridge\`; inside the ane-sdk repository: \`pnpm --filter ane-bridge rebuild\`. A C++ toolchain is needed (${toolchainFix().replace(/^install /, '')}); check with \`npx ane doctor\``,
  };
}

/** ELF e_machine values of the architectures Node runs on. */
const ELF_MACHINE: Record<string, number> = {
  ia32: 3,
  arm: 40,
  ppc64: 21,
  s390x: 22,
  x64: 62,
  arm64: 183,
  riscv64: 243,
  loong64: 258,
};

function archOfElfMachine(machine: number): string {
  return Object.entries(ELF_MACHINE).find(([, m]) => m === machine)?.[0] ?? `ELF machine ${machine}`;
}

/**
 * What a candidate addon file is, read from its first bytes: a problem (missing, a directory, a
 * text file, a binary for another platform) or fine to `require`. JavaScript files (.js/.cjs/.mjs)
 * are accepted as stand-ins for the addon (the loader's own tests use them).
 */
function inspectAddonFile(file: string, subject: string): { problem: string; fix: string } | undefined {
  const pointAt = 'a built ane_bridge.node (`build/Release/ane_bridge.node` of an ane-bridge checkout)';
  let stat: Stats;
  try {
    stat = statSync(file);
  } catch {
    return { problem: `${subject} does not exist`, fix: `point it at ${pointAt}, or unset it` };
  }
  if (stat.isDirectory()) {
    const inside = [join(file, 'ane_bridge.node'), join(file, 'build', 'Release', 'ane_bridge.node')].find(
      (f) => existsSync(f),
    );
    return {
      problem: `${subject} is a directory, not an addon file`,
      fix: inside ? `point it at the file inside: ${inside}` : `point it at ${pointAt}, or unset it`,
    };
  }
  if (!stat.isFile()) {
    return { problem: `${subject} is not a regular file`, fix: `point it at ${pointAt}, or unset it` };
  }
  if (/\.[cm]?js$/.test(file)) return undefined;
  if (stat.size === 0)
    return { problem: `${subject} is empty, not a native addon`, fix: `point it at ${pointAt}` };
  const head = Buffer.alloc(64);
  const fd = openSync(file, 'r');
  let length: number;
  try {
    length = readSync(fd, head, 0, head.length, 0);
  } finally {
    closeSync(fd);
  }
  const bytes = head.subarray(0, length);
  const isElf = bytes.length >= 20 && bytes.readUInt32BE(0) === 0x7f454c46;
  const isMachO =
    bytes.length >= 4 &&
    [0xfeedface, 0xfeedfacf, 0xcefaedfe, 0xcffaedfe, 0xcafebabe].includes(bytes.readUInt32BE(0));
  const isPe = bytes.length >= 2 && bytes[0] === 0x4d && bytes[1] === 0x5a;
  const here = `${process.platform}-${process.arch}`;
  if (isElf) {
    const machine = bytes[5] === 2 ? bytes.readUInt16BE(18) : bytes.readUInt16LE(18);
    if (process.platform === 'darwin' || process.platform === 'win32') {
      return {
        problem: `${subject} is a Linux (ELF) binary; this is ${here}`,
        fix: `point it at an addon built on this machine, or unset it`,
      };
    }
    if (ELF_MACHINE[process.arch] !== undefined && machine !== ELF_MACHINE[process.arch]) {
      return {
        problem: `${subject} is a binary for ${archOfElfMachine(machine)}; this Node is ${here}`,
        fix: `point it at an addon built for ${process.arch}, or unset it`,
      };
    }
    return undefined;
  }
  if (isMachO) {
    return process.platform === 'darwin'
      ? undefined
      : { problem: `${subject} is a macOS (Mach-O) binary; this is ${here}`, fix: `point it at ${pointAt}` };
  }
  if (isPe) {
    return process.platform === 'win32'
      ? undefined
      : { problem: `${subject} is a Windows (PE) binary; this is ${here}`, fix: `point it at ${pointAt}` };
  }
  const text = bytes.every((b) => b === 9 || b === 10 || b === 13 || (b >= 32 && b < 127) || b >= 128);
  const start = JSON.stringify(bytes.subarray(0, 24).toString('utf8'));
  return {
    problem: `${subject} is not a native addon: it is ${text ? `a text file (it begins ${start})` : 'not a shared library (no ELF, Mach-O or PE header)'}`,
    fix: `point it at ${pointAt}, or unset it`,
  };
}

function subjectOf(kind: NativeAddonKind, file: string): string {
  if (kind === 'override') return `ANE_BRIDGE_NATIVE_PATH=${file}`;
  return `${kind === 'source' ? 'the local build' : 'the prebuilt binary'} ${file}`;
}

const HOW: Record<NativeAddonKind, string> = {
  override: 'loaded from ANE_BRIDGE_NATIVE_PATH',
  source: 'loaded the build from source (build/Release)',
  prebuilt: 'loaded the prebuilt binary (prebuilds/, nothing was compiled)',
};

type Refusal = Extract<NativeLoadResult, { implementation: 'ts' }>;

function tryLoad(file: string, kind: NativeAddonKind): NativeLoadResult {
  const refuse = (reason: string, fix: string): Refusal => ({
    implementation: 'ts',
    addon: null,
    reason,
    fix,
  });
  const subject = subjectOf(kind, file);
  const unusable = inspectAddonFile(file, subject);
  if (unusable) {
    return refuse(
      unusable.problem,
      kind === 'override'
        ? unusable.fix.replace(/^point it/, 'point ANE_BRIDGE_NATIVE_PATH')
        : REBUILD_HINT.replace(/^then /, ''),
    );
  }
  let addon: NativeAddon;
  try {
    addon = createRequire(import.meta.url)(file) as NativeAddon;
  } catch (error) {
    const message = (error as Error).message.split('\n')[0] ?? '';
    const oldRuntime = /GLIBC|CXXABI_|version `[^']*' not found/.test(message);
    return refuse(
      `${subject} failed to load: ${message}`,
      oldRuntime
        ? `this system's C or C++ runtime is older than the binary needs (the prebuilt binaries need glibc 2.27 and the libstdc++ of GCC 11); ${FROM_SOURCE}`
        : `it was probably built for another platform or is damaged; ${kind === 'prebuilt' ? FROM_SOURCE : REBUILD_HINT.replace(/^then /, '')}`,
    );
  }
  if (typeof addon?.abiVersion !== 'number') {
    return refuse(
      `${subject} is not an ane-bridge addon (it exports no abiVersion)`,
      kind === 'override'
        ? 'point ANE_BRIDGE_NATIVE_PATH at a built ane_bridge.node, or unset it'
        : REBUILD_HINT.replace(/^then /, ''),
    );
  }
  if (addon.abiVersion !== NATIVE_ABI_VERSION) {
    return refuse(
      `${subject} is stale (ABI ${String(addon.abiVersion)}, this package needs ${NATIVE_ABI_VERSION})`,
      REBUILD_HINT.replace(/^then /, ''),
    );
  }
  return { implementation: 'native', addon, path: file, kind, reason: HOW[kind] };
}

/** The local build from source: build/Release (or build/Debug)/ane_bridge.node, when present. */
function localBuild(packageRoot: string): string | undefined {
  return ['Release', 'Debug']
    .map((dir) => join(packageRoot, 'build', dir, 'ane_bridge.node'))
    .find((f) => existsSync(f));
}

interface NodeGypBuildHelpers {
  parseTuple(name: string): { name: string } | undefined;
  matchTuple(platform: string, arch: string): (tuple: unknown) => boolean;
  compareTuples(a: unknown, b: unknown): number;
  parseTags(file: string): { file: string } | undefined;
  matchTags(runtime: string, abi: string): (tags: unknown) => boolean;
  compareTags(runtime: string): (a: unknown, b: unknown) => number;
}

function listDir(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

/**
 * The prebuilt binary for this platform in prebuilds/<platform>-<arch>/, chosen by node-gyp-build's
 * own matching rules (N-API and libc tags), or undefined.
 */
export function findPrebuild(
  packageRoot: string,
  platform: string = process.platform,
  arch: string = process.arch,
): string | undefined {
  const ngb = createRequire(import.meta.url)('node-gyp-build') as NodeGypBuildHelpers;
  const tuple = listDir(join(packageRoot, 'prebuilds'))
    .map(ngb.parseTuple)
    .filter(ngb.matchTuple(platform, arch))
    .sort(ngb.compareTuples)[0] as { name: string } | undefined;
  if (!tuple) return undefined;
  const dir = join(packageRoot, 'prebuilds', tuple.name);
  const winner = listDir(dir)
    .map(ngb.parseTags)
    .filter(ngb.matchTags('node', process.versions.modules))
    .sort(ngb.compareTags('node'))[0] as { file: string } | undefined;
  return winner ? join(dir, winner.file) : undefined;
}

/**
 * Loads the addon, in this order:
 * 1. ANE_BRIDGE_NATIVE_PATH, when set: that file and nothing else (a problem with it is reported,
 *    never papered over with another binary);
 * 2. the local build from source (build/Release/ane_bridge.node): a developer's rebuild, or the
 *    install script's compile, wins over the shipped binary; on macOS it is the only one with the
 *    Neural Engine device;
 * 3. the prebuilt binary (prebuilds/<platform>-<arch>/, linux-x64 and linux-arm64), also when the
 *    local build is there but unusable (stale, damaged), which the reason then says.
 * Without any, the TS fallbacks, with the reason from build/ane-bridge-install.json.
 */
export function loadNativeAddon(options: NativeLoadOptions = nativeLoadOptionsFromEnv()): NativeLoadResult {
  if (options.forceTs) {
    return {
      implementation: 'ts',
      addon: null,
      reason: 'the TypeScript fallbacks were requested (ANE_BRIDGE_FORCE_TS=1)',
      fix: 'unset ANE_BRIDGE_FORCE_TS to use the native addon',
    };
  }
  // Relative to the working directory, as a user means it (require() would resolve it from here).
  if (options.nativePath !== undefined) return tryLoad(resolvePath(options.nativePath), 'override');
  const packageRoot = options.packageRoot ?? findPackageRoot();
  const local = localBuild(packageRoot);
  const fromSource = local === undefined ? undefined : tryLoad(local, 'source');
  if (fromSource?.implementation === 'native') return fromSource;
  const prebuild = findPrebuild(packageRoot);
  const prebuilt = prebuild === undefined ? undefined : tryLoad(prebuild, 'prebuilt');
  if (prebuilt?.implementation === 'native') {
    const notes = [prebuilt.reason];
    if (fromSource !== undefined) notes.push(fromSource.reason);
    // A build from source that was asked for (ANE_BRIDGE_BUILD_FROM_SOURCE=1) and failed is worth saying.
    const report = readInstallReport(packageRoot);
    if (fromSource === undefined && report?.status === 'failed') {
      notes.push(
        `the build from source failed during install: ${report.reason}${report.error ? `; the compiler said: ${report.error}` : ''}`,
      );
    }
    return { ...prebuilt, reason: notes.join('; ') };
  }
  if (fromSource !== undefined) {
    return prebuilt === undefined
      ? fromSource
      : { ...fromSource, reason: `${fromSource.reason}; ${prebuilt.reason}` };
  }
  if (prebuilt !== undefined) {
    const missing = explainMissingBuild(packageRoot);
    return { ...prebuilt, reason: `${prebuilt.reason}; ${missing.reason}`, fix: `${prebuilt.fix}` };
  }
  return { implementation: 'ts', addon: null, ...explainMissingBuild(packageRoot) };
}

let cached: NativeLoadResult | undefined;

/** The process-wide addon load result (loaded once, on first use). */
export function nativeAddon(): NativeLoadResult {
  cached ??= loadNativeAddon();
  return cached;
}
