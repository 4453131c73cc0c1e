import { describe, expect, it } from 'vitest';
import { capabilities } from '../capabilities';
import { nativeAddon } from '../native/loader';
import {
  adamwUpdate,
  hostKernels,
  hostSimdLevel,
  hostThreads,
  setHostSimdLevel,
  setHostThreads,
  sgemmAsync,
  sumOfSquares,
  sumOfSquaresAsync,
} from './index';
import { randomArray, rng } from './kernels.test-helper';

const native = nativeAddon().addon !== null;

describe('host kernel dispatch', () => {
  it('uses the native kernels when the addon is loaded, the TS twins otherwise', () => {
    expect(hostKernels.ts.implementation).toBe('ts');
    expect(hostKernels.active.implementation).toBe(native ? 'native' : 'ts');
    expect(hostKernels.native === null).toBe(!native);
    expect(sumOfSquares(new Float32Array([1, 2, 2]))).toBe(9);
  });

  it.skipIf(!native)('reports and changes the pool size and SIMD path (native addon built)', () => {
    expect(setHostThreads(1)).toBe(1);
    expect(hostThreads()).toBe(1);
    expect(setHostThreads(3)).toBe(3);
    expect(setHostThreads(0)).toBeGreaterThanOrEqual(1);
    expect(() => setHostThreads(-1)).toThrow(RangeError);
    // Bounded (issue 10): past 256 threads is a RangeError from the TS face and the addon alike.
    expect(() => setHostThreads(257)).toThrow(
      new RangeError('setHostThreads: threads must be an integer in [0, 256] (0 = default), got 257'),
    );
    expect(() => nativeAddon().addon?.kernels?.setHostThreads(100000)).toThrow(
      new RangeError('setHostThreads: threads must be an integer in [0, 256] (0 = default), got 100000'),
    );
    expect(hostThreads()).toBeGreaterThanOrEqual(1);
    const level = hostSimdLevel();
    expect(level).toBe(capabilities().simd.level);
    expect(setHostSimdLevel('scalar')).toBe(true);
    expect(hostSimdLevel()).toBe('scalar');
    expect(setHostSimdLevel(process.arch === 'arm64' ? 'avx2-fma' : 'neon')).toBe(false);
    if (level !== null) expect(setHostSimdLevel(level)).toBe(true);
  });

  it('TS async entry points reject (never throw) on bad arguments', async () => {
    let promise: Promise<void> | undefined;
    expect(() => {
      promise = hostKernels.ts.sgemmAsync(
        false,
        false,
        -1,
        1,
        1,
        1,
        new Float32Array(1),
        1,
        new Float32Array(1),
        1,
        0,
        new Float32Array(1),
        1,
      );
    }).not.toThrow();
    await expect(promise).rejects.toThrow(RangeError);
  });

  it('runs concurrent async kernels and sync kernels meanwhile, all correct', async () => {
    const random = rng(50);
    const M = 96;
    const N = 160;
    const K = 300;
    const jobs = Array.from({ length: 4 }, () => ({
      A: randomArray(M * K, random),
      B: randomArray(K * N, random),
      C: new Float32Array(M * N),
    }));
    const pending = jobs.map((j) => sgemmAsync(false, false, M, N, K, 1, j.A, K, j.B, N, 0, j.C, N));
    // While they run: synchronous work on the JS thread (a busy pool runs it inline).
    const p = randomArray(100_000, random);
    const g = randomArray(100_000, random);
    const expectedSum = hostKernels.ts.sumOfSquares(p);
    adamwUpdate(p, g, new Float32Array(p.length), new Float32Array(p.length), {
      lr: 1e-3,
      beta1: 0.9,
      beta2: 0.999,
      eps: 1e-8,
      weightDecay: 0,
      step: 1,
      biasCorrection: true,
    });
    const sums = await Promise.all([sumOfSquaresAsync(g), sumOfSquaresAsync(g)]);
    expect(sums[0]).toBe(sums[1]);
    expect(expectedSum).toBeGreaterThan(0);
    await Promise.all(pending);
    for (const j of jobs) {
      const reference = new Float32Array(M * N);
      hostKernels.ts.sgemm(false, false, M, N, K, 1, j.A, K, j.B, N, 0, reference, N);
      for (let i = 0; i < reference.length; i++) {
        expect(Math.abs((j.C[i] as number) - (reference[i] as number))).toBeLessThan(1e-4);
      }
    }
  });
});
