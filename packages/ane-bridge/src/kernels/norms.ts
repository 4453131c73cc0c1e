/**
 * RMSNorm over channel-first activations, the readable twin of native/kernels/rowwise_body.inc.
 * Each position s (a column of [C, S]) is normalised over its C channels. Math in float64, stored
 * as float32.
 */
import { checkLength, checkNonNegativeInteger, checkNumber, checkTypedArray } from './checks';

function checkShape(kernel: string, C: number, S: number): void {
  checkNonNegativeInteger(kernel, 'C', C);
  checkNonNegativeInteger(kernel, 'S', S);
}

export function checkRmsnormForwardArguments(
  out: Float32Array,
  rstd: Float32Array,
  x: Float32Array,
  weight: Float32Array,
  C: number,
  S: number,
  eps: number,
): void {
  const kernel = 'rmsnormForward';
  checkTypedArray(kernel, 'out', out, 'Float32Array');
  checkTypedArray(kernel, 'rstd', rstd, 'Float32Array');
  checkTypedArray(kernel, 'x', x, 'Float32Array');
  checkTypedArray(kernel, 'weight', weight, 'Float32Array');
  checkShape(kernel, C, S);
  checkNumber(kernel, 'eps', eps);
  checkLength(kernel, 'out', out.length, C * S, 'C*S');
  checkLength(kernel, 'rstd', rstd.length, S, 'S');
  checkLength(kernel, 'x', x.length, C * S, 'C*S');
  checkLength(kernel, 'weight', weight.length, C, 'C');
}

/**
 * rstd[s] = 1 / sqrt(mean_c x[c,s]^2 + eps);  out[c,s] = x[c,s] * rstd[s] * weight[c]
 * out: [C, S], rstd: [S] (saved for the backward pass), x: [C, S], weight: [C].
 * C = 0 gives rstd = NaN (the mean of nothing).
 */
export function rmsnormForward(
  out: Float32Array,
  rstd: Float32Array,
  x: Float32Array,
  weight: Float32Array,
  C: number,
  S: number,
  eps: number,
): void {
  checkRmsnormForwardArguments(out, rstd, x, weight, C, S, eps);
  if (S === 0) return; // nothing to write, whatever C is
  const sumOfSquares = new Float64Array(S);
  for (let c = 0; c < C; c++) {
    for (let s = 0; s < S; s++) {
      const value = x[c * S + s] as number;
      sumOfSquares[s] = (sumOfSquares[s] as number) + value * value;
    }
  }
  for (let s = 0; s < S; s++) rstd[s] = 1 / Math.sqrt((sumOfSquares[s] as number) / C + eps);
  for (let c = 0; c < C; c++) {
    const w = weight[c] as number;
    for (let s = 0; s < S; s++) out[c * S + s] = (x[c * S + s] as number) * (rstd[s] as number) * w;
  }
}

export function checkRmsnormBackwardArguments(
  dx: Float32Array,
  dweight: Float32Array,
  dout: Float32Array,
  x: Float32Array,
  weight: Float32Array,
  rstd: Float32Array,
  C: number,
  S: number,
): void {
  const kernel = 'rmsnormBackward';
  checkTypedArray(kernel, 'dx', dx, 'Float32Array');
  checkTypedArray(kernel, 'dweight', dweight, 'Float32Array');
  checkTypedArray(kernel, 'dout', dout, 'Float32Array');
  checkTypedArray(kernel, 'x', x, 'Float32Array');
  checkTypedArray(kernel, 'weight', weight, 'Float32Array');
  checkTypedArray(kernel, 'rstd', rstd, 'Float32Array');
  checkShape(kernel, C, S);
  checkLength(kernel, 'dx', dx.length, C * S, 'C*S');
  checkLength(kernel, 'dweight', dweight.length, C, 'C');
  checkLength(kernel, 'dout', dout.length, C * S, 'C*S');
  checkLength(kernel, 'x', x.length, C * S, 'C*S');
  checkLength(kernel, 'weight', weight.length, C, 'C');
  checkLength(kernel, 'rstd', rstd.length, S, 'S');
}

/**
 * Adds the gradients of rmsnormForward (llm.c convention: zero dx and dweight first):
 *   dx[c,s] += rstd*w[c]*dout[c,s] - x[c,s] * rstd^3/C * sum_c' w[c']*dout[c',s]*x[c',s]
 *   dweight[c] += sum_s dout[c,s] * x[c,s] * rstd[s]
 * dx: [C, S], dweight: [C], dout: [C, S], x: [C, S], weight: [C], rstd: [S] (from the forward).
 */
export function rmsnormBackward(
  dx: Float32Array,
  dweight: Float32Array,
  dout: Float32Array,
  x: Float32Array,
  weight: Float32Array,
  rstd: Float32Array,
  C: number,
  S: number,
): void {
  checkRmsnormBackwardArguments(dx, dweight, dout, x, weight, rstd, C, S);
  if (C === 0 || S === 0) return;
  const dot = new Float64Array(S);
  for (let c = 0; c < C; c++) {
    const w = weight[c] as number;
    for (let s = 0; s < S; s++)
      dot[s] = (dot[s] as number) + w * (dout[c * S + s] as number) * (x[c * S + s] as number);
  }
  for (let c = 0; c < C; c++) {
    const w = weight[c] as number;
    let dw = 0;
    for (let s = 0; s < S; s++) {
      const i = c * S + s;
      const r = rstd[s] as number;
      const g = dout[i] as number;
      const value = x[i] as number;
      dx[i] = (dx[i] as number) + r * w * g - ((value * r * r * r) / C) * (dot[s] as number);
      dw += g * value * r;
    }
    dweight[c] = (dweight[c] as number) + dw;
  }
}
