import { describe, expect, it } from 'vitest';
import { compileSimProgram, type SimExecutable } from './executable';
import { encodeFp16Buffer } from './io';
import {
  fp16Result,
  fp16Spec,
  fp16Values,
  milProgram,
  randomFp16,
  runFp16,
} from './test-support.test-helper';

// Concats over x, y [1, 1, 4, 8] (fp16) along axis 2 (blocks contiguous: every axis before it is 1)
// and along the last axis (blocks strided: never placed). `packed` joins computed values, a reshape
// of one, a parameter and a value listed twice; `nested` puts `packed` itself into a larger concat,
// with `s`, which `packed` holds already; `pair` joins two values computed for it alone.
const x = fp16Spec('x', [1, 1, 4, 8]);
const y = fp16Spec('y', [1, 1, 4, 8]);
const program = milProgram(
  [x, y],
  [
    'int32 two = const()[name=string("two"), val=int32(2)];',
    'int32 three = const()[name=string("three"), val=int32(3)];',
    'bool no = const()[name=string("no"), val=bool(false)];',
    'tensor<int32, [4]> flat = const()[name=string("flat"), val=tensor<int32, [4]>([1, 1, 4, 8])];',
    'tensor<fp16, [1, 1, 4, 8]> s = add(x=x, y=y)[name=string("s")];',
    'tensor<fp16, [1, 1, 4, 8]> p = mul(x=x, y=y)[name=string("p")];',
    'tensor<fp16, [1, 1, 4, 8]> e = exp(x=p)[name=string("e")];',
    'tensor<fp16, [1, 1, 4, 8]> r = reshape(shape=flat, x=e)[name=string("r")];',
    'tensor<fp16, [1, 1, 20, 8]> packed = concat(axis=two, interleave=no, values=(s, r, x, p, p))[name=string("packed")];',
    'tensor<fp16, [1, 1, 24, 8]> nested = concat(axis=two, interleave=no, values=(packed, s))[name=string("nested")];',
    'tensor<fp16, [1, 1, 4, 16]> rows = concat(axis=three, interleave=no, values=(s, e))[name=string("rows")];',
    'tensor<fp16, [1, 1, 4, 8]> q = sub(x=x, y=y)[name=string("q")];',
    'tensor<fp16, [1, 1, 4, 8]> t = tanh(x=q)[name=string("t")];',
    'tensor<fp16, [1, 1, 8, 8]> pair = concat(axis=two, interleave=no, values=(q, t))[name=string("pair")];',
  ],
  [
    fp16Spec('nested', [1, 1, 24, 8]),
    fp16Spec('rows', [1, 1, 4, 16]),
    fp16Spec('p', [1, 1, 4, 8]),
    fp16Spec('pair', [1, 1, 8, 8]),
  ],
);

const xs = randomFp16(32, 1, 2);
const ys = randomFp16(32, 2, 2);

function run(executable: SimExecutable): Uint8Array[] {
  const outputs = program.outputs.map((spec) => new Uint8Array(2 * spec.shape.reduce((a, b) => a * b, 1)));
  executable.run([encodeFp16Buffer(xs), encodeFp16Buffer(ys)], outputs);
  return outputs;
}

describe('inPlaceConcat', () => {
  it('computes concats of hand-computed values, with their inputs placed or copied', () => {
    const s = [...xs].map((v, i) => fp16Result(v + ys[i]!));
    const p = [...xs].map((v, i) => fp16Result(v * ys[i]!));
    const e = p.map((v) => fp16Result(Math.exp(v)));
    const q = [...xs].map((v, i) => fp16Result(v - ys[i]!));
    const t = q.map((v) => fp16Result(Math.tanh(v)));
    const row = (a: number[], r: number) => a.slice(r * 8, r * 8 + 8);
    for (const inPlaceConcat of [true, false]) {
      const [nested, rows, pOut, pair] = runFp16(program, [xs, ys], { inPlaceConcat });
      expect([...nested!]).toEqual([...s, ...e, ...xs, ...p, ...p, ...s]);
      expect([...rows!]).toEqual([0, 1, 2, 3].flatMap((r) => [...row(s, r), ...row(e, r)]));
      expect([...pOut!]).toEqual(p);
      expect([...pair!]).toEqual([...q, ...t]);
    }
  });

  it('drops a concat whose every input was computed in place, with the same bytes out', () => {
    const on = compileSimProgram(program);
    const off = compileSimProgram(program, { inPlaceConcat: false });
    // `pair` has nothing left to copy; `packed` still copies x and p twice, `nested` s, `rows` all.
    expect(on.stepCount).toBe(off.stepCount - 1);
    expect(run(on)).toEqual(run(off));
    // A second run on the same tensors: nothing placed is left stale or overwritten.
    expect(run(on)).toEqual(run(off));
  });
});

// RoPE's swaps: concats of slices of one value along its last axis (rows of 3 of a [1, 4, 2, 6]
// value), pairs of single elements (a [1, 4, 6, 2] view), and slices of two values (not one source).
const swaps = milProgram(
  [fp16Spec('x', [1, 4, 2, 6]), fp16Spec('y', [1, 4, 2, 6])],
  [
    'int32 three = const()[name=string("three"), val=int32(3)];',
    'bool no = const()[name=string("no"), val=bool(false)];',
    'tensor<int32, [4]> at0 = const()[name=string("at0"), val=tensor<int32, [4]>([0, 0, 0, 0])];',
    'tensor<int32, [4]> at1 = const()[name=string("at1"), val=tensor<int32, [4]>([0, 0, 0, 1])];',
    'tensor<int32, [4]> at3 = const()[name=string("at3"), val=tensor<int32, [4]>([0, 0, 0, 3])];',
    'tensor<int32, [4]> half = const()[name=string("half"), val=tensor<int32, [4]>([1, 4, 2, 3])];',
    'tensor<int32, [4]> one = const()[name=string("one"), val=tensor<int32, [4]>([1, 4, 6, 1])];',
    'tensor<int32, [4]> pairs = const()[name=string("pairs"), val=tensor<int32, [4]>([1, 4, 6, 2])];',
    'tensor<fp16, [1, 4, 2, 6]> s = add(x=x, y=y)[name=string("s")];',
    'tensor<fp16, [1, 4, 2, 3]> s1 = slice_by_size(x=s, begin=at0, size=half)[name=string("s1")];',
    'tensor<fp16, [1, 4, 2, 3]> s2 = slice_by_size(x=s, begin=at3, size=half)[name=string("s2")];',
    'tensor<fp16, [1, 4, 2, 6]> swap = concat(axis=three, interleave=no, values=(s2, s1))[name=string("swap")];',
    'tensor<fp16, [1, 4, 6, 2]> p = reshape(shape=pairs, x=s)[name=string("p")];',
    'tensor<fp16, [1, 4, 6, 1]> even = slice_by_size(x=p, begin=at0, size=one)[name=string("even")];',
    'tensor<fp16, [1, 4, 6, 1]> odd = slice_by_size(x=p, begin=at1, size=one)[name=string("odd")];',
    'tensor<fp16, [1, 4, 6, 2]> swapped = concat(axis=three, interleave=no, values=(odd, even))[name=string("swapped")];',
    'tensor<fp16, [1, 4, 2, 3]> y1 = slice_by_size(x=y, begin=at0, size=half)[name=string("y1")];',
    'tensor<fp16, [1, 4, 2, 6]> mixed = concat(axis=three, interleave=no, values=(s2, y1))[name=string("mixed")];',
  ],
  [fp16Spec('swap', [1, 4, 2, 6]), fp16Spec('swapped', [1, 4, 6, 2]), fp16Spec('mixed', [1, 4, 2, 6])],
);

describe('a concat of slices of one value', () => {
  it('is one gather from the value: the hand-computed swaps, the bytes of the copies, fewer steps', () => {
    const sx = randomFp16(48, 5, 2);
    const sy = randomFp16(48, 6, 2);
    const s = [...sx].map((v, i) => fp16Result(v + sy[i]!));
    const [swap, swapped, mixed] = runFp16(swaps, [sx, sy]);
    const rows = (values: readonly number[], width: number) =>
      Array.from({ length: values.length / width }, (_, r) => values.slice(r * width, r * width + width));
    expect([...swap!]).toEqual(rows(s, 6).flatMap((row) => [...row.slice(3), ...row.slice(0, 3)]));
    expect([...swapped!]).toEqual(rows(s, 2).flatMap(([a, b]) => [b!, a!]));
    expect([...mixed!]).toEqual(
      rows(s, 6).flatMap((row, r) => [...row.slice(3), ...[...sy].slice(r * 6, r * 6 + 3)]),
    );
    const on = compileSimProgram(swaps);
    const off = compileSimProgram(swaps, { inPlaceConcat: false });
    // s1, even and odd are not run (s2 is, for `mixed`, which copies its slices as before).
    expect(on.stepCount).toBe(off.stepCount - 3);
    const inputs = [encodeFp16Buffer(fp16Values(48, 7)), encodeFp16Buffer(fp16Values(48, 8))];
    const outputsOf = (executable: SimExecutable) => {
      const outputs = swaps.outputs.map(() => new Uint8Array(96));
      executable.run(inputs, outputs);
      return outputs;
    };
    expect(outputsOf(on)).toEqual(outputsOf(off));
  });
});
