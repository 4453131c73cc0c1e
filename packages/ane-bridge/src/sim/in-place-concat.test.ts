import { describe, expect, it } from 'vitest';
import { compileSimProgram, type SimExecutable } from './executable';
import { encodeFp16Buffer } from './io';
import { fp16Result, fp16Spec, milProgram, randomFp16, runFp16 } from './test-support.test-helper';

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
