/**
 * The test harness every rule goes through: the derived gradient must match both the scalar
 * reference autograd (to float64 rounding) and central finite differences (to ~1e-6).
 */
import { mul, reduceSum, type Tensor } from 'ane-ir';
import { expect } from 'vitest';
import { gradcheck } from '../gradcheck';
import { seededRandom, uniform } from './random';
import { referenceGradients } from './reference';

export interface GradientCase {
  readonly loss: Tensor;
  readonly wrt: readonly Tensor[];
  readonly feeds: ReadonlyMap<Tensor, Float64Array>;
}

/** `sum(y * R)` (kept as `[1, ..., 1]`) with a seeded random constant R: the rule under test then sees a random dy. */
export function weightedSum(y: Tensor, seed = 7): Tensor {
  const weights = y.graph.constant(uniform(seededRandom(seed), y.size), y.shape, {
    dtype: y.dtype,
    name: 'weights',
  });
  return reduceSum(
    mul(y, weights, { name: 'weighted' }),
    y.shape.map((_, axis) => axis),
    { keepDims: true, name: 'loss' },
  );
}

/** Feeds for `sources`: seeded uniform values in [low, high). */
export function feedsFor(
  sources: readonly Tensor[],
  seed = 1,
  low = -1,
  high = 1,
): Map<Tensor, Float64Array> {
  const random = seededRandom(seed);
  return new Map(sources.map((source) => [source, uniform(random, source.size, low, high)] as const));
}

/** Asserts the derived gradients of `testCase` against the reference autograd and finite differences. */
export function expectGradientsMatch(
  testCase: GradientCase,
  tolerance: { reference?: number; numeric?: number; epsilon?: number } = {},
): void {
  const reference = referenceGradients(testCase.loss, testCase.wrt, testCase.feeds);
  const results = gradcheck({
    loss: testCase.loss,
    wrt: testCase.wrt,
    feeds: testCase.feeds,
    ...(tolerance.epsilon !== undefined ? { epsilon: tolerance.epsilon } : {}),
  });
  results.forEach((result, i) => {
    const expected = reference.grads[i]!;
    let worst = 0;
    result.analytic.forEach((value, e) => {
      worst = Math.max(worst, Math.abs(value - expected[e]!) / Math.max(1, Math.abs(expected[e]!)));
    });
    expect(worst, `${result.name}: derived vs reference autograd`).toBeLessThan(tolerance.reference ?? 1e-9);
    expect(result.maxRelError, `${result.name}: derived vs finite differences`).toBeLessThan(
      tolerance.numeric ?? 1e-6,
    );
    // The check must have checked something: a gradient that is all zeros passes vacuously.
    expect(
      expected.some((v) => v !== 0),
      `${result.name}: the reference gradient is not all zeros`,
    ).toBe(true);
  });
}
