import { roundToFp16 } from 'ane-ir/mil';
import { describe, expect, it } from 'vitest';
import type { FloatTensor } from '../tensor';
import { flatIndex, fp16Result, indices, product, randomFp16 } from '../test-support.test-helper';
import { layerNorm, normalizeAxes, planAxis, planReduction, reduce, reducedShape, softmax } from './reduce';

function fp16Tensor(shape: readonly number[]): FloatTensor {
  return { dtype: 'fp16', shape, data: new Float32Array(product(shape)) };
}

/** Groups the elements of x by their index on the kept axes (row-major over those axes). */
function groupsOf(x: Float32Array, shape: number[], axes: number[]): number[][] {
  const keptShape = shape.filter((_, axis) => !axes.includes(axis));
  const groups: number[][] = Array.from({ length: product(keptShape) }, () => []);
  for (const index of indices(shape)) {
    const kept = index.filter((_, axis) => !axes.includes(axis));
    groups[flatIndex(kept, keptShape)]!.push(x[flatIndex(index, shape)]!);
  }
  return groups;
}

describe('reductions', () => {
  const cases: [number[], number[] | undefined, boolean][] = [
    [[1, 16, 1, 8], [1], true],
    [[2, 3, 4], [-1], false],
    [[2, 3, 4], [0, 2], true],
    [[2, 3, 4, 5], [1, 3], false],
    [[3, 4], undefined, false],
    [[2, 3, 4], [2, 1], true],
  ];
  const kinds = {
    sum: (g: number[]) => g.reduce((a, b) => a + b, 0),
    mean: (g: number[]) => g.reduce((a, b) => a + b, 0) / g.length,
    max: (g: number[]) => Math.max(...g),
  };
  for (const [kind, reference] of Object.entries(kinds) as [keyof typeof kinds, (g: number[]) => number][]) {
    for (const [shape, axes, keepDims] of cases) {
      it(`reduce_${kind} over ${axes === undefined ? 'all axes' : `[${axes}]`} of [${shape}] (keep_dims ${keepDims})`, () => {
        const x = randomFp16(product(shape), 21, 3);
        const normalized = normalizeAxes(axes, shape.length);
        const outShape = reducedShape(shape, normalized, keepDims);
        const out = fp16Tensor(outShape);
        reduce(kind, out, x, planReduction(shape, normalized));
        const expected = groupsOf(x, shape, normalized).map((group) => fp16Result(reference(group)));
        expect([...out.data]).toEqual(expected);
      });
    }
  }

  it('keep_dims keeps reduced axes as 1', () => {
    expect(reducedShape([1, 16, 1, 8], [1], true)).toEqual([1, 1, 1, 8]);
    expect(reducedShape([1, 16, 1, 8], [1], false)).toEqual([1, 1, 8]);
  });

  it('reduce_sum rounds once (fp32 accumulation) unless asked to round every add (fp16)', () => {
    // 2048 + 1 + 1: each partial 2049 rounds back to 2048 in fp16, the exact total 2050 is fp16.
    const x = Float32Array.of(2048, 1, 1);
    const geometry = planReduction([3], [0]);
    const wide = fp16Tensor([]);
    reduce('sum', wide, x, geometry);
    expect(wide.data[0]).toBe(2050);
    const narrow = fp16Tensor([]);
    reduce('sum', narrow, x, geometry, true);
    expect(narrow.data[0]).toBe(2048);
  });

  it('reduce_max propagates NaN', () => {
    const out = fp16Tensor([]);
    reduce('max', out, Float32Array.of(1, Number.NaN, 3), planReduction([3], [0]));
    expect(out.data[0]).toBeNaN();
  });
});

describe('softmax', () => {
  for (const [shape, axis] of [
    [[1, 4, 8, 8], -1],
    [[1, 32, 1, 5], 1],
    [[2, 3, 4], 0],
  ] as [number[], number][]) {
    it(`over axis ${axis} of [${shape}]: exp(x - max) / sum, rounded once`, () => {
      const x = randomFp16(product(shape), 31, 4);
      const out = fp16Tensor(shape);
      softmax(out, x, planAxis(shape, axis));
      const a = axis < 0 ? axis + shape.length : axis;
      for (const index of indices(shape)) {
        let sum = 0;
        for (let k = 0; k < shape[a]!; k++) {
          const other = [...index];
          other[a] = k;
          sum += Math.exp(x[flatIndex(other, shape)]!);
        }
        const exact = Math.exp(x[flatIndex(index, shape)]!) / sum;
        const got = out.data[flatIndex(index, shape)]!;
        // Evaluated in fp32 (each exp stored in fp32) then rounded: within one fp16 ulp of exact.
        expect(Math.abs(got - exact)).toBeLessThanOrEqual(Math.max(exact * 2 ** -10, 2 ** -24));
      }
    });
  }

  it('a -65504 mask gives exactly 0 and a uniform row gives exactly 1/n', () => {
    const out = fp16Tensor([1, 4]);
    softmax(out, Float32Array.of(0.5, -65504, 0.5, -65504), planAxis([1, 4], -1));
    expect([...out.data]).toEqual([0.5, 0, 0.5, 0]);
  });
});

describe('layer_norm', () => {
  it('normalizes over the trailing axes with gamma and beta, biased variance, rounded once', () => {
    const shape = [2, 3, 8];
    const x = randomFp16(product(shape), 41, 3);
    const gamma = randomFp16(3 * 8, 42);
    const beta = randomFp16(3 * 8, 43);
    const epsilon = roundToFp16(1e-5);
    const out = fp16Tensor(shape);
    layerNorm(out, x, gamma, beta, epsilon, planReduction(shape, [1, 2]));
    for (let b = 0; b < 2; b++) {
      const row = [...x.subarray(b * 24, b * 24 + 24)];
      const mean = row.reduce((s, v) => s + v, 0) / 24;
      const variance = row.reduce((s, v) => s + (v - mean) ** 2, 0) / 24;
      row.forEach((v, r) => {
        const exact = ((v - mean) / Math.sqrt(variance + epsilon)) * gamma[r]! + beta[r]!;
        expect(out.data[b * 24 + r]).toBe(fp16Result(exact));
      });
    }
  });

  it('normalizes over a middle axis without gamma and beta', () => {
    const shape = [1, 4, 1, 3];
    const x = Float32Array.of(1, 2, 3, 3, 4, 5, 5, 6, 7, 7, 8, 9);
    const out = fp16Tensor(shape);
    layerNorm(out, x, undefined, undefined, 0, planReduction(shape, [1]));
    // Column 0 is (1, 3, 5, 7): mean 4, variance 5.
    const column = [1, 3, 5, 7].map((v) => fp16Result((v - 4) / Math.sqrt(5)));
    expect([out.data[0], out.data[3], out.data[6], out.data[9]]).toEqual(column);
  });
});
