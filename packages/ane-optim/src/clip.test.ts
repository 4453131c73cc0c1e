import { describe, expect, it } from 'vitest';
import { clipGradNorm, globalNorm } from './clip';
import { OptimizerConfigError } from './errors';

describe('clipGradNorm (hand-computed)', () => {
  it('returns the global norm over every leaf and scales by maxNorm / (norm + 1e-6)', () => {
    // norm = sqrt(3^2 + 4^2 + 12^2) = 13
    const grads = { a: new Float32Array([3, 4]), b: { c: new Float32Array([12]) } };
    expect(globalNorm(grads)).toBe(13);
    expect(clipGradNorm(grads, 1)).toBe(13);
    const factor = Math.fround(1 / Math.fround(13 + Math.fround(1e-6)));
    expect([...grads.a, ...grads.b.c]).toEqual([3, 4, 12].map((g) => Math.fround(g * factor)));
    expect(globalNorm(grads)).toBeCloseTo(1, 6);
  });

  it('leaves gradients under the limit untouched (bit for bit)', () => {
    const grads = [new Float32Array([0.3, -0.4])];
    const before = grads[0]?.slice();
    expect(clipGradNorm(grads, 1)).toBeCloseTo(0.5, 7);
    expect(grads[0]).toEqual(before);
  });

  it('works on one flat buffer (a flat arena’s grads)', () => {
    const grads = new Float32Array([6, 8]);
    expect(clipGradNorm(grads, 5)).toBe(10);
    expect(grads[0]).toBeCloseTo(3, 5);
    expect(grads[1]).toBeCloseTo(4, 5);
  });

  it('leaves non-finite gradients alone and returns the non-finite norm', () => {
    const grads = new Float32Array([1, Number.POSITIVE_INFINITY, 2]);
    expect(clipGradNorm(grads, 1)).toBe(Number.POSITIVE_INFINITY);
    expect([...grads]).toEqual([1, Number.POSITIVE_INFINITY, 2]);
    expect(clipGradNorm(new Float32Array([Number.NaN]), 1)).toBeNaN();
  });

  it('rejects a bad maxNorm and non-fp32 leaves', () => {
    expect(() => clipGradNorm(new Float32Array(1), 0)).toThrow(OptimizerConfigError);
    expect(() => clipGradNorm(new Float32Array(1), Number.NaN)).toThrow(
      /maxNorm must be a positive finite number/,
    );
    expect(() => clipGradNorm({ w: new Float64Array(2) } as never, 1)).toThrow(
      /'w' is Float64Array\(2\), expected a Float32Array/,
    );
  });
});
