/**
 * Token embedding gather and its scatter-add gradient, the readable twin of
 * native/kernels/rowwise_body.inc. The table is [V, C] (one row per token, as checkpoints store
 * it); activations are channel-first [C, S].
 */
import { checkLength, checkNonNegativeInteger, checkTypedArray } from './checks';

function checkTokens(kernel: string, tokens: Int32Array, V: number): void {
  for (let s = 0; s < tokens.length; s++) {
    const t = tokens[s] as number;
    if (t < 0 || t >= V)
      throw new RangeError(`${kernel}: tokens[${s}] = ${t} is outside the vocabulary [0, ${V})`);
  }
}

function checkShape(kernel: string, V: number, C: number, S: number): void {
  checkNonNegativeInteger(kernel, 'V', V);
  checkNonNegativeInteger(kernel, 'C', C);
  checkNonNegativeInteger(kernel, 'S', S);
}

export function checkEmbeddingForwardArguments(
  out: Float32Array,
  table: Float32Array,
  tokens: Int32Array,
  V: number,
  C: number,
  S: number,
): void {
  const kernel = 'embeddingForward';
  checkTypedArray(kernel, 'out', out, 'Float32Array');
  checkTypedArray(kernel, 'table', table, 'Float32Array');
  checkTypedArray(kernel, 'tokens', tokens, 'Int32Array');
  checkShape(kernel, V, C, S);
  checkLength(kernel, 'out', out.length, C * S, 'C*S');
  checkLength(kernel, 'table', table.length, V * C, 'V*C');
  checkLength(kernel, 'tokens', tokens.length, S, 'S');
  checkTokens(kernel, tokens, V);
}

/** out[c,s] = table[tokens[s], c].  out: [C, S], table: [V, C], tokens: [S] in [0, V). */
export function embeddingForward(
  out: Float32Array,
  table: Float32Array,
  tokens: Int32Array,
  V: number,
  C: number,
  S: number,
): void {
  checkEmbeddingForwardArguments(out, table, tokens, V, C, S);
  if (C === 0 || S === 0) return;
  for (let s = 0; s < S; s++) {
    const row = (tokens[s] as number) * C;
    for (let c = 0; c < C; c++) out[c * S + s] = table[row + c] as number;
  }
}

export function checkEmbeddingBackwardArguments(
  dtable: Float32Array,
  dout: Float32Array,
  tokens: Int32Array,
  V: number,
  C: number,
  S: number,
): void {
  const kernel = 'embeddingBackward';
  checkTypedArray(kernel, 'dtable', dtable, 'Float32Array');
  checkTypedArray(kernel, 'dout', dout, 'Float32Array');
  checkTypedArray(kernel, 'tokens', tokens, 'Int32Array');
  checkShape(kernel, V, C, S);
  checkLength(kernel, 'dtable', dtable.length, V * C, 'V*C');
  checkLength(kernel, 'dout', dout.length, C * S, 'C*S');
  checkLength(kernel, 'tokens', tokens.length, S, 'S');
  checkTokens(kernel, tokens, V);
}

/**
 * dtable[tokens[s], c] += dout[c,s]: repeated tokens accumulate, in order of s.
 * dtable: [V, C], dout: [C, S], tokens: [S] in [0, V).
 */
export function embeddingBackward(
  dtable: Float32Array,
  dout: Float32Array,
  tokens: Int32Array,
  V: number,
  C: number,
  S: number,
): void {
  checkEmbeddingBackwardArguments(dtable, dout, tokens, V, C, S);
  if (C === 0 || S === 0) return;
  for (let s = 0; s < S; s++) {
    const row = (tokens[s] as number) * C;
    for (let c = 0; c < C; c++) dtable[row + c] = (dtable[row + c] as number) + (dout[c * S + s] as number);
  }
}
