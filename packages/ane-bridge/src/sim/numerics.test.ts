import { describe, expect, it } from 'vitest';
import { erf, erfc, finishFloat, roundHalfToEven } from './numerics';

// Composite Simpson's rule on 2/sqrt(pi) exp(-t^2) over [a, b]: an independent reference.
function simpson(a: number, b: number, steps = 20000): number {
  const h = (b - a) / steps;
  let sum = Math.exp(-a * a) + Math.exp(-b * b);
  for (let i = 1; i < steps; i++) sum += (i % 2 === 1 ? 4 : 2) * Math.exp(-((a + i * h) ** 2));
  return ((2 / Math.sqrt(Math.PI)) * sum * h) / 3;
}

describe('roundHalfToEven', () => {
  it('rounds ties to the even neighbour and everything else to nearest', () => {
    expect([0.5, 1.5, 2.5, 3.5, -0.5, -1.5, -2.5, 2.4999, 2.5001, -7.5].map(roundHalfToEven)).toEqual([
      0, 2, 2, 4, -0, -2, -2, 2, 3, -8,
    ]);
  });
});

describe('erf and erfc', () => {
  it('match numerical integration to 1e-12 (erf) and to 1e-9 relative (erfc tail)', () => {
    for (const x of [0.1, 0.5, 1, 2, 2.9, 3.1, 4])
      expect(Math.abs(erf(x) - simpson(0, x))).toBeLessThan(1e-12);
    for (const x of [-3, -1]) expect(erf(x)).toBeCloseTo(-erf(-x), 15);
    for (const x of [1, 3, 4.5, 6]) {
      const tail = simpson(x, x + 10);
      expect(Math.abs(erfc(x) - tail) / tail).toBeLessThan(1e-9);
    }
    expect(erfc(-2)).toBeCloseTo(2 - erfc(2), 15);
  });
});

describe('finishFloat', () => {
  it('rounds an fp16 result to nearest even once from its fp32 value', () => {
    // 1 + 2^-11 + 2^-40 stored in fp32 loses 2^-40 and becomes the tie 1 + 2^-11, which rounds to 1:
    // the result model is fp16(fp32(v)), what an fp32 datapath with an fp16 store gives.
    const out = {
      dtype: 'fp16' as const,
      shape: [3],
      data: Float32Array.of(1 + 2 ** -11 + 2 ** -40, 1 + 2 ** -11 + 2 ** -20, 70000),
    };
    finishFloat(out);
    expect([...out.data]).toEqual([1, 1 + 2 ** -10, Number.POSITIVE_INFINITY]);
  });

  it('leaves an fp32 result alone', () => {
    const out = { dtype: 'fp32' as const, shape: [1], data: Float32Array.of(1 + 2 ** -20) };
    finishFloat(out);
    expect(out.data[0]).toBe(1 + 2 ** -20);
  });
});
