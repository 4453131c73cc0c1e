import { spawnSync } from 'node:child_process';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadNativeAddon } from '../src/native/loader';

const hasNativeAddon = loadNativeAddon().implementation === 'native';
const ane = resolve(import.meta.dirname, '..', 'bin', 'ane.mjs');

function run(args: string[], env: Record<string, string> = {}) {
  return spawnSync(process.execPath, [ane, ...args], { encoding: 'utf8', env: { ...process.env, ...env } });
}

describe('ane CLI', () => {
  it('doctor explains the TS fallback and how to get native code back', () => {
    const result = run(['doctor'], { ANE_BRIDGE_FORCE_TS: '1' });
    expect(result.status).toBe(0);
    expect(result.stdout).toContain('TypeScript fallbacks');
    expect(result.stdout).toContain('fix: unset ANE_BRIDGE_FORCE_TS');
    expect(result.stdout).toContain('Neural Engine');
  });

  it.skipIf(!hasNativeAddon)('doctor reports the native thread pool size (skipped without the addon)', () => {
    const result = run(['doctor'], { ANE_BRIDGE_THREADS: '1' });
    expect(result.stdout).toContain('native addon, 1 thread');
  });

  it('doctor --json prints the capabilities object', () => {
    const result = run(['doctor', '--json']);
    expect(result.status).toBe(0);
    const report = JSON.parse(result.stdout);
    expect(report.platform).toBe(process.platform);
    expect(['native', 'ts']).toContain(report.hostKernels.implementation);
    expect(['available', 'unavailable']).toContain(report.ane.status);
  });

  it('rejects an unknown command in one line with a did-you-mean and exit code 2', () => {
    const result = run(['frobnicate']);
    expect(result.status).toBe(2);
    expect(result.stderr).toBe(
      "ane: unknown command 'frobnicate' (commands: doctor, conformance, bench, probe, help; see 'ane --help')\n",
    );
    const typo = run(['doctr']);
    expect(typo.status).toBe(2);
    expect(typo.stderr).toBe(
      "ane: unknown command 'doctr'; did you mean 'doctor'? (commands: doctor, conformance, bench, probe, help; see 'ane --help')\n",
    );
    expect(typo.stdout).toBe('');
  });

  it('prints help for every command with --help and -h, exit code 0', () => {
    for (const command of ['doctor', 'conformance', 'bench', 'probe']) {
      for (const flag of ['--help', '-h']) {
        const result = run([command, flag]);
        expect(result.status, `${command} ${flag}`).toBe(0);
        expect(result.stdout).toMatch(new RegExp(`^Usage: ane ${command}`));
        expect(result.stdout).toContain('-h, --help');
        expect(result.stderr).toBe('');
      }
    }
    expect(run(['help', 'bench']).stdout).toContain('--chip M1..M5');
    expect(run(['bench', '--help']).stdout).toContain('--iterations N');
  });

  it("rejects an unknown or malformed option in one line with a did-you-mean, not Node's parser text", () => {
    const cases: [string[], string][] = [
      [
        ['bench', '--chp', 'M2'],
        "ane: unknown option '--chp' for 'ane bench'; did you mean '--chip'? (see 'ane bench --help')",
      ],
      [
        ['doctor', '--jsn'],
        "ane: unknown option '--jsn' for 'ane doctor'; did you mean '--json'? (see 'ane doctor --help')",
      ],
      [
        ['conformance', '--backend'],
        "ane: option '--backend' needs a value: auto, sim, ane (see 'ane conformance --help')",
      ],
      [
        ['bench', '--backend', 'SIM'],
        "ane: --backend must be one of auto, sim, ane, got 'SIM'; did you mean 'sim'?",
      ],
      [['doctor', '--json=yes'], "ane: option '--json' takes no value (see 'ane doctor --help')"],
      [['probe', 'now'], "ane: 'ane probe' takes no arguments, got 'now' (see 'ane probe --help')"],
      [['--verison'], "ane: unknown option '--verison'; did you mean '--version'? (see 'ane --help')"],
    ];
    for (const [args, line] of cases) {
      const result = run(args);
      expect(result.status, args.join(' ')).toBe(2);
      expect(result.stderr).toBe(`${line}\n`);
      expect(result.stderr).not.toContain('ERR_PARSE_ARGS');
    }
  });

  it('bench takes --chip and runs on that chip', () => {
    const result = run(['bench', '--backend', 'sim', '--chip', 'M2', '--iterations', '1', '--json']);
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
    expect(JSON.parse(result.stdout)).toMatchObject({ backend: 'sim', chip: 'M2', iterations: 1 });
  });

  it('speaks CLI in its advice: --backend sim, not openDevice(...)', () => {
    if (process.platform === 'darwin' && process.arch === 'arm64') return;
    const result = run(['bench', '--backend', 'ane']);
    expect(result.status).toBe(2);
    expect(result.stderr).toContain('Run with --backend sim');
    expect(result.stderr).not.toMatch(/openDevice|\{ ?backend/);
    // doctor's fix for a missing Neural Engine names the CLI option first.
    expect(run(['doctor']).stdout).toMatch(/fix: use the simulator.*: --backend sim on the ane command line/);
  });

  it('prints its version', () => {
    expect(run(['--version']).stdout.trim()).toMatch(/^\d+\.\d+\.\d+/);
  });
});
