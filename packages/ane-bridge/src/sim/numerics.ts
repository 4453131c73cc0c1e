/**
 * The simulator's arithmetic model (shared/conformance/README.md, "Numeric convention"):
 *
 * - Tensors are fp16 between ops. Each op reads fp16 operands, computes in fp32 and rounds its
 *   result to fp16 once (nearest, ties to even); values beyond the fp16 range become ±Infinity.
 * - Kernels evaluate in float64 (JS numbers) and store into a Float32Array, which rounds to fp32;
 *   `finishFloat` then rounds an fp16 result to fp16. So a result is fp16(fp32(exact)): the value
 *   an fp32 datapath followed by an fp16 store gives. Accumulations (conv, matmul, reductions)
 *   are float64 sums stored once, i.e. "accumulate in fp32, round once" with a wider accumulator.
 */
import { roundToFp16InPlace } from 'ane-ir/mil';
import { saturateToInfinity, saturateToInfinityTwin } from './behaviours';
import { runSimOp } from './native-ops';
import type { FloatTensor } from './tensor';

/** Rounds an op's fp32 result to fp16 in place when the op's result type is fp16. */
export function finishFloat(out: FloatTensor): void {
  if (out.dtype === 'fp16') roundToFp16(out.data);
}

/**
 * Rounds every value to its nearest fp16 in place (ane-ir/mil roundToFp16InPlace, or native);
 * with `saturateAt`, then turns every |v| >= saturateAt into ±inf in the same pass.
 */
export function roundToFp16(values: Float32Array, saturateAt?: number): void {
  runSimOp(
    'roundToFp16',
    values,
    (ops) => ops.roundToFp16(values, saturateAt ?? Number.POSITIVE_INFINITY),
    () => {
      roundToFp16InPlace(values);
      if (saturateAt !== undefined) saturateToInfinityTwin(values, saturateAt, true);
    },
  );
}

/** finishFloat, then matmul's output saturation (rule num-matmul-output-inf) when it applies. */
export function finishSaturated(out: FloatTensor, saturateAt: number | undefined): void {
  if (out.dtype === 'fp16') roundToFp16(out.data, saturateAt);
  else if (saturateAt !== undefined) saturateToInfinity(out.data, saturateAt, true);
}

/** Round half to even, the rounding of `quantize` (and of IEEE's default mode). */
export function roundHalfToEven(value: number): number {
  const rounded = Math.round(value);
  // Math.round sends every .5 up; an odd result from a tie goes back down to the even neighbour.
  if (rounded - value === 0.5 && rounded % 2 !== 0) return rounded - 1;
  return rounded;
}

const TWO_OVER_SQRT_PI = 2 / Math.sqrt(Math.PI);
const ONE_OVER_SQRT_PI = 1 / Math.sqrt(Math.PI);

/** erf(x) = 2/sqrt(pi) * sum_n (-1)^n x^(2n+1) / (n! (2n+1)), for |x| < 3 (error < 1e-14). */
function erfSeries(x: number): number {
  const x2 = x * x;
  let term = x;
  let sum = x;
  for (let n = 1; n < 200; n++) {
    term *= -x2 / n;
    const contribution = term / (2 * n + 1);
    sum += contribution;
    if (Math.abs(contribution) < 1e-17 * Math.abs(sum)) break;
  }
  return TWO_OVER_SQRT_PI * sum;
}

/**
 * erfc(x) for x >= 3 by its continued fraction
 *   erfc(x) = exp(-x^2)/sqrt(pi) * 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + 2/(x + ...)))))
 * evaluated from the tail (60 levels is far past convergence for x >= 3).
 */
function erfcContinuedFraction(x: number): number {
  let tail = x;
  for (let k = 60; k >= 1; k--) tail = x + k / 2 / tail;
  return (Math.exp(-x * x) * ONE_OVER_SQRT_PI) / tail;
}

/** Complementary error function, accurate in relative terms for large positive x. */
export function erfc(x: number): number {
  if (Number.isNaN(x)) return x;
  if (x < 0) return 2 - erfc(-x);
  if (x < 3) return 1 - erfSeries(x);
  return erfcContinuedFraction(x);
}

/** Error function. */
export function erf(x: number): number {
  if (Number.isNaN(x)) return x;
  if (Math.abs(x) < 3) return erfSeries(x);
  return x > 0 ? 1 - erfcContinuedFraction(x) : erfcContinuedFraction(-x) - 1;
}
