/**
 * Softmax + cross-entropy over channel-first logits [V, S] (one column of V vocabulary scores per
 * position), the readable twin of native/kernels/rowwise_body.inc. Math in float64.
 */
import {
  checkFloatsOrHalves,
  checkLength,
  checkNonNegativeInteger,
  checkTypedArray,
  isUint16Array,
} from './checks';
import { fp16BitsToFp32 } from './fp16';

function checkTargets(kernel: string, targets: Int32Array, V: number): void {
  for (let s = 0; s < targets.length; s++) {
    const t = targets[s] as number;
    if (t >= V) {
      throw new RangeError(
        `${kernel}: targets[${s}] = ${t} is not a vocabulary index (V = ${V}); use a negative target to ignore a position`,
      );
    }
  }
}

export function checkCrossEntropyForwardArguments(
  losses: Float32Array,
  probs: Float32Array,
  logits: Float32Array,
  targets: Int32Array,
  V: number,
  S: number,
): void {
  const kernel = 'softmaxCrossEntropyForward';
  checkTypedArray(kernel, 'losses', losses, 'Float32Array');
  checkTypedArray(kernel, 'probs', probs, 'Float32Array');
  checkTypedArray(kernel, 'logits', logits, 'Float32Array');
  checkTypedArray(kernel, 'targets', targets, 'Int32Array');
  checkNonNegativeInteger(kernel, 'V', V);
  checkNonNegativeInteger(kernel, 'S', S);
  checkLength(kernel, 'losses', losses.length, S, 'S');
  checkLength(kernel, 'probs', probs.length, V * S, 'V*S');
  checkLength(kernel, 'logits', logits.length, V * S, 'V*S');
  checkLength(kernel, 'targets', targets.length, S, 'S');
  checkTargets(kernel, targets, V);
}

/**
 * probs[:,s] = softmax(logits[:,s]);  losses[s] = logsumexp(logits[:,s]) - logits[targets[s], s].
 * A negative target ignores its position (loss 0, like PyTorch's ignore_index). probs may be the
 * logits array (in place). Any NaN in a column makes that column's probs and loss NaN; +inf logits
 * give NaN too (inf - inf), as in PyTorch.
 * losses: [S], probs: [V, S], logits: [V, S], targets: [S] in (-inf, V).
 */
export function softmaxCrossEntropyForward(
  losses: Float32Array,
  probs: Float32Array,
  logits: Float32Array,
  targets: Int32Array,
  V: number,
  S: number,
): void {
  checkCrossEntropyForwardArguments(losses, probs, logits, targets, V, S);
  if (S === 0) return; // nothing to write, whatever V is
  if (V === 0) {
    losses.fill(0);
    return;
  }
  const max = new Float64Array(S).fill(Number.NEGATIVE_INFINITY);
  const sum = new Float64Array(S);
  const picked = new Float64Array(S);
  for (let s = 0; s < S; s++) {
    const t = targets[s] as number;
    if (t >= 0) picked[s] = logits[t * S + s] as number;
  }
  for (let v = 0; v < V; v++) {
    for (let s = 0; s < S; s++) {
      const value = logits[v * S + s] as number;
      if (value > (max[s] as number)) max[s] = value;
    }
  }
  for (let v = 0; v < V; v++) {
    for (let s = 0; s < S; s++) {
      const e = Math.exp((logits[v * S + s] as number) - (max[s] as number));
      probs[v * S + s] = e;
      sum[s] = (sum[s] as number) + e;
    }
  }
  for (let s = 0; s < S; s++) {
    losses[s] =
      (targets[s] as number) >= 0
        ? Math.log(sum[s] as number) + (max[s] as number) - (picked[s] as number)
        : 0;
  }
  for (let v = 0; v < V; v++) {
    for (let s = 0; s < S; s++) probs[v * S + s] = (probs[v * S + s] as number) / (sum[s] as number);
  }
}

export function checkCrossEntropyBackwardArguments(
  dlogits: Float32Array,
  probs: Float32Array,
  targets: Int32Array,
  dlosses: Float32Array,
  V: number,
  S: number,
): void {
  const kernel = 'softmaxCrossEntropyBackward';
  checkTypedArray(kernel, 'dlogits', dlogits, 'Float32Array');
  checkTypedArray(kernel, 'probs', probs, 'Float32Array');
  checkTypedArray(kernel, 'targets', targets, 'Int32Array');
  checkTypedArray(kernel, 'dlosses', dlosses, 'Float32Array');
  checkNonNegativeInteger(kernel, 'V', V);
  checkNonNegativeInteger(kernel, 'S', S);
  checkLength(kernel, 'dlogits', dlogits.length, V * S, 'V*S');
  checkLength(kernel, 'probs', probs.length, V * S, 'V*S');
  checkLength(kernel, 'targets', targets.length, S, 'S');
  checkLength(kernel, 'dlosses', dlosses.length, S, 'S');
  checkTargets(kernel, targets, V);
}

/**
 * Writes (does not add) dlogits[v,s] = (probs[v,s] - [v == targets[s]]) * dlosses[s], and 0 for
 * ignored positions (negative targets). dlogits may be the probs array.
 * dlogits: [V, S], probs: [V, S], targets: [S], dlosses: [S] (e.g. 1/S each for a mean loss).
 */
export function softmaxCrossEntropyBackward(
  dlogits: Float32Array,
  probs: Float32Array,
  targets: Int32Array,
  dlosses: Float32Array,
  V: number,
  S: number,
): void {
  checkCrossEntropyBackwardArguments(dlogits, probs, targets, dlosses, V, S);
  if (V === 0 || S === 0) return;
  for (let v = 0; v < V; v++) {
    for (let s = 0; s < S; s++) {
      const t = targets[s] as number;
      const hot = t === v ? 1 : 0;
      dlogits[v * S + s] = t >= 0 ? ((probs[v * S + s] as number) - hot) * (dlosses[s] as number) : 0;
    }
  }
}

/** The logits as numbers: fp32 values, or the values of fp16 bits. */
function logitReader(logits: Float32Array | Uint16Array): (i: number) => number {
  return isUint16Array(logits) ? (i) => fp16BitsToFp32(logits[i] as number) : (i) => logits[i] as number;
}

export function checkCrossEntropyStatsArguments(
  losses: Float32Array,
  maxv: Float32Array,
  inverse: Float32Array,
  logits: Float32Array | Uint16Array,
  targets: Int32Array,
  V: number,
  S: number,
): void {
  const kernel = 'softmaxCrossEntropyStats';
  checkTypedArray(kernel, 'losses', losses, 'Float32Array');
  checkTypedArray(kernel, 'maxv', maxv, 'Float32Array');
  checkTypedArray(kernel, 'inverse', inverse, 'Float32Array');
  checkFloatsOrHalves(kernel, 'logits', logits);
  checkTypedArray(kernel, 'targets', targets, 'Int32Array');
  checkNonNegativeInteger(kernel, 'V', V);
  checkNonNegativeInteger(kernel, 'S', S);
  checkLength(kernel, 'losses', losses.length, S, 'S');
  checkLength(kernel, 'maxv', maxv.length, S, 'S');
  checkLength(kernel, 'inverse', inverse.length, S, 'S');
  checkLength(kernel, 'logits', logits.length, V * S, 'V*S');
  checkLength(kernel, 'targets', targets.length, S, 'S');
  checkTargets(kernel, targets, V);
}

/**
 * The loss of softmaxCrossEntropyForward from two numbers per position instead of the
 * probabilities: maxv[s] = max over v of logits[v,s], inverse[s] = 1 / Σ_v exp(logits[v,s] − maxv[s]),
 * losses as softmaxCrossEntropyForward's. `logits` may be fp16 bits (a Uint16Array: a kernel's
 * output where it lies); fp16 → fp32 is exact, so the results are those of the widened values.
 * V = 0 gives losses 0, maxv −∞ and inverse +∞.
 * losses, maxv, inverse: [S], logits: [V, S], targets: [S] in (-inf, V).
 */
export function softmaxCrossEntropyStats(
  losses: Float32Array,
  maxv: Float32Array,
  inverse: Float32Array,
  logits: Float32Array | Uint16Array,
  targets: Int32Array,
  V: number,
  S: number,
): void {
  checkCrossEntropyStatsArguments(losses, maxv, inverse, logits, targets, V, S);
  const logitAt = logitReader(logits);
  for (let s = 0; s < S; s++) {
    let max = Number.NEGATIVE_INFINITY;
    for (let v = 0; v < V; v++) {
      const value = logitAt(v * S + s);
      if (value > max) max = value;
    }
    let sum = 0;
    for (let v = 0; v < V; v++) sum += Math.exp(logitAt(v * S + s) - max);
    const t = targets[s] as number;
    losses[s] = V > 0 && t >= 0 ? Math.log(sum) + max - logitAt(t * S + s) : 0;
    maxv[s] = max;
    inverse[s] = 1 / sum;
  }
}

export function checkCrossEntropyGradArguments(
  dlogits: Float32Array,
  logits: Float32Array | Uint16Array,
  maxv: Float32Array,
  inverse: Float32Array,
  targets: Int32Array,
  dlosses: Float32Array,
  V: number,
  S: number,
): void {
  const kernel = 'softmaxCrossEntropyGrad';
  checkTypedArray(kernel, 'dlogits', dlogits, 'Float32Array');
  checkFloatsOrHalves(kernel, 'logits', logits);
  checkTypedArray(kernel, 'maxv', maxv, 'Float32Array');
  checkTypedArray(kernel, 'inverse', inverse, 'Float32Array');
  checkTypedArray(kernel, 'targets', targets, 'Int32Array');
  checkTypedArray(kernel, 'dlosses', dlosses, 'Float32Array');
  checkNonNegativeInteger(kernel, 'V', V);
  checkNonNegativeInteger(kernel, 'S', S);
  checkLength(kernel, 'dlogits', dlogits.length, V * S, 'V*S');
  checkLength(kernel, 'logits', logits.length, V * S, 'V*S');
  checkLength(kernel, 'maxv', maxv.length, S, 'S');
  checkLength(kernel, 'inverse', inverse.length, S, 'S');
  checkLength(kernel, 'targets', targets.length, S, 'S');
  checkLength(kernel, 'dlosses', dlosses.length, S, 'S');
  checkTargets(kernel, targets, V);
}

/**
 * Writes (does not add) dlogits[v,s] = (exp(logits[v,s] − maxv[s]) · inverse[s] − [v == targets[s]])
 * · dlosses[s], and 0 for ignored positions: softmaxCrossEntropyBackward with the probabilities
 * recomputed from softmaxCrossEntropyStats' maxv and inverse. `logits` may be fp16 bits, and
 * dlogits may be the fp32 logits array.
 * dlogits: [V, S], logits: [V, S], maxv, inverse, targets, dlosses: [S].
 */
export function softmaxCrossEntropyGrad(
  dlogits: Float32Array,
  logits: Float32Array | Uint16Array,
  maxv: Float32Array,
  inverse: Float32Array,
  targets: Int32Array,
  dlosses: Float32Array,
  V: number,
  S: number,
): void {
  checkCrossEntropyGradArguments(dlogits, logits, maxv, inverse, targets, dlosses, V, S);
  const logitAt = logitReader(logits);
  for (let v = 0; v < V; v++) {
    for (let s = 0; s < S; s++) {
      const t = targets[s] as number;
      const p = Math.exp(logitAt(v * S + s) - (maxv[s] as number)) * (inverse[s] as number);
      dlogits[v * S + s] = t >= 0 ? (p - (t === v ? 1 : 0)) * (dlosses[s] as number) : 0;
    }
  }
}
