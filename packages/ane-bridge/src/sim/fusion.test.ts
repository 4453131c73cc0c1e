/**
 * Fused elementwise chains (./fusion.ts plans them, ./ops/fused.ts runs them): every stored value
 * has the bits of its ops run one at a time, natively and in the TS twin; the planner stores only
 * what is read after a chain and reads slices in place; the native op refuses malformed chains.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { nativeAddon } from '../native/loader';
import { compileSimProgram } from './executable';
import { decodeFp16Buffer, encodeFp16Buffer } from './io';
import { planBroadcast } from './layout';
import { setSimOpsMode, simOpsMode } from './native-ops';
import type { BinaryArithmeticOp, UnaryOp } from './ops/elementwise';
import { BINARY_ARITHMETIC_OPS, binaryArithmetic, NATIVE_UNARY_OPS, unary } from './ops/elementwise';
import type { FusedChain, FusedInstruction, FusedOperand } from './ops/fused';
import { prepareChain, runFusedChain } from './ops/fused';
import type { FloatTensor } from './tensor';
import {
  fp16Result,
  fp16Spec,
  fp16Values,
  milProgram,
  product,
  randomFp16,
} from './test-support.test-helper';

const native = nativeAddon().addon?.simOps !== undefined;
const MODES = native ? (['ts', 'native'] as const) : (['ts'] as const);
const initialMode = simOpsMode();
afterEach(() => {
  setSimOpsMode(initialMode);
});

function bits(values: Float32Array): number[] {
  return [...new Uint32Array(values.buffer, values.byteOffset, values.length)].map((b, i) =>
    Number.isNaN(values[i]) ? -1 : b,
  );
}

function dense(data: Float32Array): FusedOperand {
  return { data, inner: data.length, stride: 1, rowOffsets: Int32Array.of(0) };
}

function run(chain: FusedChain): void {
  runFusedChain(prepareChain(chain));
}

describe('a fused chain', () => {
  it('computes hand-checked values in every mode', () => {
    for (const mode of MODES) {
      setSimOpsMode(mode);
      const x = Float32Array.of(1, 2, 3, 4);
      const half = { data: Float32Array.of(0.5), inner: 4, stride: 0, rowOffsets: Int32Array.of(0) };
      const four = { data: Float32Array.of(4), inner: 4, stride: 0, rowOffsets: Int32Array.of(0) };
      const sum = new Float32Array(4);
      const relu = new Float32Array(4);
      const code: FusedInstruction[] = [
        { kind: 'load', dst: 0, operand: 0 },
        { kind: 'load', dst: 1, operand: 1 },
        { kind: 'binary', op: 'mul', dst: 2, a: 0, b: 1, fp16: true },
        { kind: 'binary', op: 'add', dst: 1, a: 2, b: 0, fp16: true },
        { kind: 'store', output: 0, src: 1 },
        { kind: 'load', dst: 0, operand: 2 },
        { kind: 'binary', op: 'sub', dst: 2, a: 1, b: 0, fp16: true },
        { kind: 'unary', op: 'relu', dst: 0, a: 2, epsilon: 0, fp16: true },
        { kind: 'store', output: 1, src: 0 },
        // A unary op of a broadcast operand.
        { kind: 'load', dst: 1, operand: 1 },
        { kind: 'unary', op: 'sqrt', dst: 0, a: 1, epsilon: 0, fp16: false },
        { kind: 'store', output: 2, src: 0 },
      ];
      const root = new Float32Array(4);
      run({ code, operands: [dense(x), half, four], outputs: [sum, relu, root], registers: 3, length: 4 });
      expect([...root], mode).toEqual(new Array(4).fill(Math.fround(Math.sqrt(0.5))));
      expect([...sum], mode).toEqual([1.5, 3, 4.5, 6]);
      expect([...relu], mode).toEqual([0, 0, 0.5, 2]);
    }
  });

  // Rows of 256 (blocks end at row ends) and of 40 (blocks gather across rows); the longest is
  // split over the native pool.
  const SHAPES: [number, number][] = [
    [7, 256],
    [13, 40],
    [1, 1],
    [520, 256],
  ];
  BINARY_ARITHMETIC_OPS.forEach((op, k) => {
    const unaryOp = NATIVE_UNARY_OPS[k % NATIVE_UNARY_OPS.length]!;
    it(`${op} then add, mul and ${unaryOp} over broadcast and strided operands: the bits of the ops run alone`, () => {
      for (const [rows, inner] of SHAPES) {
        for (const mode of MODES) {
          setSimOpsMode(mode);
          const { fused, alone } = chainAgainstOps(op, unaryOp, rows, inner);
          expect(fused.map(bits), `${mode} [${rows}, ${inner}]`).toEqual(alone.map(bits));
        }
      }
    });
  });

  it('gives the same bits natively and in the TS twin', () => {
    if (!native) return;
    for (const [rows, inner] of SHAPES) {
      setSimOpsMode('ts');
      const ts = chainAgainstOps('real_div', 'rsqrt', rows, inner).fused.map(bits);
      setSimOpsMode('native');
      expect(chainAgainstOps('real_div', 'rsqrt', rows, inner).fused.map(bits)).toEqual(ts);
    }
  });
});

/**
 * t0 = op(x, y[row]) (fp16 for every other op, else fp32), t1 = t0 + z[col] (fp16), t2 = t1 * w^T (fp16, w read through a
 * transposed walk), t3 = unaryOp(t2) (fp16): as one chain storing t0 and t3, and op by op.
 */
function chainAgainstOps(op: BinaryArithmeticOp, unaryOp: UnaryOp, rows: number, inner: number) {
  const length = rows * inner;
  const t0Dtype = BINARY_ARITHMETIC_OPS.indexOf(op) % 2 === 0 ? 'fp16' : 'fp32';
  const x = fp16Values(length, 5);
  const y = fp16Values(rows, 7).reverse();
  const z = fp16Values(inner, 11).map((v) => (Number.isFinite(v) ? v / 4 : v));
  const wT = fp16Values(length, 13).reverse(); // [inner, rows]
  const rowOffsets = (step: number) => Int32Array.from({ length: rows }, (_, row) => row * step);
  const operands: FusedOperand[] = [
    dense(x),
    { data: y, inner, stride: 0, rowOffsets: rowOffsets(1) },
    { data: z, inner, stride: 1, rowOffsets: rowOffsets(0) },
    { data: wT, inner, stride: rows, rowOffsets: rowOffsets(1) },
  ];
  const fused = [new Float32Array(length), new Float32Array(length)];
  run({
    code: [
      { kind: 'load', dst: 0, operand: 0 },
      { kind: 'load', dst: 1, operand: 1 },
      { kind: 'binary', op, dst: 2, a: 0, b: 1, fp16: t0Dtype === 'fp16' },
      { kind: 'store', output: 0, src: 2 },
      { kind: 'load', dst: 0, operand: 2 },
      { kind: 'binary', op: 'add', dst: 1, a: 2, b: 0, fp16: true },
      { kind: 'load', dst: 0, operand: 3 },
      { kind: 'binary', op: 'mul', dst: 2, a: 1, b: 0, fp16: true },
      { kind: 'unary', op: unaryOp, dst: 0, a: 2, epsilon: 1e-5, fp16: true },
      { kind: 'store', output: 1, src: 0 },
    ],
    operands,
    outputs: fused,
    registers: 3,
    length,
  });

  const shape = [rows, inner];
  const tensor = (dtype: 'fp16' | 'fp32'): FloatTensor => ({ dtype, shape, data: new Float32Array(length) });
  const t0 = tensor(t0Dtype);
  binaryArithmetic(op, t0, x, y, planBroadcast(shape, [shape, [rows, 1]]));
  const t1 = tensor('fp16');
  binaryArithmetic('add', t1, t0.data, z, planBroadcast(shape, [shape, [inner]]));
  const w = new Float32Array(length);
  for (let row = 0; row < rows; row++)
    for (let col = 0; col < inner; col++) w[row * inner + col] = wT[col * rows + row]!;
  const t2 = tensor('fp16');
  binaryArithmetic('mul', t2, t1.data, w, planBroadcast(shape, [shape, shape]));
  const t3 = tensor('fp16');
  unary(unaryOp, t3, t2.data, { epsilon: 1e-5 });
  return { fused, alone: [t0.data, t3.data] };
}

describe('the native fused op', () => {
  it.skipIf(!native)(
    'refuses malformed chains and arrays outside their bounds (a RangeError or TypeError, no crash)',
    () => {
      const ops = nativeAddon().addon!.simOps!;
      const x = new Float32Array(8);
      const out = new Float32Array(8);
      const walk = Int32Array.of(8, 1);
      const rows = [Int32Array.of(0)];
      const code = (...instructions: number[][]) => Int32Array.from(instructions.flat());
      const load = [0, 0, 0, 0, 0, 0];
      const relu = [2, 8, 1, 0, 0, 1];
      const store = [3, 0, 0, 1, 0, 0];
      const good = code(load, relu, store);
      const eps = new Float64Array(3);
      ops.fused(good, eps, 2, 8, [x], walk, rows, [out]);
      expect([...out]).toEqual([...x]);

      // A register read before anything wrote it (store of register 1 with no op).
      expect(() => ops.fused(code(load, [3, 0, 0, 1, 0, 0]), eps, 2, 8, [x], walk, rows, [out])).toThrow(
        /invalid/,
      );
      expect(() =>
        ops.fused(code(load, [2, 99, 1, 0, 0, 1], store), eps, 2, 8, [x], walk, rows, [out]),
      ).toThrow(/invalid/);
      expect(() =>
        ops.fused(code(load, relu, [3, 0, 1, 1, 0, 0]), eps, 2, 8, [x], walk, rows, [out]),
      ).toThrow(/invalid/);
      expect(() => ops.fused(good, eps, 1, 8, [x], walk, rows, [out])).toThrow(/invalid/);
      expect(() => ops.fused(good, eps, 0, 8, [x], walk, rows, [out])).toThrow(/registers/);
      expect(() => ops.fused(good.subarray(1), eps, 2, 8, [x], walk, rows, [out])).toThrow(/malformed/);
      expect(() => ops.fused(good, new Float64Array(1), 2, 8, [x], walk, rows, [out])).toThrow(/malformed/);
      // Operands and outputs outside their arrays, or sharing memory.
      expect(() => ops.fused(good, eps, 2, 8, [x.subarray(1)], walk, rows, [out])).toThrow(
        /outside operand 0/,
      );
      expect(() => ops.fused(good, eps, 2, 8, [x], Int32Array.of(8, 2), rows, [out])).toThrow(
        /outside operand 0/,
      );
      expect(() => ops.fused(good, eps, 2, 8, [x], Int32Array.of(3, 1), rows, [out])).toThrow(/do not tile/);
      expect(() => ops.fused(good, eps, 2, 8, [x], Int32Array.of(4, 1), rows, [out])).toThrow(
        /shorter than its rows/,
      );
      expect(() => ops.fused(good, eps, 2, 8, [x], walk, [Int32Array.of(-1)], [out])).toThrow(
        /outside operand 0/,
      );
      expect(() => ops.fused(good, eps, 2, 8, [x], walk, rows, [out.subarray(1)])).toThrow(RangeError);
      expect(() => ops.fused(good, eps, 2, 8, [x], walk, rows, [x])).toThrow(/overlaps an operand/);
      expect(() =>
        ops.fused(code(load, relu, store, [3, 0, 1, 1, 0, 0]), new Float64Array(4), 2, 8, [x], walk, rows, [
          out,
          out,
        ]),
      ).toThrow(/overlaps output 0/);
      expect(() => ops.fused(good, eps, 2, 8, [new Float64Array(8) as never], walk, rows, [out])).toThrow(
        TypeError,
      );
      expect(() => ops.fused(good, eps, 2, 8, x as never, walk, rows, [out])).toThrow(TypeError);
      expect(() => ops.fused(good, eps, 2, -1, [x], walk, rows, [out])).toThrow(RangeError);
    },
  );
});

describe('fusion in compiled programs', () => {
  // x: [1, 4, 1, 24] sliced to its last 16 columns; a = xs * g (g per channel), b = a + xs,
  // s = sigmoid(b), t = s * s; r = reduce_sum(b) reads b after the chain; u = t - r opens another
  // chain; q = transpose(x) in the middle neither reads nor writes the chain's values.
  const x = fp16Spec('x', [1, 4, 1, 24]);
  const g = fp16Spec('g', [1, 4, 1, 1]);
  const program = milProgram(
    [x, g],
    [
      'tensor<int32, [4]> bg = const()[name=string("bg"), val=tensor<int32, [4]>([0, 0, 0, 8])];',
      'tensor<int32, [4]> sz = const()[name=string("sz"), val=tensor<int32, [4]>([1, 4, 1, 16])];',
      'tensor<fp16, [1, 4, 1, 16]> xs = slice_by_size(x=x, begin=bg, size=sz)[name=string("xs")];',
      'tensor<fp16, [1, 4, 1, 16]> a = mul(x=xs, y=g)[name=string("a")];',
      'tensor<fp16, [1, 4, 1, 16]> b = add(x=a, y=xs)[name=string("b")];',
      'tensor<int32, [4]> pm = const()[name=string("pm"), val=tensor<int32, [4]>([0, 3, 2, 1])];',
      'tensor<fp16, [1, 24, 1, 4]> q = transpose(perm=pm, x=x)[name=string("q")];',
      'tensor<fp16, [1, 4, 1, 16]> s = sigmoid(x=b)[name=string("s")];',
      'tensor<fp16, [1, 4, 1, 16]> t = mul(x=s, y=s)[name=string("t")];',
      'tensor<int32, [1]> ax = const()[name=string("ax"), val=tensor<int32, [1]>([3])];',
      'bool kd = const()[name=string("kd"), val=bool(true)];',
      'tensor<fp16, [1, 4, 1, 1]> r = reduce_sum(x=b, axes=ax, keep_dims=kd)[name=string("r")];',
      'tensor<fp16, [1, 4, 1, 16]> u = sub(x=t, y=r)[name=string("u")];',
    ],
    [
      fp16Spec('a', [1, 4, 1, 16]),
      fp16Spec('q', [1, 24, 1, 4]),
      fp16Spec('r', [1, 4, 1, 1]),
      fp16Spec('u', [1, 4, 1, 16]),
    ],
  );
  const inputs = [randomFp16(product(x.shape), 3, 2), randomFp16(product(g.shape), 4, 2)];

  function runProgram(fuseElementwise: boolean) {
    const executable = compileSimProgram(program, { fuseElementwise, profileOps: true });
    const outputs = program.outputs.map((spec) => new Uint8Array(product(spec.shape) * 2));
    const bytes = inputs.map((values) => encodeFp16Buffer(values));
    executable.run(bytes, outputs);
    return { outputs, steps: executable.stepCount, profile: [...executable.opProfile().keys()].sort() };
  }

  it('gives the hand-computed values and the bytes of the unfused program, in fewer steps', () => {
    for (const mode of MODES) {
      setSimOpsMode(mode);
      const fused = runProgram(true);
      const alone = runProgram(false);
      expect(fused.outputs, mode).toEqual(alone.outputs);
      expect(fused.steps).toBeLessThan(alone.steps);
      expect(fused.profile).toContain('fused');
      expect(alone.profile).not.toContain('fused');

      const [xv, gv] = inputs as [Float32Array, Float32Array];
      const [a, q, r, u] = fused.outputs.map(decodeFp16Buffer) as [
        Float32Array,
        Float32Array,
        Float32Array,
        Float32Array,
      ];
      for (let c = 0; c < 4; c++) {
        for (let j = 0; j < 16; j++) {
          const xs = xv[c * 24 + 8 + j]!;
          const av = fp16Result(xs * gv[c]!);
          const bv = fp16Result(av + xs);
          const sv = fp16Result(1 / (1 + Math.exp(-bv)));
          const tv = fp16Result(sv * sv);
          expect(a[c * 16 + j]).toBe(av);
          expect(u[c * 16 + j]).toBe(fp16Result(tv - r[c]!));
        }
        for (let j = 0; j < 24; j++) expect(q[j * 4 + c]).toBe(xv[c * 24 + j]);
      }
    }
  });
});
