import { describe, expect, it } from 'vitest';
import { capabilities } from '../capabilities';
import { nativeAddon } from '../native/loader';
import {
  adamwUpdate,
  hostKernels,
  hostSimdLevel,
  hostThreads,
  SGD_ADD,
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

  it('TS twins: the background kernels are the async ones', () => {
    expect(hostKernels.ts.background.sgemmAsync).toBe(hostKernels.ts.sgemmAsync);
    expect(Object.keys(hostKernels.ts.background).sort()).toEqual(
      Object.keys(hostKernels.ts)
        .filter((name) => name.endsWith('Async'))
        .sort(),
    );
  });

  it.skipIf(!native)(
    "background kernels (native): the sync kernels' bits, several at once beside foreground work",
    async () => {
      const kernels = hostKernels.native!;
      expect(Object.keys(kernels.background).sort()).toEqual(
        Object.keys(kernels)
          .filter((name) => name.endsWith('Async'))
          .sort(),
      );
      const random = rng(51);
      const [M, N, K] = [130, 70, 260];
      const jobs = Array.from({ length: 5 }, () => ({
        A: randomArray(M * K, random),
        B: randomArray(K * N, random),
        C: new Float32Array(new SharedArrayBuffer(M * N * 4)),
      }));
      const pending = jobs.map((j) =>
        kernels.background.sgemmAsync(false, true, M, N, K, 1, j.A, K, j.B, K, 0, j.C, N),
      );
      // Meanwhile the foreground keeps the pool: a synchronous GEMM on this thread.
      const fore = new Float32Array(M * N);
      kernels.sgemm(false, true, M, N, K, 1, jobs[0]!.A, K, jobs[0]!.B, K, 0, fore, N);
      const [C, S] = [48, 300];
      const dout = randomArray(C * S, random);
      const x = randomArray(C * S, random);
      const weight = randomArray(C, random);
      const rstd = randomArray(S, random).map((v) => 1 + Math.abs(v));
      const dx = [new Float32Array(C * S), new Float32Array(C * S)];
      const dweight = [new Float32Array(C), new Float32Array(C)];
      kernels.rmsnormBackward(dx[0]!, dweight[0]!, dout, x, weight, rstd, C, S);
      await kernels.background.rmsnormBackwardAsync(dx[1]!, dweight[1]!, dout, x, weight, rstd, C, S);
      expect(dx[1]).toEqual(dx[0]);
      expect(dweight[1]).toEqual(dweight[0]);
      expect(await kernels.background.sumOfSquaresAsync(x)).toBe(kernels.sumOfSquares(x));
      await Promise.all(pending);
      for (const j of jobs) {
        const reference = new Float32Array(M * N);
        kernels.sgemm(false, true, M, N, K, 1, j.A, K, j.B, K, 0, reference, N);
        expect(new Uint32Array(j.C.buffer)).toEqual(new Uint32Array(reference.buffer));
      }
      expect(new Uint32Array(jobs[0]!.C.buffer)).toEqual(new Uint32Array(fore.buffer));
      // Bad arguments reject with the sync kernel's error; a detached output, with the async one's.
      const one = new Float32Array(1);
      await expect(
        kernels.background.sgemmAsync(false, false, -1, 1, 1, 1, one, 1, one, 1, 0, one, 1),
      ).rejects.toThrow(RangeError);
      const big = new Float32Array(1 << 21).fill(0.5);
      const out = new Float32Array(1 << 21);
      const running = kernels.background.sgdUpdateAsync(out, big, null, SGD_ADD);
      structuredClone(out.buffer, { transfer: [out.buffer] });
      await expect(running).rejects.toMatchObject({
        name: 'HostKernelBufferError',
        code: 'ERR_ANE_BRIDGE_DETACHED',
        message: expect.stringMatching(/^sgdUpdateAsync: /),
      });
    },
  );

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
