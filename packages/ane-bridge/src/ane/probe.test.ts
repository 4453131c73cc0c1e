import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  aneProbeVerdict,
  type ChildOutcome,
  chipFamilyOf,
  describeVerdict,
  type ProbeEnvironment,
  verdictFromChild,
} from './probe';
import { checkProbeOutput, probeInput } from './probe-program';

const ok = (stdout: string): ChildOutcome => ({
  status: 0,
  signal: null,
  stdout,
  stderr: '',
  timedOut: false,
});

describe('verdictFromChild', () => {
  it("takes the child's last JSON line when it exited cleanly", () => {
    expect(verdictFromChild(ok('noise\n{"result":"pass","detail":"ran"}\n'))).toEqual({
      result: 'pass',
      detail: 'ran',
    });
    expect(verdictFromChild(ok('{"result":"fail","detail":"CompileError: x"}'))).toEqual({
      result: 'fail',
      detail: 'CompileError: x',
    });
  });

  it('calls a dead child a crash, with the signal and the end of stderr', () => {
    const verdict = verdictFromChild({
      status: null,
      signal: 'SIGSEGV',
      stdout: '',
      stderr: 'a\nb\nc\nd\ne\nf\nSegmentation fault in AppleNeuralEngine',
      timedOut: false,
    });
    expect(verdict.result).toBe('crash');
    expect(verdict.detail).toContain('killed by SIGSEGV');
    expect(verdict.detail).toContain('Segmentation fault in AppleNeuralEngine');
    expect(verdict.detail).not.toContain('a\nb');
    expect(verdictFromChild({ ...ok('{"result":"pass","detail":"x"}'), status: 3 }).result).toBe('crash');
    expect(verdictFromChild({ ...ok(''), status: null, timedOut: true }).result).toBe('timeout');
  });
});

describe('aneProbeVerdict', () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });

  function environment(runs: ChildOutcome[]): ProbeEnvironment & { spawned: number } {
    const dir = mkdtempSync(join(tmpdir(), 'ane-probe-test-'));
    dirs.push(dir);
    const addonPath = join(dir, 'ane_bridge.node');
    writeFileSync(addonPath, 'build one');
    const env = {
      addonPath,
      cacheDir: join(dir, 'cache'),
      chip: 'Apple M3 Max',
      macos: '15.4',
      darwin: '24.4.0',
      spawned: 0,
      runChild() {
        env.spawned++;
        return runs.shift() ?? ok('{"result":"fail","detail":"no more runs"}');
      },
      now: () => new Date('2026-11-26T10:00:00Z'),
    };
    return env;
  }

  it('probes once per addon build and OS version, then answers from the cache', () => {
    const env = environment([ok('{"result":"pass","detail":"ran"}')]);
    const first = aneProbeVerdict(env);
    expect(first).toMatchObject({ result: 'pass', chip: 'Apple M3 Max', chipFamily: 'M3', macos: '15.4' });
    expect(first.cached).toBeUndefined();
    const second = aneProbeVerdict(env);
    expect(env.spawned).toBe(1);
    expect(second).toEqual({ ...first, cached: true });
    expect(describeVerdict(second)).toContain('cached verdict from 2026-11-26T10:00:00.000Z');

    // A new OS version, a rebuilt addon, or force: probe again.
    aneProbeVerdict({ ...env, macos: '15.5' });
    expect(env.spawned).toBe(2);
    writeFileSync(env.addonPath, 'build two');
    aneProbeVerdict(env);
    expect(env.spawned).toBe(3);
    aneProbeVerdict(env, { force: true });
    expect(env.spawned).toBe(4);
    expect(readdirSync(env.cacheDir!).filter((f) => f.endsWith('.json'))).toHaveLength(3);
  });

  it('caches failures too, and works without a cache directory', () => {
    const env = environment([ok('{"result":"fail","detail":"CompileError: nope"}')]);
    const verdict = aneProbeVerdict(env);
    expect(verdict.result).toBe('fail');
    const cached = JSON.parse(readFileSync(join(env.cacheDir!, readdirSync(env.cacheDir!)[0]!), 'utf8'));
    expect(cached.detail).toBe('CompileError: nope');
    const uncached = environment([
      ok('{"result":"pass","detail":"ran"}'),
      ok('{"result":"pass","detail":"ran"}'),
    ]);
    aneProbeVerdict({ ...uncached, cacheDir: undefined });
    aneProbeVerdict({ ...uncached, cacheDir: undefined });
    expect(uncached.spawned).toBe(2);
  });
});

describe('the probe program', () => {
  it('knows the chip families of Apple silicon names', () => {
    expect(chipFamilyOf('Apple M4 Pro')).toBe('M4');
    expect(chipFamilyOf('Apple M1')).toBe('M1');
    expect(chipFamilyOf('Apple M9 Ultra')).toBeUndefined();
    expect(chipFamilyOf('AMD EPYC')).toBeUndefined();
  });

  it('checks its output bit for bit against 2·x', () => {
    const input = probeInput();
    const doubled = new Uint8Array(input.length);
    const x = new Uint16Array(input.slice().buffer);
    const y = new Uint16Array(doubled.buffer);
    // 2x in fp16: add one to the exponent (every input is a normal number or zero).
    for (let i = 0; i < x.length; i++) y[i] = x[i]! === 0 || x[i]! === 0x8000 ? x[i]! : x[i]! + 0x0400;
    expect(checkProbeOutput(input, doubled)).toBeUndefined();
    // The same bytes as Node Buffers at odd offsets inside larger buffers (Buffer#slice is a view).
    const at = (bytes: Uint8Array, shift: number) => {
      const outer = Buffer.alloc(bytes.length + shift + 3);
      outer.set(bytes, shift);
      return outer.subarray(shift, shift + bytes.length);
    };
    expect(checkProbeOutput(at(input, 3), at(doubled, 1))).toBeUndefined();
    y[5] = 0;
    expect(checkProbeOutput(input, doubled)).toMatch(/^1 of 2048 elements differ from 2·x \(first at 5/);
  });
});
