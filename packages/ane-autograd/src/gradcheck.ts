/**
 * Gradient checking: the gradients the VJP table derives, evaluated in float64 by ane-ir's reference
 * interpreter, against central finite differences of the loss through the same interpreter.
 */
import { constantNumbers, evaluate, type Feeds, type Tensor, type TensorValues } from 'ane-ir';
import { gradients } from './backward';
import { AutogradError } from './errors';

export interface GradcheckOptions {
  /** The value differentiated (its elements are summed). */
  loss: Tensor;
  /** Sources (inputs or params) to check the gradient of. */
  wrt: readonly Tensor[];
  /** Values for every input and data-less param the loss reads, by node or by name. */
  feeds: Feeds;
  /** Finite-difference step (default 1e-5: float64 central differences are then accurate to ~1e-9). */
  epsilon?: number;
}

export interface GradcheckResult {
  /** The source's name. */
  readonly name: string;
  /** max |analytic - numeric| over the elements. */
  readonly maxAbsError: number;
  /** max |analytic - numeric| / max(|analytic|, |numeric|, 1e-6) over the elements. */
  readonly maxRelError: number;
  /** The derived gradient, evaluated in float64. */
  readonly analytic: Float64Array;
  /** The central finite-difference estimate. */
  readonly numeric: Float64Array;
}

function feedEntries(feeds: Feeds): [Tensor | string, TensorValues][] {
  return feeds instanceof Map ? [...feeds.entries()] : Object.entries(feeds);
}

/**
 * Derives `d sum(loss) / d wrt` with the VJP table (appending the backward ops to the loss's graph),
 * evaluates it in float64, and compares it element by element with central finite differences.
 */
export function gradcheck(options: GradcheckOptions): GradcheckResult[] {
  const { loss, wrt } = options;
  const epsilon = options.epsilon ?? 1e-5;
  const base = new Map<Tensor | string, TensorValues>(feedEntries(options.feeds));
  const start = wrt.map((source) => {
    if (source.op.kind !== 'input' && source.op.kind !== 'param') {
      throw new AutogradError(
        `gradcheck: '${source.name}' is a ${source.op.kind} node; check gradients of inputs and params (sources)`,
      );
    }
    const fed = base.get(source) ?? base.get(source.name);
    if (fed !== undefined) return Float64Array.from(fed as ArrayLike<number>);
    if (source.op.kind === 'param' && source.op.data !== undefined) return constantNumbers(source.op.data);
    throw new AutogradError(`gradcheck: no value fed for '${source.name}'; add it to feeds`);
  });
  wrt.forEach((source, i) => {
    base.set(source, start[i]!);
  });

  const derived = gradients(loss, wrt);
  const analytic = evaluate(derived, base);
  const total = (feeds: Feeds) => evaluate([loss], feeds)[0]!.reduce((sum, v) => sum + v, 0);

  return wrt.map((source, i) => {
    const values = Float64Array.from(start[i]!);
    const feeds = new Map(base);
    feeds.set(source, values);
    const numeric = new Float64Array(values.length);
    for (let e = 0; e < values.length; e++) {
      const original = values[e]!;
      values[e] = original + epsilon;
      const plus = total(feeds);
      values[e] = original - epsilon;
      const minus = total(feeds);
      values[e] = original;
      numeric[e] = (plus - minus) / (2 * epsilon);
    }
    const derivedValues = analytic[i]!;
    let maxAbsError = 0;
    let maxRelError = 0;
    for (let e = 0; e < numeric.length; e++) {
      const a = derivedValues[e]!;
      const n = numeric[e]!;
      const abs = Math.abs(a - n);
      const rel = abs / Math.max(Math.abs(a), Math.abs(n), 1e-6);
      if (!(abs <= maxAbsError)) maxAbsError = abs; // NaN propagates
      if (!(rel <= maxRelError)) maxRelError = rel;
    }
    return { name: source.name, maxAbsError, maxRelError, analytic: derivedValues, numeric };
  });
}
