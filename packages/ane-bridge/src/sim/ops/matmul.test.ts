import { roundToFp16 } from 'ane-ir/mil';
import { describe, expect, it } from 'vitest';
import type { FloatTensor } from '../tensor';
import { fp16Ulp, indices, isFaithfulFp16, product, randomFp16 } from '../test-support.test-helper';
import { linear, matmul, planMatmul } from './matmul';

/** x[..., i, k] with transposes and NumPy batch broadcasting, read by index arithmetic. */
function element(
  data: Float32Array,
  shape: number[],
  batch: number[],
  row: number,
  col: number,
  transposed: boolean,
): number {
  const [r, c] = transposed ? [col, row] : [row, col];
  const rank = shape.length;
  const batchShape = shape.slice(0, -2);
  const offset = batch.length - batchShape.length;
  let flat = 0;
  batchShape.forEach((dim, axis) => {
    flat = flat * dim + (dim === 1 ? 0 : batch[axis + offset]!);
  });
  return data[(flat * shape[rank - 2]! + r) * shape[rank - 1]! + c]!;
}

function referenceMatmul(
  x: Float32Array,
  xShape: number[],
  y: Float32Array,
  yShape: number[],
  tx: boolean,
  ty: boolean,
) {
  const M = tx ? xShape.at(-1)! : xShape.at(-2)!;
  const K = tx ? xShape.at(-2)! : xShape.at(-1)!;
  const N = ty ? yShape.at(-2)! : yShape.at(-1)!;
  const xb = xShape.slice(0, -2);
  const yb = yShape.slice(0, -2);
  const rank = Math.max(xb.length, yb.length);
  const batch = Array.from({ length: rank }, (_, i) => {
    const a = xb[i - (rank - xb.length)] ?? 1;
    const b = yb[i - (rank - yb.length)] ?? 1;
    return Math.max(a, b);
  });
  const out: number[] = [];
  const absSums: number[] = [];
  for (const b of indices(batch))
    for (let i = 0; i < M; i++)
      for (let j = 0; j < N; j++) {
        let sum = 0;
        let absSum = 0;
        for (let k = 0; k < K; k++) {
          const term = element(x, xShape, b, i, k, tx) * element(y, yShape, b, k, j, ty);
          sum += term;
          absSum += Math.abs(term);
        }
        out.push(sum);
        absSums.push(absSum);
      }
  return { out, absSums, K, shape: [...batch, M, N] };
}

describe('matmul', () => {
  const cases: [number[], number[], boolean, boolean][] = [
    [[1, 1, 32, 64], [1, 1, 64, 96], false, false],
    [[1, 4, 16, 8], [1, 4, 16, 8], false, true],
    [[2, 5, 3], [2, 5, 4], true, false],
    [[3, 7], [5, 3], true, true],
    [[2, 1, 3, 4], [3, 4, 5], false, false],
    [[4, 6], [2, 3, 6, 5], false, false],
    [[1, 3, 67, 33], [1, 1, 33, 19], false, false],
  ];
  for (const [xShape, yShape, tx, ty] of cases) {
    it(`[${xShape}]${tx ? 'ᵀ' : ''} · [${yShape}]${ty ? 'ᵀ' : ''} matches a float64 triple loop within fp32 accumulation error`, () => {
      const x = randomFp16(product(xShape), 7, 2);
      const y = randomFp16(product(yShape), 8, 2);
      const { outShape, geometry } = planMatmul(xShape, yShape, tx, ty);
      const reference = referenceMatmul(x, xShape, y, yShape, tx, ty);
      expect(outShape).toEqual(reference.shape);
      const out: FloatTensor = { dtype: 'fp16', shape: outShape, data: new Float32Array(product(outShape)) };
      matmul(out, x, y, geometry);
      // The GEMM may accumulate in fp32 in any order (the native one does): the standard dot-product
      // bound K·2^-24·Σ|x·y| on top of one fp16 rounding.
      reference.out.forEach((exact, i) => {
        const accumulation = reference.K * 2 ** -24 * reference.absSums[i]!;
        const got = out.data[i]!;
        expect(
          isFaithfulFp16(got, exact) || Math.abs(got - exact) <= accumulation + fp16Ulp(exact),
          `element ${i}`,
        ).toBe(true);
      });
    });
  }

  it('promotes 1-D operands and drops the promoted axis', () => {
    expect(planMatmul([3], [3, 4], false, false).outShape).toEqual([4]);
    expect(planMatmul([2, 5, 3], [3], false, false).outShape).toEqual([2, 5]);
    expect(planMatmul([3], [3], false, false).outShape).toEqual([]);
    const out: FloatTensor = { dtype: 'fp16', shape: [], data: new Float32Array(1) };
    matmul(
      out,
      Float32Array.of(1, 2, 3),
      Float32Array.of(4, 5, 6),
      planMatmul([3], [3], false, false).geometry,
    );
    expect(out.data[0]).toBe(32);
  });

  it('rejects mismatched inner dimensions', () => {
    expect(() => planMatmul([2, 3], [4, 5], false, false)).toThrow(/inner dimensions/);
  });
});

describe('linear', () => {
  it('y = x Wᵀ + b over leading axes', () => {
    const x = randomFp16(2 * 3 * 5, 9);
    const w = randomFp16(4 * 5, 10);
    const b = randomFp16(4, 11);
    const out: FloatTensor = { dtype: 'fp16', shape: [2, 3, 4], data: new Float32Array(24) };
    linear(out, x, w, b, 4, 5);
    for (let r = 0; r < 6; r++)
      for (let o = 0; o < 4; o++) {
        let sum = b[o]!;
        let absSum = Math.abs(sum);
        for (let i = 0; i < 5; i++) {
          sum += x[r * 5 + i]! * w[o * 5 + i]!;
          absSum += Math.abs(x[r * 5 + i]! * w[o * 5 + i]!);
        }
        const got = out.data[r * 4 + o]!;
        expect(roundToFp16(got)).toBe(got);
        expect(Math.abs(got - sum)).toBeLessThanOrEqual(6 * 2 ** -24 * absSum + fp16Ulp(sum));
      }
  });
});
