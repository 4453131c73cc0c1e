import { describe, expect, it } from 'vitest';
import { hostKernels } from './index';

describe('kernels over shared memory', () => {
  it.skipIf(hostKernels.native === null)(
    'the native kernels read and write arrays backed by a SharedArrayBuffer (skipped without the addon)',
    () => {
      const native = hostKernels.native!;
      const x = new Float32Array(new SharedArrayBuffer(4 * 5)).fill(2);
      expect(native.sumOfSquares(x)).toBe(20);
      const half = new Uint16Array(new SharedArrayBuffer(2 * 5));
      native.fp32ToFp16(x, half);
      expect([...half]).toEqual(new Array(5).fill(0x4000));
    },
  );
});
