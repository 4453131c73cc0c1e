import { describe, expect, it } from 'vitest';
import { sliceData, transposeData } from './data';

/** x[i, j, k] = 100 i + 10 j + k over [2, 3, 4], as int32 constant data. */
const iota = {
  dtype: 'int32' as const,
  values: Int32Array.from(
    { length: 24 },
    (_, f) => 100 * Math.floor(f / 12) + 10 * Math.floor((f % 12) / 4) + (f % 4),
  ),
};

describe('constant movement (one strided walk)', () => {
  it('transposeData: out[k, i, j] = x[i, j, k] for perm [2, 0, 1]', () => {
    const out = transposeData(iota, [2, 3, 4], [2, 0, 1]);
    const expected: number[] = [];
    for (let k = 0; k < 4; k++)
      for (let i = 0; i < 2; i++) for (let j = 0; j < 3; j++) expected.push(100 * i + 10 * j + k);
    expect(out.dtype).toBe('int32');
    expect(Array.from(out.values)).toEqual(expected);
  });

  it('sliceData: begin [1, 1, 1], size [1, 2, 2]', () => {
    expect(Array.from(sliceData(iota, [2, 3, 4], [1, 1, 1], [1, 2, 2]).values)).toEqual([111, 112, 121, 122]);
    expect(Array.from(sliceData(iota, [2, 3, 4], [0, 2, 0], [2, 1, 0]).values)).toEqual([]);
  });
});
