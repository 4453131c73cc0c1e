/**
 * Matmul operands read as the fp16 bits of an input that only matmuls read
 * (SimCompileOptions.halfInputOperands): the same bytes out as decoding the input first, in every
 * sim-ops mode, on aligned and unaligned input buffers, run after run; inputs something else reads
 * (or that come back out) are decoded as before.
 */
import type { Program } from 'ane-ir/mil';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { nativeAddon } from '../native/loader';
import { compileSimProgram, type SimCompileOptions } from './executable';
import { encodeFp16Buffer } from './io';
import { setSimOpsMode, simOpsMode } from './native-ops';
import { fp16Spec, fp16Values, milProgram, product } from './test-support.test-helper';

const simOps = nativeAddon().addon?.simOps;
const initialMode = simOpsMode();
afterEach(() => {
  setSimOpsMode(initialMode);
  vi.restoreAllMocks();
});

const C = 40; // channels: the contraction of `backward`, the output rows of `forward`
const S = 8; // positions
const V = 24; // the table's columns

/** A classifier's input gradient: table [C, V] and dlogits [C, S] packed in x; y = tableᵀ · dlogits. */
const backward = milProgram(
  [fp16Spec('x', [1, C, 1, S + V])],
  [
    `tensor<int32, [4]> b0 = const()[name=string("b0"), val=tensor<int32, [4]>([0, 0, 0, ${S}])];`,
    `tensor<int32, [4]> s0 = const()[name=string("s0"), val=tensor<int32, [4]>([1, ${C}, 1, ${V}])];`,
    `tensor<fp16, [1, ${C}, 1, ${V}]> table = slice_by_size(x=x, begin=b0, size=s0)[name=string("table")];`,
    `tensor<int32, [4]> r0 = const()[name=string("r0"), val=tensor<int32, [4]>([1, 1, ${C}, ${V}])];`,
    `tensor<fp16, [1, 1, ${C}, ${V}]> tm = reshape(shape=r0, x=table)[name=string("tm")];`,
    'tensor<int32, [4]> b1 = const()[name=string("b1"), val=tensor<int32, [4]>([0, 0, 0, 0])];',
    `tensor<int32, [4]> s1 = const()[name=string("s1"), val=tensor<int32, [4]>([1, ${C}, 1, ${S}])];`,
    `tensor<fp16, [1, ${C}, 1, ${S}]> d = slice_by_size(x=x, begin=b1, size=s1)[name=string("d")];`,
    `tensor<int32, [4]> r1 = const()[name=string("r1"), val=tensor<int32, [4]>([1, 1, ${C}, ${S}])];`,
    `tensor<fp16, [1, 1, ${C}, ${S}]> dm = reshape(shape=r1, x=d)[name=string("dm")];`,
    'bool yes = const()[name=string("yes"), val=bool(true)];',
    'bool no = const()[name=string("no"), val=bool(false)];',
    `tensor<fp16, [1, 1, ${V}, ${S}]> y = matmul(transpose_x=yes, transpose_y=no, x=tm, y=dm)[name=string("y")];`,
  ],
  [fp16Spec('y', [1, 1, V, S])],
);

/**
 * A classifier's logits the way the lowering writes them: x [C, S] and the table transposed
 * [C, V] packed in one input; logitsᵀ = xᵀ · table, transposed back (the product is computed
 * transposed, straight from the two slices).
 */
const forward = milProgram(
  [fp16Spec('x', [1, C, 1, S + V])],
  [
    'tensor<int32, [4]> b0 = const()[name=string("b0"), val=tensor<int32, [4]>([0, 0, 0, 0])];',
    `tensor<int32, [4]> s0 = const()[name=string("s0"), val=tensor<int32, [4]>([1, ${C}, 1, ${S}])];`,
    `tensor<fp16, [1, ${C}, 1, ${S}]> a = slice_by_size(x=x, begin=b0, size=s0)[name=string("a")];`,
    `tensor<int32, [4]> r0 = const()[name=string("r0"), val=tensor<int32, [4]>([1, 1, ${C}, ${S}])];`,
    `tensor<fp16, [1, 1, ${C}, ${S}]> am = reshape(shape=r0, x=a)[name=string("am")];`,
    'tensor<int32, [4]> perm = const()[name=string("perm"), val=tensor<int32, [4]>([0, 1, 3, 2])];',
    `tensor<fp16, [1, 1, ${S}, ${C}]> at = transpose(perm=perm, x=am)[name=string("at")];`,
    `tensor<int32, [4]> b1 = const()[name=string("b1"), val=tensor<int32, [4]>([0, 0, 0, ${S}])];`,
    `tensor<int32, [4]> s1 = const()[name=string("s1"), val=tensor<int32, [4]>([1, ${C}, 1, ${V}])];`,
    `tensor<fp16, [1, ${C}, 1, ${V}]> w = slice_by_size(x=x, begin=b1, size=s1)[name=string("w")];`,
    `tensor<int32, [4]> r1 = const()[name=string("r1"), val=tensor<int32, [4]>([1, 1, ${C}, ${V}])];`,
    `tensor<fp16, [1, 1, ${C}, ${V}]> wm = reshape(shape=r1, x=w)[name=string("wm")];`,
    'bool no = const()[name=string("no"), val=bool(false)];',
    `tensor<fp16, [1, 1, ${S}, ${V}]> lt = matmul(transpose_x=no, transpose_y=no, x=at, y=wm)[name=string("lt")];`,
    `tensor<fp16, [1, 1, ${V}, ${S}]> y = transpose(perm=perm, x=lt)[name=string("y")];`,
  ],
  [fp16Spec('y', [1, 1, V, S])],
);

/** `backward` plus one more statement and its result: `x` read by more than the matmul. */
function backwardAnd(statement: string, output: ReturnType<typeof fp16Spec>): Program {
  const statements = backward.mil
    .split('\n')
    .filter((line) => /= (const|slice_by_size|reshape|matmul)\(/.test(line))
    .map((line) => line.trim());
  return milProgram(
    [fp16Spec('x', [1, C, 1, S + V])],
    [...statements, statement],
    [fp16Spec('y', [1, 1, V, S]), output],
  );
}

/** The input also read by an add: it must be decoded. */
const alsoAdded = backwardAnd(
  `tensor<fp16, [1, ${C}, 1, ${S + V}]> twice = add(x=x, y=x)[name=string("twice")];`,
  fp16Spec('twice', [1, C, 1, S + V]),
);

/** The input also returned. */
const returnsInput = backwardAnd(
  `tensor<fp16, [1, ${C}, 1, ${S + V}]> same = identity(x=x)[name=string("same")];`,
  fp16Spec('same', [1, C, 1, S + V]),
);

/** fp16 bytes of `count` values (the specials first: NaN, infinities, subnormals, signed zeros). */
function inputBytes(count: number, seed: number): Uint8Array {
  return encodeFp16Buffer(fp16Values(count, seed).map((v) => (Math.abs(v) > 8 ? v / 4096 : v)));
}

function run(program: Program, options: SimCompileOptions, inputs: Uint8Array[]): Uint8Array[] {
  const executable = compileSimProgram(program, options);
  const outputs = program.outputs.map((spec) => new Uint8Array(2 * product(spec.shape)));
  executable.run(inputs, outputs);
  return outputs;
}

describe('halfInputOperands', () => {
  const count = C * (S + V);

  it.each([
    ['a classifier input gradient (transposed operand)', backward],
    ['classifier logits (transposed view, product computed transposed)', forward],
  ])(
    '%s: reads the input as fp16 bits, with the bytes of decoding it, in every sim-ops mode',
    (_, program) => {
      expect(compileSimProgram(program).inputsReadAsFp16).toEqual([true]);
      expect(compileSimProgram(program, { halfInputOperands: false }).inputsReadAsFp16).toEqual([false]);
      const inputs = [inputBytes(count, 7)];
      const decoded = run(program, { halfInputOperands: false }, inputs);
      for (const mode of ['native', 'ts', 'compare'] as const) {
        setSimOpsMode(mode);
        expect(run(program, {}, inputs), mode).toEqual(decoded);
      }
    },
  );

  it.skipIf(simOps === undefined)('hands the fp16 bits to the native GEMM (nothing widened first)', () => {
    const gemm = vi.spyOn(simOps!, 'gemm');
    setSimOpsMode('native');
    run(backward, {}, [inputBytes(count, 3)]);
    expect(gemm).toHaveBeenCalledTimes(1);
    const [, a, , , , b] = gemm.mock.calls[0]!;
    expect(a).toBeInstanceOf(Uint16Array);
    expect(b).toBeInstanceOf(Uint16Array);
  });

  it('reads each run its own input, and an unaligned input buffer (decoded instead) gives the same bytes', () => {
    const executable = compileSimProgram(backward);
    for (const seed of [1, 2, 3]) {
      const bytes = inputBytes(count, seed);
      const unaligned = new Uint8Array(bytes.length + 1).subarray(1);
      unaligned.set(bytes);
      const expected = run(backward, { halfInputOperands: false }, [bytes]);
      for (const input of [bytes, unaligned]) {
        const out = [new Uint8Array(2 * V * S)];
        executable.run([input], out);
        expect(out).toEqual(expected);
      }
    }
  });

  it('decodes an input that something besides matmul reads, or that comes back out', () => {
    const inputs = [inputBytes(count, 11)];
    for (const program of [alsoAdded, returnsInput]) {
      expect(compileSimProgram(program).inputsReadAsFp16).toEqual([false]);
      expect(run(program, {}, inputs)).toEqual(run(program, { halfInputOperands: false }, inputs));
    }
  });

  it('decodes only the slices that something besides matmul reads (a fused op, a transpose)', () => {
    // d = x[:, 0:S] is also read by a tanh and a transpose, through its view into x; the table
    // columns only by the matmul, as fp16 bits.
    const perm = 'tensor<int32, [4]> pd = const()[name=string("pd"), val=tensor<int32, [4]>([0, 1, 3, 2])];';
    const dt = `tensor<fp16, [1, 1, ${S}, ${C}]> dt = transpose(perm=pd, x=dm)[name=string("dt")];`;
    const both = milProgram(
      [fp16Spec('x', [1, C, 1, S + V])],
      [
        ...backward.mil
          .split('\n')
          .filter((line) => /= (const|slice_by_size|reshape|matmul)\(/.test(line))
          .map((line) => line.trim()),
        `tensor<fp16, [1, ${C}, 1, ${S}]> t = tanh(x=d)[name=string("t")];`,
        perm,
        dt,
      ],
      [fp16Spec('y', [1, 1, V, S]), fp16Spec('t', [1, C, 1, S]), fp16Spec('dt', [1, 1, S, C])],
    );
    const executable = compileSimProgram(both);
    expect(executable.inputElementsDecoded).toEqual([C * S]);
    expect(executable.inputsReadAsFp16).toEqual([false]);
    expect(compileSimProgram(both, { halfInputOperands: false }).inputElementsDecoded).toEqual([C * (S + V)]);
    expect(compileSimProgram(alsoAdded).inputElementsDecoded).toEqual([C * (S + V)]);
    expect(compileSimProgram(backward).inputElementsDecoded).toEqual([0]);
    // Run after run on new inputs (no window left stale), aligned and not: the bytes of decoding all.
    for (const seed of [4, 5, 6]) {
      const bytes = inputBytes(count, seed);
      const unaligned = new Uint8Array(bytes.length + 1).subarray(1);
      unaligned.set(bytes);
      const expected = run(both, { halfInputOperands: false }, [bytes]);
      for (const input of [bytes, unaligned]) {
        const out = both.outputs.map((spec) => new Uint8Array(2 * product(spec.shape)));
        executable.run([input], out);
        expect(out).toEqual(expected);
      }
    }
  });

  it('is off with inPlaceOperands off (the operands are copies then)', () => {
    expect(compileSimProgram(backward, { inPlaceOperands: false }).inputsReadAsFp16).toEqual([false]);
  });
});

describe.skipIf(simOps === undefined)('the native gemm op', () => {
  it('refuses reads outside its operands, a short row stride, a short or overlapping out', () => {
    const ops = simOps!;
    const a = new Uint16Array(12);
    const b = new Float32Array(12);
    const out = new Float32Array(9);
    // out [3, 3] = a [3, 4] · b [4, 3]
    expect(() => ops.gemm(out, a, 0, 4, false, b, 0, 3, false, 3, 3, 4, true, Infinity)).not.toThrow();
    expect(() => ops.gemm(out, a, 1, 4, false, b, 0, 3, false, 3, 3, 4, true, Infinity)).toThrow(
      /reads outside a/,
    );
    expect(() => ops.gemm(out, a, 0, 4, false, b, 0, 4, false, 3, 3, 4, true, Infinity)).toThrow(
      /reads outside b/,
    );
    expect(() => ops.gemm(out, a, 0, 3, false, b, 0, 3, false, 3, 3, 4, true, Infinity)).toThrow(
      /row stride/,
    );
    expect(() =>
      ops.gemm(new Float32Array(8), a, 0, 4, false, b, 0, 3, false, 3, 3, 4, true, Infinity),
    ).toThrow(/out/);
    expect(() => ops.gemm(b.subarray(0, 9), a, 0, 4, false, b, 0, 3, false, 3, 3, 4, true, Infinity)).toThrow(
      /overlaps/,
    );
    expect(() =>
      ops.gemm(out, new Int32Array(12) as never, 0, 4, false, b, 0, 3, false, 3, 3, 4, true, Infinity),
    ).toThrow(TypeError);
    expect(() => ops.gemm(out, a, -1, 4, false, b, 0, 3, false, 3, 3, 4, true, Infinity)).toThrow(RangeError);
  });
});
