import { describe, expect, it } from 'vitest';
import {
  add,
  cast,
  concat,
  conv2d,
  dequantize,
  gather,
  matmul,
  mul,
  quantize,
  reduceMax,
  reduceSum,
  reshape,
  slice,
  softmax,
  transpose,
} from '../ops/primitives';
import { evaluate } from './evaluate';
import { Graph } from './graph';

const values = (t: Float64Array) => Array.from(t);

describe('the reference interpreter', () => {
  it('computes movement ops row-major', () => {
    const g = new Graph();
    const x = g.input('x', [2, 3]);
    const feeds = { x: [1, 2, 3, 4, 5, 6] };
    const [t, s, c, r] = evaluate(
      [transpose(x), slice(x, [0, 1], [2, 2]), concat([x, x], 1), reshape(x, [3, 2])],
      feeds,
    );
    expect(values(t!)).toEqual([1, 4, 2, 5, 3, 6]);
    expect(values(s!)).toEqual([2, 3, 5, 6]);
    expect(values(c!)).toEqual([1, 2, 3, 1, 2, 3, 4, 5, 6, 4, 5, 6]);
    expect(values(r!)).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it('broadcasts, reduces and multiplies', () => {
    const g = new Graph();
    const x = g.input('x', [2, 3]);
    const row = g.constant([10, 20, 30], [3]);
    const feeds = { x: [1, 2, 3, 4, 5, 6] };
    const [sum0, max1, b, m] = evaluate(
      [reduceSum(x, 0), reduceMax(x, 1, { keepDims: true }), add(x, row), matmul(x, transpose(x))],
      feeds,
    );
    expect(values(sum0!)).toEqual([5, 7, 9]);
    expect(values(max1!)).toEqual([3, 6]);
    expect(values(b!)).toEqual([11, 22, 33, 14, 25, 36]);
    expect(values(m!)).toEqual([14, 32, 32, 77]);
  });

  it('computes softmax, conv and gather', () => {
    const g = new Graph();
    const x = g.input('x', [1, 2]);
    const [sm] = evaluate([softmax(x, -1)], { x: [0, Math.log(3)] });
    expect(sm![0]).toBeCloseTo(0.25, 12);
    const image = g.input('image', [1, 1, 3, 3]);
    const w = g.param('w', [1, 1, 2, 2], { trainable: false, data: [1, 0, 0, 1] });
    const [conv] = evaluate([conv2d(image, w)], { image: [1, 2, 3, 4, 5, 6, 7, 8, 9] });
    expect(values(conv!)).toEqual([6, 8, 12, 14]);
    const table = g.constant([0, 1, 10, 11, 20, 21], [3, 2]);
    const tokens = g.input('tokens', [2], { dtype: 'int32' });
    const [rows] = evaluate([gather(table, tokens)], { tokens: [2, 0] });
    expect(values(rows!)).toEqual([20, 21, 0, 1]);
  });

  it('quantizes with ties to even and saturation, and rounds to fp16 when asked', () => {
    const g = new Graph();
    const x = g.input('x', [6]);
    const q = quantize(x, 0.5);
    const [qs, dq] = evaluate([q, dequantize(q, 0.5)], { x: [0.25, 0.75, -0.25, 100, -100, 1.1] });
    expect(values(qs!)).toEqual([0, 2, 0, 127, -128, 2]);
    expect(values(dq!)).toEqual([0, 1, 0, 63.5, -64, 1]);
    const y = g.input('y', [1]);
    const [exact, rounded] = [
      evaluate([mul(y, 1 / 3)], { y: [1] })[0]!,
      evaluate([mul(y, 1 / 3)], { y: [1] }, { fp16: true })[0]!,
    ];
    expect(exact[0]).toBeCloseTo(0.333251953125, 12); // the constant itself is fp16
    expect(rounded[0]).toBe(0.333251953125);
    expect(values(evaluate([cast(y, 'int32')], { y: [2.7] })[0]!)).toEqual([2]);
  });

  it('takes values for op nodes computed elsewhere', () => {
    const g = new Graph();
    const x = g.input('x', [2]);
    const doubled = mul(x, 2, { name: 'doubled' });
    const [out] = evaluate([add(doubled, 1)], { doubled: [10, 20] });
    expect(values(out!)).toEqual([11, 21]);
  });
});

describe('the float32 mode (the executor’s generic host path)', () => {
  it('rounds every op result to fp32, and only with fp32: true', () => {
    const g = new Graph();
    const x = g.input('x', [1], { dtype: 'fp32' });
    const doubled = add(x, x);
    const [exact] = evaluate([doubled], { x: [0.1] });
    const [rounded] = evaluate([doubled], { x: [0.1] }, { fp32: true });
    // 0.2 is not a float32: the float64 oracle keeps all 53 bits, fp32 mode stores Math.fround(0.2).
    expect(exact![0]).toBe(0.2);
    expect(rounded![0]).toBe(Math.fround(0.2));
    expect(rounded![0]).not.toBe(0.2);
  });
});
