/**
 * The ANE probe: does this Mac's Neural Engine compile and run a program through our bridge?
 *
 * It runs in a child process (`ane __ane-probe-child`), because the bridge calls a private
 * framework that may crash on an OS it was not written for, and a crash must not take the user's
 * process down. The child compiles and runs a one-op program (probe-program.ts) and prints a JSON
 * line; the parent turns that, or the child's death, into a verdict. Verdicts are cached per addon
 * build (a hash of the .node file) and OS version, so the child runs once per install and upgrade.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { cpus, homedir, release } from 'node:os';
import { join } from 'node:path';
import type { ChipFamily } from 'ane-ir/mil';
import { createAneBackend } from '../device/ane-backend';
import { findPackageRoot } from '../native/package-root';
import type { NativeAne } from './native-ane';
import { checkProbeOutput, PROBE_PROGRAM, probeInput } from './probe-program';

/** The hidden CLI command the parent runs in the child. */
export const PROBE_CHILD_COMMAND = '__ane-probe-child';
/** Set in the child's environment: nothing there may start another probe. */
export const PROBE_CHILD_ENV = 'ANE_BRIDGE_PROBE_CHILD';
const PROBE_TIMEOUT_MS = 120_000;
const CHIPS: readonly ChipFamily[] = ['M1', 'M2', 'M3', 'M4', 'M5'];

export interface AneProbeVerdict {
  /** pass: compiled, ran and returned 2·x exactly; fail: an error or a wrong result; crash/timeout: the child died. */
  result: 'pass' | 'fail' | 'crash' | 'timeout';
  /** What happened, in words (the framework's error text on a failure). */
  detail: string;
  /** The CPU's name, e.g. "Apple M4 Pro". */
  chip: string;
  /** The chip family the name implies, when it is one the rule table knows. */
  chipFamily?: ChipFamily;
  /** macOS product version (e.g. "15.3.1"), or "unknown". */
  macos: string;
  /** Darwin kernel release (os.release()). */
  darwin: string;
  /** First 16 hex digits of the SHA-256 of the addon file the probe ran with. */
  addonBuild: string;
  probedAt: string;
  durationMs: number;
  /** True when this verdict was read from the cache rather than probed now. */
  cached?: boolean;
}

/** What the child prints (one JSON line on stdout). */
export interface ProbeChildReport {
  result: 'pass' | 'fail';
  detail: string;
}

/**
 * Runs in the child: compile and run the probe program on `ane`, free it, and say how it went.
 * Never throws.
 */
export function runProbeInThisProcess(ane: NativeAne | null | undefined): ProbeChildReport {
  if (!ane)
    return {
      result: 'fail',
      detail: 'this build of the native addon has no ANE device (addon.ane is missing)',
    };
  let compiled: ReturnType<ReturnType<typeof createAneBackend>['compile']> | undefined;
  try {
    compiled = createAneBackend(ane).compile(PROBE_PROGRAM, 'M4');
    const input = probeInput();
    const output = new Uint8Array(input.byteLength);
    compiled.run([input], [output]);
    const wrong = checkProbeOutput(input, output);
    if (wrong)
      return { result: 'fail', detail: `the one-op program ran but computed a wrong result: ${wrong}` };
    return { result: 'pass', detail: 'compiled and ran a one-op program (add) with the exact result' };
  } catch (error) {
    const e = error as Error;
    return { result: 'fail', detail: `${e.name}: ${e.message}` };
  } finally {
    try {
      compiled?.dispose?.();
    } catch {
      // The verdict is about running; a failed unload is reported by the hardware tests.
    }
  }
}

export interface ChildOutcome {
  status: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
  error?: string;
}

export interface ProbeEnvironment {
  /** The native addon file the probe would use (its hash keys the cache). */
  addonPath: string;
  /** Where verdicts are cached, or undefined to not cache. */
  cacheDir: string | undefined;
  chip: string;
  macos: string;
  darwin: string;
  /** Runs the child; the default spawns `node bin/ane.mjs __ane-probe-child`. */
  runChild(): ChildOutcome;
  now(): Date;
}

/** Where verdicts live: $ANE_BRIDGE_CACHE_DIR, else ~/Library/Caches/ane-bridge (macOS) or ~/.cache/ane-bridge. */
export function defaultCacheDir(env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (env.ANE_BRIDGE_CACHE_DIR) return env.ANE_BRIDGE_CACHE_DIR;
  const home = homedir();
  if (!home) return undefined;
  if (process.platform === 'darwin') return join(home, 'Library', 'Caches', 'ane-bridge');
  return join(env.XDG_CACHE_HOME || join(home, '.cache'), 'ane-bridge');
}

function macosVersion(): string {
  try {
    const plist = readFileSync('/System/Library/CoreServices/SystemVersion.plist', 'utf8');
    return /<key>ProductVersion<\/key>\s*<string>([^<]+)<\/string>/.exec(plist)?.[1] ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

function spawnProbeChild(): ChildOutcome {
  const bin = join(findPackageRoot(), 'bin', 'ane.mjs');
  const result = spawnSync(process.execPath, [bin, PROBE_CHILD_COMMAND], {
    encoding: 'utf8',
    timeout: PROBE_TIMEOUT_MS,
    env: { ...process.env, [PROBE_CHILD_ENV]: '1' },
  });
  return {
    status: result.status,
    signal: result.signal,
    stdout: result.stdout ?? '',
    stderr: result.stderr ?? '',
    timedOut: (result.error as NodeJS.ErrnoException | undefined)?.code === 'ETIMEDOUT',
    ...(result.error ? { error: result.error.message } : {}),
  };
}

export function defaultProbeEnvironment(addonPath: string): ProbeEnvironment {
  return {
    addonPath,
    cacheDir: defaultCacheDir(),
    chip: cpus()[0]?.model?.trim() || 'unknown',
    macos: macosVersion(),
    darwin: release(),
    runChild: spawnProbeChild,
    now: () => new Date(),
  };
}

export function chipFamilyOf(chip: string): ChipFamily | undefined {
  const family = /\bApple (M\d)\b/.exec(chip)?.[1] as ChipFamily | undefined;
  return family && CHIPS.includes(family) ? family : undefined;
}

function addonBuildId(addonPath: string): string {
  try {
    return createHash('sha256').update(readFileSync(addonPath)).digest('hex').slice(0, 16);
  } catch {
    return 'unreadable';
  }
}

function tail(text: string, lines: number): string {
  return text.trim().split('\n').slice(-lines).join('\n');
}

/** The verdict a child's outcome amounts to. */
export function verdictFromChild(outcome: ChildOutcome): Pick<AneProbeVerdict, 'result' | 'detail'> {
  if (outcome.timedOut) {
    return { result: 'timeout', detail: `the probe did not finish within ${PROBE_TIMEOUT_MS / 1000} s` };
  }
  const lastLine = outcome.stdout.trim().split('\n').at(-1) ?? '';
  try {
    const report = JSON.parse(lastLine) as ProbeChildReport;
    if ((report.result === 'pass' || report.result === 'fail') && typeof report.detail === 'string') {
      if (outcome.signal === null && outcome.status === 0)
        return { result: report.result, detail: report.detail };
    }
  } catch {
    // Not a report: the child died before printing one.
  }
  const how = outcome.signal
    ? `was killed by ${outcome.signal}`
    : `exited with code ${outcome.status ?? '?'}`;
  const stderr = tail(outcome.stderr, 5);
  return {
    result: 'crash',
    detail: `the probe process ${how}${outcome.error ? ` (${outcome.error})` : ''}${stderr ? `: ${stderr}` : ''}`,
  };
}

/**
 * The probe verdict for this addon build and OS: from the cache, or by running the child (and
 * caching what it says). `force` ignores the cache.
 */
export function aneProbeVerdict(
  environment: ProbeEnvironment,
  options: { force?: boolean } = {},
): AneProbeVerdict {
  const addonBuild = addonBuildId(environment.addonPath);
  const key = createHash('sha256')
    .update(JSON.stringify([addonBuild, environment.macos, environment.darwin]))
    .digest('hex')
    .slice(0, 24);
  const cacheFile = environment.cacheDir ? join(environment.cacheDir, `ane-probe-${key}.json`) : undefined;
  if (cacheFile && !options.force) {
    try {
      const cached = JSON.parse(readFileSync(cacheFile, 'utf8')) as AneProbeVerdict;
      if (cached.addonBuild === addonBuild && typeof cached.result === 'string')
        return { ...cached, cached: true };
    } catch {
      // No verdict yet, or an unreadable one: probe again.
    }
  }
  const started = environment.now();
  const outcome = environment.runChild();
  const durationMs = Math.max(0, environment.now().getTime() - started.getTime());
  const chipFamily = chipFamilyOf(environment.chip);
  const verdict: AneProbeVerdict = {
    ...verdictFromChild(outcome),
    chip: environment.chip,
    ...(chipFamily ? { chipFamily } : {}),
    macos: environment.macos,
    darwin: environment.darwin,
    addonBuild,
    probedAt: started.toISOString(),
    durationMs,
  };
  if (cacheFile) {
    try {
      mkdirSync(environment.cacheDir!, { recursive: true });
      const temporary = `${cacheFile}.${process.pid}.tmp`;
      writeFileSync(temporary, `${JSON.stringify(verdict, null, 2)}\n`);
      renameSync(temporary, cacheFile);
    } catch {
      // An unwritable cache only means probing again next time.
    }
  }
  return verdict;
}

const VERBS: Record<AneProbeVerdict['result'], string> = {
  pass: 'passed',
  fail: 'failed',
  crash: 'crashed',
  timeout: 'timed out',
};

/** One line for people: "passed on Apple M4 Pro, macOS 15.3.1 (probed 2026-…): compiled and ran …". */
export function describeVerdict(verdict: AneProbeVerdict): string {
  const when = verdict.cached ? `cached verdict from ${verdict.probedAt}` : `probed ${verdict.probedAt}`;
  return `${VERBS[verdict.result]} on ${verdict.chip}, macOS ${verdict.macos} (${when}): ${verdict.detail}`;
}
