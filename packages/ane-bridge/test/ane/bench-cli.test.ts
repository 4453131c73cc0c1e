import { spawnSync } from 'node:child_process';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const ane = resolve(import.meta.dirname, '..', '..', 'bin', 'ane.mjs');
const run = (args: string[]) => spawnSync(process.execPath, [ane, ...args], { encoding: 'utf8' });

describe('ane bench and ane probe', () => {
  it('bench --backend sim --json times the Stories15M layer', () => {
    const result = run(['bench', '--backend', 'sim', '--iterations', '1', '--json']);
    expect(result.status, result.stderr).toBe(0);
    const report = JSON.parse(result.stdout);
    expect(report).toMatchObject({ benchmark: 'stories15m-layer-forward', backend: 'sim', iterations: 1 });
    expect(report.config).toEqual({ dim: 288, heads: 6, hidden: 768, seq: 256 });
    expect(report.gflops).toBeGreaterThan(0);
  });

  it('bench refuses bad options with exit code 2', () => {
    expect(run(['bench', '--iterations', '0']).status).toBe(2);
    expect(run(['bench', '--backend', 'gpu']).stderr).toBe(
      "ane: --backend must be one of auto, sim, ane, got 'gpu'\n",
    );
  });

  it.skipIf(process.platform === 'darwin' && process.arch === 'arm64')(
    'off Apple silicon, bench --backend ane says why and how to use the simulator; probe is not run',
    () => {
      const bench = run(['bench', '--backend', 'ane']);
      expect(bench.status).toBe(2);
      expect(bench.stderr).toContain('DeviceUnavailableError');
      expect(bench.stderr).toContain('Run with --backend sim');
      const probe = run(['probe', '--json']);
      expect(probe.status).toBe(0);
      expect(JSON.parse(probe.stdout).result).toBe('skipped');
    },
  );
});
