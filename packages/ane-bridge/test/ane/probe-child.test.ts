/**
 * The probe on Linux: the child's work (compile and run the one-op program) through the real bridge
 * over the fake platform, and the parent spawning the real child (`ane __ane-probe-child`), which
 * here finds no ANE in the addon and says so.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { aneProbeVerdict, defaultProbeEnvironment, runProbeInThisProcess } from '../../src/ane/probe';
import { PROBE_PROGRAM } from '../../src/ane/probe-program';
import { compileSimProgram } from '../../src/sim';
import { type FakeAddon, loadFakeAddon } from './fake-addon';

const loaded = await loadFakeAddon();
const skipReason =
  'reason' in loaded ? ` (skipped: the fake-platform addon could not be built: ${loaded.reason})` : '';

describe.skipIf(!('addon' in loaded))(`the probe's child work over the fake platform${skipReason}`, () => {
  const { ane, fake } = (loaded as { addon: FakeAddon }).addon;
  const simulator = compileSimProgram(PROBE_PROGRAM);
  afterAll(() => (loaded as { removeTemporaryDirectory(): void }).removeTemporaryDirectory());

  it('passes when the device computes 2·x, and frees everything', () => {
    fake.setEvaluator((_mil, _weights, inputs, outputs) => simulator.run(inputs, outputs));
    expect(runProbeInThisProcess(ane)).toEqual({
      result: 'pass',
      detail: 'compiled and ran a one-op program (add) with the exact result',
    });
    expect(fake.liveObjects()).toEqual([]);
    expect(fake.violations()).toEqual([]);
  });

  it('fails, saying why, on a wrong result or a framework error', () => {
    fake.setEvaluator((_mil, _weights, _inputs, outputs) => outputs[0]!.fill(0));
    const wrong = runProbeInThisProcess(ane);
    expect(wrong.result).toBe('fail');
    expect(wrong.detail).toContain('computed a wrong result');
    fake.failNextLoads(2);
    const unloadable = runProbeInThisProcess(ane);
    expect(unloadable).toMatchObject({ result: 'fail' });
    expect(unloadable.detail).toContain('DeviceError: the ANE could not load the compiled program');
    expect(runProbeInThisProcess(null).detail).toContain('no ANE device');
    fake.setEvaluator(null);
    expect(fake.liveObjects()).toEqual([]);
  });
});

describe('the probe parent', () => {
  it('spawns `ane __ane-probe-child` and reads its verdict (here: no ANE in this addon)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ane-probe-'));
    try {
      const environment = {
        ...defaultProbeEnvironment(join(dir, 'missing.node')),
        cacheDir: join(dir, 'cache'),
      };
      const verdict = aneProbeVerdict(environment);
      expect(verdict.result).toBe('fail');
      // Linux: the addon has no ANE device (or, when it is not built, is not loaded at all).
      expect(verdict.detail).toMatch(/no ANE device|native addon is not loaded/);
      expect(aneProbeVerdict(environment).cached).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
