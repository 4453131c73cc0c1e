/**
 * Issue 10, defect 2: the native `…Async` kernels held the typed array, not its memory, so a
 * buffer transferred (detached) and collected while the kernel ran was a use-after-free (SIGSEGV,
 * or a heap-use-after-free under ASan), and a resizable buffer could shrink under the kernel. The
 * scenarios run in a child process (kernel-buffers.child.cjs), so a crash is a signal exit of the
 * child and not a dead test runner. native/test/run-asan.cjs runs this file against the ASan build
 * of the addon as well (the child inherits ANE_BRIDGE_NATIVE_PATH and the ASan LD_PRELOAD).
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { HostKernelBufferError, hostKernels } from '../src/index';
import { nativeAddon } from '../src/native/loader';

const loaded = nativeAddon();
const addonPath = loaded.implementation === 'native' ? loaded.path : undefined;
const child = fileURLToPath(new URL('./kernel-buffers.child.cjs', import.meta.url));
const SANITIZER_REPORT = /ERROR: AddressSanitizer|runtime error:|SUMMARY: \w+Sanitizer/;

describe('native async kernels and the memory under their arrays', () => {
  it.skipIf(addonPath === undefined)(
    'survive arrays detached and collected mid-run, refuse resizable buffers, use growable shared ones (skipped without the addon)',
    () => {
      const run = spawnSync(process.execPath, ['--expose-gc', child, addonPath as string], {
        encoding: 'utf8',
        timeout: 240_000,
        maxBuffer: 16 << 20,
      });
      const output = `${run.stdout}${run.stderr}`;
      expect(SANITIZER_REPORT.test(output), output).toBe(false);
      expect({ signal: run.signal, status: run.status }, output).toEqual({ signal: null, status: 0 });
      expect(run.stdout.trim().split('\n')).toEqual([
        'ok sgemmAsync, C and A detached: ERR_ANE_BRIDGE_DETACHED',
        'ok fp32ToFp16Async, src detached: result complete',
        'ok fp16ToFp32Async, dst detached: ERR_ANE_BRIDGE_DETACHED',
        'ok adamUpdateAsync, params detached: ERR_ANE_BRIDGE_DETACHED',
        'ok adamUpdateAsync: nothing written',
        'ok resizable buffer refused: ERR_ANE_BRIDGE_RESIZABLE_BUFFER',
        'ok growable SharedArrayBuffer grown mid-run: result right',
        'done',
      ]);
    },
  );

  it.skipIf(hostKernels.native === null)(
    'the public async kernels reject a detached output with a HostKernelBufferError naming the kernel (skipped without the addon)',
    async () => {
      const n = 1 << 20;
      const params = new Float32Array(n).fill(1);
      const options = {
        lr: 1e-3,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weightDecay: 0,
        step: 1,
        biasCorrection: true,
      };
      const running = hostKernels.native!.adamwUpdateAsync(
        params,
        new Float32Array(n).fill(0.5),
        new Float32Array(n),
        new Float32Array(n),
        options,
      );
      structuredClone(params.buffer, { transfer: [params.buffer] });
      const error = await running.then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(HostKernelBufferError);
      expect(error).toMatchObject({ code: 'ERR_ANE_BRIDGE_DETACHED' });
      expect((error as Error).message).toMatch(
        /^adamwUpdateAsync: params was detached or resized while the kernel ran/,
      );
    },
  );

  it('every implementation refuses a resizable buffer at the call with a HostKernelBufferError', async () => {
    for (const kernels of [hostKernels.ts, hostKernels.native].filter((k) => k !== null)) {
      const x = new Float32Array(
        new (ArrayBuffer as unknown as new (n: number, o: { maxByteLength: number }) => ArrayBuffer)(16, {
          maxByteLength: 64,
        }),
      );
      const expected = new HostKernelBufferError(
        'sumOfSquares: x is a view of a resizable ArrayBuffer, whose memory can shrink while a kernel uses it; copy it into a fixed-length array first (new Float32Array(view))',
        'ERR_ANE_BRIDGE_RESIZABLE_BUFFER',
      );
      expect(() => kernels.sumOfSquares(x)).toThrow(expected);
      await expect(kernels.sumOfSquaresAsync(x)).rejects.toThrow(expected);
      expect(kernels.sumOfSquares(new Float32Array(x))).toBe(0);
    }
  });
});
