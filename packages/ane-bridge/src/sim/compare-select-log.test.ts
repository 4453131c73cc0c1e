/**
 * Conformance-style cases for comparisons, select and log: programs in the corpus dialect
 * (program(1.3), every parameter a named const, fp16 I/O) with fixed inputs and outputs worked out
 * by hand, and the forms the hardware refuses (ane-quirks `dtype.bool`, `emit.explicit-params`,
 * `emit.binary-dtype`), which the simulator refuses with the rule's id.
 */
import type { Program } from 'ane-ir/mil';
import { roundToFp16 } from 'ane-ir/mil';
import { describe, expect, it } from 'vitest';
import { CompileError } from '../errors';
import { compileSimProgram } from './executable';
import { fp16Spec, milProgram, runFp16 } from './test-support.test-helper';

const row = (name: string) => fp16Spec(name, [1, 1, 1, 8]);
const boolRow = (name: string) => ({ name, dtype: 'bool' as never, shape: [1, 1, 1, 8] });

function refusal(program: Program): CompileError {
  try {
    compileSimProgram(program);
  } catch (error) {
    expect(error).toBeInstanceOf(CompileError);
    return error as CompileError;
  }
  throw new Error('expected the program to be refused');
}

describe('comparison -> select (the ReLU mask) in the corpus dialect', () => {
  const x = [-2, -0.5, 0, 0.5, 1, 3, -1, 2];
  const dy = [1, 2, 3, 4, 5, 6, 7, 8];

  it('greater(x, 0) selects dy where x > 0 and 0 elsewhere (relu backward), bool only inside', () => {
    const program = milProgram(
      [row('x'), row('dy')],
      [
        'fp16 zero = const()[name=string("zero"), val=fp16(0)];',
        'tensor<bool, [1, 1, 1, 8]> mask = greater(x=x, y=zero)[name=string("mask")];',
        'tensor<fp16, [1, 1, 1, 8]> dx = select(cond=mask, a=dy, b=zero)[name=string("dx")];',
        'tensor<fp16, [1, 1, 1, 8]> y = select(cond=mask, a=x, b=zero)[name=string("y")];',
      ],
      [row('dx'), row('y')],
    );
    const [dx, y] = runFp16(program, [x, dy]);
    expect([...dx!]).toEqual([0, 0, 0, 4, 5, 6, 0, 8]);
    expect([...y!]).toEqual([0, 0, 0, 0.5, 1, 3, 0, 2]);
  });

  it('less and equal give the complementary masks; a select of two constants is an fp16 0/1 mask', () => {
    const program = milProgram(
      [row('x'), row('dy')],
      [
        'fp16 zero = const()[name=string("zero"), val=fp16(0)];',
        'fp16 one = const()[name=string("one"), val=fp16(1)];',
        'tensor<bool, [1, 1, 1, 8]> lt = less(x=x, y=zero)[name=string("lt")];',
        'tensor<bool, [1, 1, 1, 8]> eq = equal(x=x, y=zero)[name=string("eq")];',
        'tensor<fp16, [1, 1, 1, 8]> neg = select(cond=lt, a=one, b=zero)[name=string("neg")];',
        'tensor<fp16, [1, 1, 1, 8]> at0 = select(cond=eq, a=dy, b=x)[name=string("at0")];',
      ],
      [row('neg'), row('at0')],
    );
    const [neg, at0] = runFp16(program, [x, dy]);
    expect([...neg!]).toEqual([1, 1, 0, 0, 0, 0, 1, 0]);
    expect([...at0!]).toEqual([-2, -0.5, 3, 0.5, 1, 3, -1, 2]);
  });

  it('a comparison result returned or read as a function parameter is refused (dtype-bool)', () => {
    const returned = milProgram(
      [row('x')],
      [
        'fp16 zero = const()[name=string("zero"), val=fp16(0)];',
        'tensor<bool, [1, 1, 1, 8]> mask = greater(x=x, y=zero)[name=string("mask")];',
      ],
      [boolRow('mask')],
    );
    expect(refusal(returned).details.ruleId).toBe('dtype-bool');
    const read = milProgram(
      [boolRow('mask'), row('x')],
      [
        'fp16 zero = const()[name=string("zero"), val=fp16(0)];',
        'tensor<fp16, [1, 1, 1, 8]> y = select(cond=mask, a=x, b=zero)[name=string("y")];',
      ],
      [row('y')],
    );
    expect(refusal(read).details.ruleId).toBe('dtype-bool');
  });

  it('a comparison of an fp16 tensor with an fp32 constant is refused (ane-quirks emit.binary-dtype)', () => {
    const program = milProgram(
      [row('x')],
      [
        'fp32 zero = const()[name=string("zero"), val=fp32(0)];',
        'fp16 z16 = const()[name=string("z16"), val=fp16(0)];',
        'tensor<bool, [1, 1, 1, 8]> mask = greater(x=x, y=zero)[name=string("mask")];',
        'tensor<fp16, [1, 1, 1, 8]> y = select(cond=mask, a=x, b=z16)[name=string("y")];',
      ],
      [row('y')],
    );
    // The schema (one dtype T for x and y) refuses it before the rule table's check is reached.
    expect(refusal(program).message).toMatch(
      /greater 'mask': 'x' and 'y' must have the same dtype \(expected fp16, found fp32\)/,
    );
  });
});

describe('log with an explicit epsilon in the corpus dialect', () => {
  it('computes fp16(log(x + fp16(eps))) (values worked out from the definition)', () => {
    const program = milProgram(
      [row('x')],
      [
        'fp16 eps = const()[name=string("eps"), val=fp16(0x1p-10)];',
        'tensor<fp16, [1, 1, 1, 8]> y = log(x=x, epsilon=eps)[name=string("y")];',
      ],
      [row('y')],
    );
    // eps = 2^-10 exactly, and every x is an fp16 value, so x + eps is exact before the log:
    // log(1 - 2^-10 + 2^-10) = 0, log(0 + 2^-10) = -10 ln 2, log(2 - 2^-10 + 2^-10) = ln 2, ...
    const x = [1 - 2 ** -10, 0, 2 - 2 ** -10, 3, 0.5 - 2 ** -10, 8 - 2 ** -8, 2 ** -10, 1];
    expect(x.map(roundToFp16)).toEqual(x);
    const [y] = runFp16(program, [x]);
    const ln2 = Math.LN2;
    const exact = [
      0,
      -10 * ln2,
      ln2,
      Math.log(3 + 2 ** -10),
      -ln2,
      Math.log(8 - 2 ** -8 + 2 ** -10),
      -9 * ln2,
      Math.log(1 + 2 ** -10),
    ];
    expect([...y!]).toEqual(exact.map(roundToFp16));
    // Spot values in fp16: ln 2 = 0.6931472 -> 1420 * 2^-11 = 0.693359375; -10 ln 2 = -6.931472 -> -1774 * 2^-8 = -6.9296875.
    expect(y![2]).toBe(0.693359375);
    expect(y![1]).toBe(-6.9296875);
  });

  it('with epsilon 0 it is the exact logarithm: log(0) is -inf', () => {
    const program = milProgram(
      [row('x')],
      [
        'fp16 eps = const()[name=string("eps"), val=fp16(0)];',
        'tensor<fp16, [1, 1, 1, 8]> y = log(x=x, epsilon=eps)[name=string("y")];',
      ],
      [row('y')],
    );
    const [y] = runFp16(program, [[0, 1, 1, 1, 1, 1, 1, 1]]);
    expect(y![0]).toBe(Number.NEGATIVE_INFINITY);
    expect(y![1]).toBe(0);
  });

  it('a log without its epsilon is refused (emit-explicit-params: "Missing epsilon on log")', () => {
    const program = milProgram(
      [row('x')],
      ['tensor<fp16, [1, 1, 1, 8]> y = log(x=x)[name=string("y")];'],
      [row('y')],
    );
    const error = refusal(program);
    expect(error.details.ruleId).toBe('emit-explicit-params');
    expect(error.message).toMatch(/log leaves epsilon unspecified/);
  });
});
