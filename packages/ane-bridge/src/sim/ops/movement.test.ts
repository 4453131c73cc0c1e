import { describe, expect, it } from 'vitest';
import { flatIndex, indices, product } from '../test-support.test-helper';
import {
  bandPart,
  concat,
  planConcat,
  planSlice,
  planSplit,
  planTranspose,
  slice,
  sliceByIndexSpec,
  sliceBySizeSpec,
  split,
  transpose,
} from './movement';

const iota = (n: number) => Float32Array.from({ length: n }, (_, i) => i);

describe('transpose', () => {
  for (const [shape, perm] of [
    [
      [1, 1, 64, 32],
      [0, 1, 3, 2],
    ],
    [
      [2, 3, 4],
      [2, 0, 1],
    ],
    [
      [2, 3, 4, 5],
      [3, 1, 0, 2],
    ],
    [[5], [0]],
  ] as [number[], number[]][]) {
    it(`perm [${perm}] of [${shape}]: out[i] = x[i permuted back]`, () => {
      const x = iota(product(shape));
      const { outShape, layout } = planTranspose(shape, perm);
      expect(outShape).toEqual(perm.map((axis) => shape[axis]));
      const out = new Float32Array(x.length);
      transpose(out, x, layout);
      for (const index of indices(outShape)) {
        const source = new Array<number>(shape.length);
        perm.forEach((axis, i) => {
          source[axis] = index[i]!;
        });
        expect(out[flatIndex(index, outShape)]).toBe(x[flatIndex(source, shape)]);
      }
    });
  }
});

describe('slice_by_size', () => {
  it('takes begin..begin+size per axis, -1 meaning to the end, negative begin from the end', () => {
    const shape = [1, 4, 1, 6];
    const x = iota(24);
    const spec = sliceBySizeSpec(shape, [0, 1, 0, -4], [1, -1, 1, 2]);
    expect(spec.outShape).toEqual([1, 3, 1, 2]);
    const out = new Float32Array(6);
    slice(out, x, planSlice(shape, spec));
    expect([...out]).toEqual([8, 9, 14, 15, 20, 21]);
  });

  it('rejects a slice past the end', () => {
    expect(() => sliceBySizeSpec([4], [2], [3])).toThrow(RangeError);
  });
});

describe('slice_by_index', () => {
  // Python's own slicing semantics, element by element, as the reference.
  function pythonSlice(
    dim: number,
    begin: number,
    end: number,
    stride: number,
    beginMask: boolean,
    endMask: boolean,
  ): number[] {
    const all = Array.from({ length: dim }, (_, i) => i);
    const norm = (v: number, low: number, high: number) => Math.min(Math.max(v < 0 ? v + dim : v, low), high);
    if (stride > 0) {
      const start = beginMask ? 0 : norm(begin, 0, dim);
      const stop = endMask ? dim : norm(end, 0, dim);
      return all.filter((i) => i >= start && i < stop && (i - start) % stride === 0);
    }
    const start = beginMask ? dim - 1 : norm(begin, -1, dim - 1);
    const stop = endMask ? -1 : norm(end, -1, dim - 1);
    return all.filter((i) => i <= start && i > stop && (start - i) % -stride === 0).reverse();
  }

  const cases: {
    begin: number[];
    end: number[];
    stride: number[];
    beginMask?: boolean[];
    endMask?: boolean[];
  }[] = [
    { begin: [0, 1], end: [3, 5], stride: [1, 2] },
    { begin: [-1, 0], end: [-4, 6], stride: [-1, 3] },
    { begin: [2, -2], end: [0, 0], stride: [1, -1], beginMask: [true, false], endMask: [false, true] },
    { begin: [0, 5], end: [3, 0], stride: [2, -2] },
    { begin: [1, 9], end: [1, 10], stride: [1, 1] },
  ];
  const shape = [3, 6];
  for (const c of cases) {
    it(`begin [${c.begin}] end [${c.end}] stride [${c.stride}] masks [${c.beginMask ?? '-'}]/[${c.endMask ?? '-'}]`, () => {
      const x = iota(18);
      const rows = pythonSlice(
        3,
        c.begin[0]!,
        c.end[0]!,
        c.stride[0]!,
        c.beginMask?.[0] ?? false,
        c.endMask?.[0] ?? false,
      );
      const cols = pythonSlice(
        6,
        c.begin[1]!,
        c.end[1]!,
        c.stride[1]!,
        c.beginMask?.[1] ?? false,
        c.endMask?.[1] ?? false,
      );
      const spec = sliceByIndexSpec(shape, {
        begin: c.begin,
        end: c.end,
        stride: c.stride,
        ...(c.beginMask ? { beginMask: c.beginMask } : {}),
        ...(c.endMask ? { endMask: c.endMask } : {}),
      });
      expect(spec.squeezedShape).toEqual([rows.length, cols.length]);
      const out = new Float32Array(rows.length * cols.length);
      slice(out, x, planSlice(shape, spec));
      expect([...out]).toEqual(rows.flatMap((r) => cols.map((col) => r * 6 + col)));
    });
  }

  it('squeeze_mask drops the axis and keeps the element at begin', () => {
    const spec = sliceByIndexSpec([3, 6], { begin: [1, 0], end: [2, 6], squeezeMask: [true, false] });
    expect(spec.squeezedShape).toEqual([6]);
    const out = new Float32Array(6);
    slice(out, iota(18), planSlice([3, 6], spec));
    expect([...out]).toEqual([6, 7, 8, 9, 10, 11]);
  });
});

describe('concat and split', () => {
  it('concatenates along a middle axis', () => {
    const a = iota(2 * 1 * 3);
    const b = iota(2 * 2 * 3).map((v) => 100 + v);
    const { outShape, geometry } = planConcat(
      [
        [2, 1, 3],
        [2, 2, 3],
      ],
      1,
      false,
    );
    expect(outShape).toEqual([2, 3, 3]);
    const out = new Float32Array(18);
    concat(out, [a, b], geometry);
    expect([...out]).toEqual([0, 1, 2, 100, 101, 102, 103, 104, 105, 3, 4, 5, 106, 107, 108, 109, 110, 111]);
  });

  it('interleaves: output index j*n + k along the axis is value k index j', () => {
    const a = Float32Array.of(1, 2, 3, 4);
    const b = Float32Array.of(5, 6, 7, 8);
    const { outShape, geometry } = planConcat(
      [
        [2, 2],
        [2, 2],
      ],
      0,
      true,
    );
    expect(outShape).toEqual([4, 2]);
    const out = new Float32Array(8);
    concat(out, [a, b], geometry);
    expect([...out]).toEqual([1, 2, 5, 6, 3, 4, 7, 8]);
  });

  it('interleaves along the last axis', () => {
    const { geometry } = planConcat(
      [
        [2, 2],
        [2, 2],
      ],
      -1,
      true,
    );
    const out = new Float32Array(8);
    concat(out, [Float32Array.of(1, 2, 3, 4), Float32Array.of(5, 6, 7, 8)], geometry);
    expect([...out]).toEqual([1, 5, 2, 6, 3, 7, 4, 8]);
  });

  it('split is the inverse of concat', () => {
    const x = iota(2 * 5 * 2);
    const { outShapes, geometry } = planSplit([2, 5, 2], 1, [2, 3]);
    expect(outShapes).toEqual([
      [2, 2, 2],
      [2, 3, 2],
    ]);
    const parts = outShapes.map((shape) => new Float32Array(product(shape)));
    split(parts, x, geometry);
    const back = new Float32Array(20);
    concat(back, parts, planConcat(outShapes, 1, false).geometry);
    expect([...back]).toEqual([...x]);
    expect([...parts[0]!]).toEqual([0, 1, 2, 3, 10, 11, 12, 13]);
  });
});

describe('band_part', () => {
  it('(lower=-1, upper=0) keeps the lower triangle, (1, 1) a tridiagonal band, per batch', () => {
    const x = Float32Array.from({ length: 18 }, () => 1);
    const out = new Float32Array(18);
    bandPart(out, x, [2, 3, 3], -1, 0);
    expect([...out.subarray(9)]).toEqual([1, 0, 0, 1, 1, 0, 1, 1, 1]);
    bandPart(out, x, [2, 3, 3], 1, 1);
    expect([...out.subarray(0, 9)]).toEqual([1, 1, 0, 1, 1, 1, 0, 1, 1]);
  });
});
