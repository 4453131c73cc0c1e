import { describe, expect, it } from 'vitest';
import { compareOutput } from './compare';

const tolerance = { atol: 0.01, rtol: 0.1 };

describe('compareOutput', () => {
  it('passes within atol + rtol·|expected| and names the worst element', () => {
    // Allowed: 0.01 + 0.1·1 = 0.11 at index 0, 0.01 + 0.1·10 = 1.01 at index 1 ([1, 2] coords (1, 0)).
    const result = compareOutput(new Float32Array([1.1, 10.5]), new Float32Array([1, 10]), [2, 1], tolerance);
    expect(result.pass).toBe(true);
    expect(result.worst?.index).toBe(0);
    expect(result.worst?.coords).toEqual([0, 0]);
    expect(result.worst?.error).toBeCloseTo(0.1, 6);
    expect(result.worst?.ratio).toBeCloseTo(0.1 / 0.11, 5);
  });

  it('fails just past the bound, and reports where', () => {
    const result = compareOutput(new Float32Array([1, 11.1]), new Float32Array([1, 10]), [1, 2], tolerance);
    expect(result.pass).toBe(false);
    expect(result.worst?.coords).toEqual([0, 1]);
  });

  it('fails on NaN and infinity, and treats -0 as +0', () => {
    expect(compareOutput(new Float32Array([Number.NaN]), new Float32Array([0]), [1], tolerance).pass).toBe(
      false,
    );
    const inf = compareOutput(
      new Float32Array([0, Number.POSITIVE_INFINITY]),
      new Float32Array([0, 1]),
      [2],
      tolerance,
    );
    expect(inf.pass).toBe(false);
    expect(inf.worst?.index).toBe(1);
    expect(inf.worst?.ratio).toBe(Number.POSITIVE_INFINITY);
    expect(compareOutput(new Float32Array([-0]), new Float32Array([0]), [1], { atol: 0, rtol: 0 }).pass).toBe(
      true,
    );
  });

  it('refuses a negative or non-finite tolerance, which would pass any output', () => {
    // With atol = -1 the allowed error is negative, so every ratio is negative and "within" 1.
    const wrong = [new Float32Array([100]), new Float32Array([0]), [1]] as const;
    expect(() => compareOutput(...wrong, { atol: -1, rtol: 0 })).toThrow(RangeError);
    expect(() => compareOutput(...wrong, { atol: 0, rtol: -2 })).toThrow(
      'tolerance.rtol must be a finite number ≥ 0',
    );
    expect(() => compareOutput(...wrong, { atol: Number.POSITIVE_INFINITY, rtol: 0 })).toThrow(RangeError);
    expect(() => compareOutput(...wrong, { atol: Number.NaN, rtol: 0 })).toThrow(RangeError);
  });
});
