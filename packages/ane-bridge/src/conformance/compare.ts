/** The corpus pass rule: every element within atol + rtol·|expected|; NaN or ±inf never passes. */

export interface WorstElement {
  /** Flat element index and its coordinates in the output's shape. */
  index: number;
  coords: number[];
  got: number;
  expected: number;
  /** |got − expected| and what the tolerance allows at that element. */
  error: number;
  allowed: number;
  /** error / allowed: above 1 fails; Infinity when `got` is NaN or ±inf. */
  ratio: number;
}

export interface OutputComparison {
  pass: boolean;
  /** The element with the largest error relative to what is allowed (undefined for empty tensors). */
  worst?: WorstElement;
}

function coordsOf(index: number, shape: readonly number[]): number[] {
  const coords = new Array<number>(shape.length).fill(0);
  let rest = index;
  for (let axis = shape.length - 1; axis >= 0; axis--) {
    const size = shape[axis]!;
    coords[axis] = size === 0 ? 0 : rest % size;
    rest = size === 0 ? 0 : Math.floor(rest / size);
  }
  return coords;
}

export function compareOutput(
  got: Float32Array,
  expected: Float32Array,
  shape: readonly number[],
  tolerance: { atol: number; rtol: number },
): OutputComparison {
  for (const key of ['atol', 'rtol'] as const) {
    const value = tolerance[key];
    if (!Number.isFinite(value) || value < 0) {
      // A negative or infinite bound would let any output pass (the ratio is never above 1).
      throw new RangeError(`compareOutput: tolerance.${key} must be a finite number ≥ 0, got ${value}`);
    }
  }
  if (got.length !== expected.length) {
    throw new RangeError(`compareOutput: got ${got.length} elements, expected ${expected.length}`);
  }
  let pass = true;
  let worstIndex = -1;
  let worstRatio = -1;
  for (let i = 0; i < got.length; i++) {
    const g = got[i]!;
    const e = expected[i]!;
    const error = Math.abs(g - e);
    const allowed = tolerance.atol + tolerance.rtol * Math.abs(e);
    let ratio: number;
    if (!Number.isFinite(g)) ratio = Number.POSITIVE_INFINITY;
    else if (allowed === 0) ratio = error === 0 ? 0 : Number.POSITIVE_INFINITY;
    else ratio = error / allowed;
    if (!(ratio <= 1)) pass = false;
    // A NaN ratio (expected NaN) counts as the worst possible.
    const ranked = Number.isNaN(ratio) ? Number.POSITIVE_INFINITY : ratio;
    if (ranked > worstRatio) {
      worstRatio = ranked;
      worstIndex = i;
    }
  }
  if (worstIndex < 0) return { pass };
  const g = got[worstIndex]!;
  const e = expected[worstIndex]!;
  return {
    pass,
    worst: {
      index: worstIndex,
      coords: coordsOf(worstIndex, shape),
      got: g,
      expected: e,
      error: Math.abs(g - e),
      allowed: tolerance.atol + tolerance.rtol * Math.abs(e),
      ratio: worstRatio,
    },
  };
}
