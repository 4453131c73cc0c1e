import { describe, expect, it } from 'vitest';
import { compileSimProgram } from './executable';
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
