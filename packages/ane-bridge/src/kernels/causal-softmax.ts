/**
 * Causal softmax over attention scores, the readable twin of native/kernels/rowwise_body.inc.
 * scores: [H, Tq, Tk], one row of Tk keys per query. The Tq queries are the last Tq of the Tk
 * positions, so query i sees keys j <= i + (Tk - Tq) (Tq = Tk: the usual lower triangle). Math in
 * float64.
 */
import { checkLength, checkNonNegativeInteger, checkNumber, checkTypedArray } from './checks';

function checkShape(kernel: string, H: number, Tq: number, Tk: number): void {
  checkNonNegativeInteger(kernel, 'H', H);
  checkNonNegativeInteger(kernel, 'Tq', Tq);
  checkNonNegativeInteger(kernel, 'Tk', Tk);
  if (Tk < Tq)
    throw new RangeError(`${kernel}: Tk (${Tk}) must be >= Tq (${Tq}): queries are the last Tq positions`);
}

export function checkCausalForwardArguments(
  out: Float32Array,
  scores: Float32Array,
  H: number,
  Tq: number,
  Tk: number,
  scale: number,
): void {
  const kernel = 'causalSoftmaxForward';
  checkTypedArray(kernel, 'out', out, 'Float32Array');
  checkTypedArray(kernel, 'scores', scores, 'Float32Array');
  checkShape(kernel, H, Tq, Tk);
  checkNumber(kernel, 'scale', scale);
  checkLength(kernel, 'out', out.length, H * Tq * Tk, 'H*Tq*Tk');
  checkLength(kernel, 'scores', scores.length, H * Tq * Tk, 'H*Tq*Tk');
}

/**
 * out[h,i,j] = softmax over visible j of scale*scores[h,i,j]; 0 for masked j.
 * out, scores: [H, Tq, Tk] (out may be scores).
 */
export function causalSoftmaxForward(
  out: Float32Array,
  scores: Float32Array,
  H: number,
  Tq: number,
  Tk: number,
  scale: number,
): void {
  checkCausalForwardArguments(out, scores, H, Tq, Tk, scale);
  if (H === 0 || Tq === 0) return;
  for (let row = 0; row < H * Tq; row++) {
    const visible = (row % Tq) + (Tk - Tq) + 1;
    const base = row * Tk;
    let max = Number.NEGATIVE_INFINITY;
    for (let j = 0; j < visible; j++) max = Math.max(max, scale * (scores[base + j] as number));
    // The exponentials are stored in out (float32) and normalised there; the sum is float64.
    let sum = 0;
    for (let j = 0; j < visible; j++) {
      const e = Math.exp(scale * (scores[base + j] as number) - max);
      out[base + j] = e;
      sum += e;
    }
    for (let j = 0; j < visible; j++) out[base + j] = (out[base + j] as number) / sum;
    for (let j = visible; j < Tk; j++) out[base + j] = 0;
  }
}

export function checkCausalBackwardArguments(
  dscores: Float32Array,
  probs: Float32Array,
  dout: Float32Array,
  H: number,
  Tq: number,
  Tk: number,
  scale: number,
): void {
  const kernel = 'causalSoftmaxBackward';
  checkTypedArray(kernel, 'dscores', dscores, 'Float32Array');
  checkTypedArray(kernel, 'probs', probs, 'Float32Array');
  checkTypedArray(kernel, 'dout', dout, 'Float32Array');
  checkShape(kernel, H, Tq, Tk);
  checkNumber(kernel, 'scale', scale);
  checkLength(kernel, 'dscores', dscores.length, H * Tq * Tk, 'H*Tq*Tk');
  checkLength(kernel, 'probs', probs.length, H * Tq * Tk, 'H*Tq*Tk');
  checkLength(kernel, 'dout', dout.length, H * Tq * Tk, 'H*Tq*Tk');
}

/**
 * Writes dscores[h,i,j] = scale * p[j] * (dout[j] - sum_j' p[j'] dout[j']) over visible j, 0 after.
 * dscores, probs (the forward's out), dout: [H, Tq, Tk] (dscores may be dout).
 */
export function causalSoftmaxBackward(
  dscores: Float32Array,
  probs: Float32Array,
  dout: Float32Array,
  H: number,
  Tq: number,
  Tk: number,
  scale: number,
): void {
  checkCausalBackwardArguments(dscores, probs, dout, H, Tq, Tk, scale);
  if (H === 0 || Tq === 0) return;
  for (let row = 0; row < H * Tq; row++) {
    const visible = (row % Tq) + (Tk - Tq) + 1;
    const base = row * Tk;
    let dot = 0;
    for (let j = 0; j < visible; j++) dot += (probs[base + j] as number) * (dout[base + j] as number);
    for (let j = 0; j < visible; j++) {
      dscores[base + j] = scale * (probs[base + j] as number) * ((dout[base + j] as number) - dot);
    }
    for (let j = visible; j < Tk; j++) dscores[base + j] = 0;
  }
}
