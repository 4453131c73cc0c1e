/**
 * What this machine gives ane-bridge: native or TS host kernels, the SIMD path, and whether the
 * Neural Engine can be used, each with the reason and, when something is missing, the fix.
 */
import {
  type AneProbeVerdict,
  aneProbeVerdict,
  defaultProbeEnvironment,
  describeVerdict,
  PROBE_CHILD_ENV,
} from './ane/probe';
import { checkEnvironment, type EnvironmentProblem } from './native/environment';
import { type NativeAddonKind, type NativeLoadResult, nativeAddon, type SimdLevel } from './native/loader';

export interface Capabilities {
  platform: NodeJS.Platform;
  arch: string;
  nodeVersion: string;
  hostKernels: {
    implementation: 'native' | 'ts';
    reason: string;
    fix?: string;
    addonPath?: string;
    /** Where the loaded addon came from: ANE_BRIDGE_NATIVE_PATH, a build from source, or the prebuilt binary. */
    addonKind?: NativeAddonKind;
    /** Size of the native thread pool (ANE_BRIDGE_THREADS, setHostThreads). */
    threads?: number;
  };
  simd: { level: SimdLevel | 'none'; reason: string };
  ane: {
    status: 'available' | 'unavailable';
    reason: string;
    fix?: string;
    /** On Apple-silicon macOS with the addon: what the ANE probe (a one-op program in a child process) found. */
    probe?: AneProbeVerdict;
  };
  /** `ANE_BRIDGE_*` variables with a value ane-bridge ignores, or a name it does not read. */
  environment: EnvironmentProblem[];
}

/** Runs (or reads the cached verdict of) the ANE probe for the loaded addon. */
export type AneProbe = (native: Extract<NativeLoadResult, { implementation: 'native' }>) => AneProbeVerdict;

const defaultAneProbe: AneProbe = (native) => aneProbeVerdict(defaultProbeEnvironment(native.path));

export interface MachineFacts {
  platform: NodeJS.Platform;
  arch: string;
  nodeVersion: string;
}

const USE_SIM =
  "use the simulator, which runs the same MIL programs with the ANE's numerics and rules: --backend sim on the ane command line, openDevice({ backend: 'sim' }) in code ('auto', the default, picks it)";

function describeAne(machine: MachineFacts, native: NativeLoadResult, probe: AneProbe): Capabilities['ane'] {
  if (machine.platform !== 'darwin') {
    return {
      status: 'unavailable',
      reason: `this machine runs ${machine.platform}/${machine.arch}; the Neural Engine is reachable only from Apple-silicon macOS`,
      fix: USE_SIM,
    };
  }
  if (machine.arch !== 'arm64') {
    return {
      status: 'unavailable',
      reason: `this Node is ${machine.arch} (an Intel Mac, or x64 Node under Rosetta); the Neural Engine needs arm64 Node on Apple silicon`,
      fix: `install the arm64 build of Node (\`node -p process.arch\` must print arm64), or ${USE_SIM}`,
    };
  }
  if (native.addon === null) {
    return {
      status: 'unavailable',
      reason: 'the native addon is not loaded (see host kernels)',
      fix: native.fix,
    };
  }
  const framework = native.addon.capabilities().aneFramework;
  if (framework === null && native.implementation === 'native' && native.kind === 'prebuilt') {
    return {
      status: 'unavailable',
      reason: 'the loaded addon is a prebuilt binary, which has no Neural Engine bridge',
      fix: `build it from source on this Mac (\`ANE_BRIDGE_BUILD_FROM_SOURCE=1 npm rebuild ane-bridge\`, then \`npx ane doctor\`), or ${USE_SIM}`,
    };
  }
  if (framework === null) {
    return {
      status: 'unavailable',
      reason:
        'the native addon was built without the Neural Engine bridge (the install falls back to that when the full build fails; build/ane-bridge-install.json in the package says why)',
      fix: `report the build log in an issue; meanwhile ${USE_SIM}`,
    };
  }
  if (!framework.classesFound) {
    return {
      status: 'unavailable',
      reason: `the AppleNeuralEngine private framework is not usable: ${framework.detail}`,
      fix: `Apple silicon with macOS 15 or later is required; meanwhile ${USE_SIM}`,
    };
  }
  if (!native.addon.ane) {
    return {
      status: 'unavailable',
      reason: 'the native addon was built without the ANE device (addon.ane is missing)',
      fix: `rebuild the addon on this Mac (\`pnpm rebuild ane-bridge\`, then \`npx ane doctor\`), or ${USE_SIM}`,
    };
  }
  if (process.env[PROBE_CHILD_ENV] === '1') {
    return { status: 'unavailable', reason: 'this process is the ANE probe itself', fix: USE_SIM };
  }
  const verdict = probe(native);
  if (verdict.result === 'pass') {
    return { status: 'available', reason: `the ANE probe ${describeVerdict(verdict)}`, probe: verdict };
  }
  return {
    status: 'unavailable',
    reason: `the ANE probe ${describeVerdict(verdict)}`,
    fix: `run \`npx ane probe\` to probe again (after an OS or ane-bridge update), and report the output with \`npx ane doctor --json\` at the ane-sdk issue tracker; meanwhile ${USE_SIM}`,
    probe: verdict,
  };
}

function threadsOf(threads: number | undefined): { threads?: number } {
  return threads === undefined ? {} : { threads };
}

export function describeCapabilities(
  machine: MachineFacts = { platform: process.platform, arch: process.arch, nodeVersion: process.version },
  native: NativeLoadResult = nativeAddon(),
  probe: AneProbe = defaultAneProbe,
  environment: EnvironmentProblem[] = checkEnvironment(),
): Capabilities {
  const hostKernels: Capabilities['hostKernels'] =
    native.implementation === 'native'
      ? {
          implementation: 'native',
          reason: native.reason,
          addonPath: native.path,
          addonKind: native.kind,
          ...threadsOf(native.addon.capabilities().hostThreads),
        }
      : { implementation: 'ts', reason: native.reason, fix: native.fix };
  const simd: Capabilities['simd'] =
    native.addon === null
      ? { level: 'none', reason: 'pure-TS kernels use no SIMD (the native addon is not loaded)' }
      : { level: native.addon.capabilities().simdLevel, reason: 'detected at run time by the native addon' };
  return { ...machine, hostKernels, simd, ane: describeAne(machine, native, probe), environment };
}

let cached: Capabilities | undefined;

/** This process's capabilities, computed once. */
export function capabilities(): Capabilities {
  cached ??= describeCapabilities();
  return cached;
}
