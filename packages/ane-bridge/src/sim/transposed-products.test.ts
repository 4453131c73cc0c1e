import { describe, expect, it } from 'vitest';
import { compileSimProgram, type SimExecutable } from './executable';
import { encodeFp16Buffer } from './io';
import {
  fp16Spec,
  fp16Values,
  isFaithfulFp16,
  milProgram,
  randomFp16,
  runFp16,
} from './test-support.test-helper';

// transpose(matmul(x, y)) over the last two axes of a batched product: [1, 3, 4, 5] · [B, 5, 6]
// (3 entries, or y broadcast), with each transpose flag, read by the transpose alone or also
// returned. Computed as opᵀ(y)·opᵀ(x) straight into the transpose's buffer, the matmul pruned.
function batchedProgram(transposeX: boolean, transposeY: boolean, yBatch: number, alsoReturned: boolean) {
  const xShape = transposeX ? [1, 3, 5, 4] : [1, 3, 4, 5];
  const yShape = transposeY ? [1, yBatch, 6, 5] : [1, yBatch, 5, 6];
  const outputs = [fp16Spec('t', [1, 3, 6, 4]), ...(alsoReturned ? [fp16Spec('p', [1, 3, 4, 6])] : [])];
  return milProgram(
    [fp16Spec('x', xShape), fp16Spec('y', yShape)],
    [
      `bool tx = const()[name=string("tx"), val=bool(${transposeX})];`,
      `bool ty = const()[name=string("ty"), val=bool(${transposeY})];`,
      'tensor<int32, [4]> perm = const()[name=string("perm"), val=tensor<int32, [4]>([0, 1, 3, 2])];',
      'tensor<fp16, [1, 3, 4, 6]> p = matmul(transpose_x=tx, transpose_y=ty, x=x, y=y)[name=string("p")];',
      'tensor<fp16, [1, 3, 6, 4]> t = transpose(perm=perm, x=p)[name=string("t")];',
    ],
    outputs,
  );
}

function element(values: ArrayLike<number>, shape: readonly number[], index: readonly number[]): number {
  let flat = 0;
  for (let axis = 0; axis < shape.length; axis++) flat = flat * shape[axis]! + index[axis]!;
  return values[flat]!;
}

describe('the transpose of a batched matmul product', () => {
  for (const [transposeX, transposeY] of [
    [false, false],
    [true, false],
    [false, true],
    [true, true],
  ] as const) {
    for (const yBatch of [3, 1]) {
      it(`is each entry's product transposed, computed directly (transpose_x ${transposeX}, transpose_y ${transposeY}, y batch ${yBatch})`, () => {
        const program = batchedProgram(transposeX, transposeY, yBatch, false);
        const [xSpec, ySpec] = program.inputs as unknown as [{ shape: number[] }, { shape: number[] }];
        const xs = randomFp16(60, 7, 2);
        const ys = randomFp16(yBatch * 30, 8, 2);
        const [t] = runFp16(program, [xs, ys]);
        for (let b = 0; b < 3; b++)
          for (let n = 0; n < 6; n++)
            for (let m = 0; m < 4; m++) {
              let exact = 0;
              for (let k = 0; k < 5; k++) {
                const xv = element(xs, xSpec.shape, transposeX ? [0, b, k, m] : [0, b, m, k]);
                const yb = yBatch === 1 ? 0 : b;
                const yv = element(ys, ySpec.shape, transposeY ? [0, yb, n, k] : [0, yb, k, n]);
                exact += xv * yv;
              }
              expect(isFaithfulFp16(t![(b * 6 + n) * 4 + m]!, exact)).toBe(true);
            }
        // The same bits as the matmul then a transpose copy (in-place operands off), including
        // infinities, NaNs, signed zeros and subnormals; one step fewer.
        const specialsX = fp16Values(60, 11);
        const specialsY = fp16Values(yBatch * 30, 12);
        const direct = runFp16(program, [specialsX, specialsY]);
        const copied = runFp16(program, [specialsX, specialsY], { inPlaceOperands: false });
        expect(new Uint32Array(direct[0]!.buffer)).toEqual(new Uint32Array(copied[0]!.buffer));
        expect(compileSimProgram(program).stepCount).toBe(
          compileSimProgram(program, { inPlaceOperands: false }).stepCount - 1,
        );
      });
    }
  }

  it('is copied as usual when the product is also read elsewhere', () => {
    const program = batchedProgram(false, false, 3, true);
    const xs = randomFp16(60, 9, 2);
    const ys = randomFp16(90, 10, 2);
    const [t, p] = runFp16(program, [xs, ys]);
    for (let b = 0; b < 3; b++)
      for (let m = 0; m < 4; m++)
        for (let n = 0; n < 6; n++) expect(t![(b * 6 + n) * 4 + m]).toBe(p![(b * 4 + m) * 6 + n]);
    expect(compileSimProgram(program).stepCount).toBe(
      compileSimProgram(program, { inPlaceOperands: false }).stepCount,
    );
  });
});

// A head split of a packed input: the columns [2, 6) of x [1, 8, 1, 10] as [1, 2, 4, 4] heads,
// transposed to [1, 2, 4, 4] (d and t swapped), and a [1, 0, 2, 3] transpose of the same slice,
// whose walk (rows of 16) crosses the slice's rows in x (copied as before).
const headSplit = milProgram(
  [fp16Spec('x', [1, 8, 1, 10])],
  [
    'tensor<int32, [4]> at = const()[name=string("at"), val=tensor<int32, [4]>([0, 0, 0, 2])];',
    'tensor<int32, [4]> size = const()[name=string("size"), val=tensor<int32, [4]>([1, 8, 1, 4])];',
    'tensor<int32, [4]> heads = const()[name=string("heads"), val=tensor<int32, [4]>([1, 2, 4, 4])];',
    'tensor<int32, [4]> perm = const()[name=string("perm"), val=tensor<int32, [4]>([0, 1, 3, 2])];',
    'tensor<int32, [4]> lead = const()[name=string("lead"), val=tensor<int32, [4]>([1, 0, 2, 3])];',
    'tensor<fp16, [1, 8, 1, 4]> s = slice_by_size(x=x, begin=at, size=size)[name=string("s")];',
    'tensor<fp16, [1, 2, 4, 4]> h = reshape(shape=heads, x=s)[name=string("h")];',
    'tensor<fp16, [1, 2, 4, 4]> t = transpose(perm=perm, x=h)[name=string("t")];',
    'tensor<fp16, [2, 1, 4, 4]> u = transpose(perm=lead, x=h)[name=string("u")];',
  ],
  [fp16Spec('t', [1, 2, 4, 4]), fp16Spec('u', [2, 1, 4, 4])],
);

describe('a transpose of a slice', () => {
  it('reads the slice where it lies in its source: hand-computed, the bytes of the copy', () => {
    const xs = randomFp16(80, 13, 2);
    const [t, u] = runFp16(headSplit, [xs]);
    // h[0, g, d, c] = x[0, 4g + d, 0, 2 + c]; t[0, g, c, d] = h[0, g, d, c]; u[g, 0, d, c] = h[0, g, d, c].
    const h = (g: number, d: number, c: number) => xs[(4 * g + d) * 10 + 2 + c]!;
    for (let g = 0; g < 2; g++)
      for (let d = 0; d < 4; d++)
        for (let c = 0; c < 4; c++) {
          expect(t![(g * 4 + c) * 4 + d]).toBe(h(g, d, c));
          expect(u![(g * 4 + d) * 4 + c]).toBe(h(g, d, c));
        }
    const on = compileSimProgram(headSplit);
    const off = compileSimProgram(headSplit, { inPlaceOperands: false });
    // The slice is still copied for `u`, so the step count is the same; `t` reads x itself.
    expect(on.stepCount).toBe(off.stepCount);
    const bits = encodeFp16Buffer(fp16Values(80, 14));
    const outputsOf = (executable: SimExecutable) => {
      const outputs = headSplit.outputs.map(() => new Uint8Array(64));
      executable.run([bits], outputs);
      return outputs;
    };
    expect(outputsOf(on)).toEqual(outputsOf(off));
    // Without `u`, the slice's copy is not run.
    const tOnly = {
      ...headSplit,
      mil: headSplit.mil.replace(/ -> \(t, u\)/, ' -> (t)'),
      outputs: [headSplit.outputs[0]!],
    };
    expect(compileSimProgram(tOnly).stepCount).toBe(
      compileSimProgram(tOnly, { inPlaceOperands: false }).stepCount - 1,
    );
  });
});
