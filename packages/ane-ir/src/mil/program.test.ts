import { describe, expect, it } from 'vitest';
import { MilError } from './errors';
import { byteLength, bytesPerElement, type TensorSpec } from './program';

describe('device buffer sizes', () => {
  it('are 2 bytes per fp16 element and 4 per fp32 element', () => {
    expect(byteLength({ name: 'x', dtype: 'fp16', shape: [1, 3, 1, 5] })).toBe(30);
    expect(byteLength({ name: 'x', dtype: 'fp32', shape: [2, 2] })).toBe(16);
  });

  it('refuse other dtypes instead of sizing them as 4-byte elements', () => {
    for (const dtype of ['int8', 'uint8', 'int16', undefined]) {
      const spec = { name: 'x', dtype, shape: [1, 4, 1, 64] } as unknown as TensorSpec;
      expect(() => byteLength(spec), String(dtype)).toThrow(MilError);
      expect(() => bytesPerElement(spec.dtype), String(dtype)).toThrow(
        /TensorSpec dtype must be 'fp16' or 'fp32'/,
      );
    }
  });
});
