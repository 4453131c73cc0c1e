/**
 * The `ANE_BRIDGE_*` environment variables, checked: a value ane-bridge would ignore (say
 * `ANE_BRIDGE_FORCE_TS=yes`) or a name it does not read (a typo) is a problem that `ane doctor`
 * and `capabilities()` report, instead of being silently ignored.
 */
import { statSync } from 'node:fs';
import { editDistance } from '../did-you-mean';

export interface EnvironmentProblem {
  /** The variable, e.g. `ANE_BRIDGE_FORCE_TS`. */
  name: string;
  value: string;
  /** What is wrong, and what ane-bridge does instead. */
  problem: string;
  fix: string;
}

type Check = (value: string, name: string) => { problem: string; fix: string } | undefined;

const MAX_THREADS = 256;

/**
 * How the simulator runs its hot ops (`ANE_BRIDGE_SIM_OPS`, or `setSimOpsMode`): `native` (the
 * default when the addon is loaded), `ts` (the readable twins), `compare` (both, every result
 * checked bit for bit: a mismatch throws).
 */
export const SIM_OPS_MODES = ['native', 'ts', 'compare'] as const;
export type SimOpsMode = (typeof SIM_OPS_MODES)[number];

function flag(meaning: string): Check {
  return (value, name) =>
    value === '1' || value === '0'
      ? undefined
      : {
          problem: `only 1 (${meaning}) and 0 are understood, so ${JSON.stringify(value)} is ignored`,
          fix: `set ${name}=1 to ${meaning}, or unset it`,
        };
}

function existingFile(what: string): Check {
  return (value, name) => {
    const stat = statOrUndefined(value);
    if (stat?.isFile()) return undefined;
    return {
      problem: `${value} ${stat === undefined ? 'does not exist' : 'is not a file'}, so it is ignored`,
      fix: `point ${name} at ${what}, or unset it`,
    };
  };
}

function statOrUndefined(file: string) {
  try {
    return statSync(file);
  } catch {
    return undefined;
  }
}

/** Every variable ane-bridge reads, with its check (undefined: any value is fine or checked elsewhere). */
const KNOWN: Record<string, Check | undefined> = {
  ANE_BRIDGE_FORCE_TS: flag('use the TypeScript fallbacks'),
  ANE_BRIDGE_SIM_THREAD: flag("run simulated kernels on the simulator's device thread"),
  // Checked by the loader, which says what the file is (hostKernels.reason).
  ANE_BRIDGE_NATIVE_PATH: undefined,
  ANE_BRIDGE_SIM_OPS: (value, name) =>
    SIM_OPS_MODES.includes(value as SimOpsMode)
      ? undefined
      : {
          problem: `${JSON.stringify(value)} is not a simulator op mode, so the simulator runs its native ops`,
          fix: `set ${name} to ${SIM_OPS_MODES.join(', ')}, or unset it`,
        },
  // native/kernels/thread_pool.cc reads it with atoi (leading digits) and caps it.
  ANE_BRIDGE_THREADS: (value, name) => {
    const fix = `set ${name} to a whole number from 1 to ${MAX_THREADS}, or unset it`;
    const leading = /^\s*[+-]?\d+/.exec(value);
    const read = leading ? Number.parseInt(leading[0], 10) : 0;
    if (read <= 0) {
      return {
        problem: `${JSON.stringify(value)} is not a positive whole number, so it is ignored and the pool has one thread per CPU this process may use`,
        fix,
      };
    }
    if (!/^\d+$/.test(value)) {
      return {
        problem: `${JSON.stringify(value)} is not a whole number; the pool reads it as ${Math.min(read, MAX_THREADS)}`,
        fix,
      };
    }
    if (read > MAX_THREADS) {
      return {
        problem: `${value} is more than ${MAX_THREADS}, so the pool is capped at ${MAX_THREADS} threads`,
        fix,
      };
    }
    return undefined;
  },
  ANE_BRIDGE_CACHE_DIR: (value, name) => {
    const stat = statOrUndefined(value);
    return stat !== undefined && !stat.isDirectory()
      ? {
          problem: `${value} exists and is not a directory, so the Neural Engine probe cannot cache its verdict there`,
          fix: `point ${name} at a directory, or unset it`,
        }
      : undefined;
  },
  // Install time (scripts/install.cjs).
  ANE_BRIDGE_SKIP_BUILD: flag('skip the native build at install'),
  ANE_BRIDGE_BUILD_FROM_SOURCE: flag('compile the addon at install even when a prebuilt binary loads'),
  ANE_BRIDGE_NO_ANE: flag('build the addon without the Neural Engine bridge'),
  ANE_BRIDGE_NODE_GYP: existingFile('node-gyp.js'),
  // Set by ane-bridge itself for the ANE probe's child process.
  ANE_BRIDGE_PROBE_CHILD: undefined,
  // ane-bridge's own test scripts (native/test/run-asan.cjs).
  ANE_BRIDGE_SKIP_NATIVE_TESTS: flag('skip the native sanitizer tests'),
  ANE_BRIDGE_TEST_ARM64: flag('run the arm64 kernel tests under qemu'),
};

/** The names ane-bridge reads. */
export const KNOWN_ENVIRONMENT_VARIABLES: readonly string[] = Object.keys(KNOWN);

function closest(name: string): string | undefined {
  let best: string | undefined;
  let bestDistance = Number.POSITIVE_INFINITY;
  for (const known of KNOWN_ENVIRONMENT_VARIABLES) {
    const distance = editDistance(name, known);
    if (distance < bestDistance) {
      best = known;
      bestDistance = distance;
    }
  }
  // Close enough to be a typo of the part after the prefix.
  return bestDistance <= Math.max(2, Math.floor((name.length - 'ANE_BRIDGE_'.length) / 3)) ? best : undefined;
}

/** The problems with this environment's `ANE_BRIDGE_*` variables (empty values count as unset). */
export function checkEnvironment(env: NodeJS.ProcessEnv = process.env): EnvironmentProblem[] {
  const problems: EnvironmentProblem[] = [];
  for (const name of Object.keys(env).sort()) {
    const value = env[name];
    if (!name.startsWith('ANE_BRIDGE_') || value === undefined || value === '') continue;
    if (!Object.hasOwn(KNOWN, name)) {
      const suggestion = closest(name);
      problems.push({
        name,
        value,
        problem: `ane-bridge reads no variable of this name, so it has no effect`,
        fix: suggestion
          ? `did you mean ${suggestion}? (the variables are listed in the README under "Environment switches")`
          : 'unset it; the variables ane-bridge reads are listed in its README under "Environment switches"',
      });
      continue;
    }
    const found = KNOWN[name]?.(value, name);
    if (found) problems.push({ name, value, ...found });
  }
  return problems;
}
