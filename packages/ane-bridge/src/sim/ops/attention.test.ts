import { roundToFp16 } from 'ane-ir/mil';
import { describe, expect, it } from 'vitest';
import type { FloatTensor } from '../tensor';
import { fp16Result, randomFp16 } from '../test-support.test-helper';
import { planAttention, scaledDotProductAttention } from './attention';

/** softmax(Q Kᵀ / sqrt(E) + mask) V for one head, each step rounded to fp16 as the ANE would. */
function referenceHead(
  q: number[][],
  k: number[][],
  v: number[][],
  mask?: (t: number, s: number) => number,
): number[][] {
  const scale = Math.fround(1 / Math.sqrt(q[0]!.length));
  const scores = q.map((qi, t) =>
    k.map((kj, s) => {
      const dot = fp16Result(qi.reduce((sum, value, e) => sum + value * kj[e]!, 0) * scale);
      return mask === undefined ? dot : roundToFp16(dot + mask(t, s));
    }),
  );
  const probs = scores.map((row) => {
    const max = Math.max(...row);
    const exps = row.map((value) => Math.fround(Math.exp(value - max)));
    const sum = exps.reduce((a, b) => a + b, 0);
    return exps.map((value) => fp16Result(value / sum));
  });
  return probs.map((row) =>
    v[0]!.map((_, j) => fp16Result(row.reduce((sum, p, s) => sum + p * v[s]![j]!, 0))),
  );
}

const rowsOf = (data: Float32Array, offset: number, rows: number, cols: number) =>
  Array.from({ length: rows }, (_, r) => [...data.subarray(offset + r * cols, offset + (r + 1) * cols)]);

describe('scaled_dot_product_attention', () => {
  const [H, L, S, E] = [2, 5, 6, 4];
  const q = randomFp16(H * L * E, 51, 2);
  const k = randomFp16(H * S * E, 52, 2);
  const v = randomFp16(H * S * E, 53, 2);

  function run(mask?: { shape: number[]; data: Float32Array | Uint8Array; isBool: boolean }): Float32Array {
    const { outShape, plan } = planAttention([1, H, L, E], [1, H, S, E], [1, H, S, E], mask?.shape);
    expect(outShape).toEqual([1, H, L, E]);
    const out: FloatTensor = { dtype: 'fp16', shape: outShape, data: new Float32Array(H * L * E) };
    scaledDotProductAttention(out, q, k, v, mask, plan);
    return out.data;
  }

  it('computes softmax(Q Kᵀ / sqrt(E)) V per head', () => {
    const out = run();
    for (let h = 0; h < H; h++) {
      const expected = referenceHead(
        rowsOf(q, h * L * E, L, E),
        rowsOf(k, h * S * E, S, E),
        rowsOf(v, h * S * E, S, E),
      );
      expect(rowsOf(out, h * L * E, L, E)).toEqual(expected);
    }
  });

  it('adds a float mask broadcast over heads, or keeps where a bool mask is true', () => {
    const additive = Float32Array.from({ length: L * S }, (_, i) => (i % S > Math.floor(i / S) ? -65504 : 0));
    const keep = Uint8Array.from(additive, (value) => (value === 0 ? 1 : 0));
    const causal = (t: number, s: number) => (s > t ? -65504 : 0);
    const withFloat = run({ shape: [1, 1, L, S], data: additive, isBool: false });
    const withBool = run({ shape: [L, S], data: keep, isBool: true });
    for (let h = 0; h < H; h++) {
      const expected = referenceHead(
        rowsOf(q, h * L * E, L, E),
        rowsOf(k, h * S * E, S, E),
        rowsOf(v, h * S * E, S, E),
        causal,
      );
      expect(rowsOf(withFloat, h * L * E, L, E)).toEqual(expected);
      expect(rowsOf(withBool, h * L * E, L, E)).toEqual(expected);
    }
  });
});
