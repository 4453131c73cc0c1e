import type { Program, TensorSpec } from 'ane-ir/mil';
import { encodeFp16, roundToFp16, writeBlobFile } from 'ane-ir/mil';
import { describe, expect, it } from 'vitest';
import { CompileError, KernelInputError } from '../errors';
import { compileSimProgram } from './executable';
import { decodeFp16Buffer, encodeFp16Buffer } from './io';
import { fp16Result, fp16Spec, milProgram, product, randomFp16, runFp16 } from './test-support.test-helper';

const sigmoid = (v: number) => 1 / (1 + Math.exp(-v));

function compileError(program: Program): CompileError {
  try {
    compileSimProgram(program);
  } catch (error) {
    expect(error).toBeInstanceOf(CompileError);
    return error as CompileError;
  }
  throw new Error('expected the program to be refused');
}

interface OpCase {
  name: string;
  inputs: TensorSpec[];
  statements: string[];
  outputs: TensorSpec[];
  /** Expected outputs from the input values (independent formulas, results rounded as fp16). */
  expected: (inputs: Float32Array[]) => number[][];
  weights?: Map<string, Uint8Array>;
  /** Inputs in [0.5, 2.5) instead of [-2, 2) (for log, sqrt, ...). */
  positive?: boolean;
}

const x4 = fp16Spec('x', [1, 4, 1, 8]);
const g4 = fp16Spec('g', [1, 4, 1, 1]);

function elementwiseCase(op: string, f: (a: number, b: number) => number): OpCase {
  return {
    name: `${op} with a [1, C, 1, 1] operand`,
    inputs: [x4, g4],
    statements: [`tensor<fp16, [1, 4, 1, 8]> y = ${op}(x=x, y=g)[name=string("op")];`],
    outputs: [fp16Spec('y', [1, 4, 1, 8])],
    expected: ([x, g]) => [[...x!].map((v, i) => fp16Result(f(v, g![Math.floor(i / 8)]!)))],
  };
}

function unaryCase(op: string, f: (v: number) => number, extra = ''): OpCase {
  return {
    name: op,
    inputs: [x4],
    statements: [
      ...(extra === '' ? [] : ['fp16 eps = const()[name=string("eps"), val=fp16(0.0001)];']),
      `tensor<fp16, [1, 4, 1, 8]> y = ${op}(x=x${extra})[name=string("op")];`,
    ],
    outputs: [fp16Spec('y', [1, 4, 1, 8])],
    expected: ([x]) => [[...x!].map((v) => fp16Result(f(v)))],
    positive: true,
  };
}

const EPS = roundToFp16(0.0001);

/** A one-tensor fp16 blob file holding `values` (its BLOBFILE offset is 64). */
function fp16Blob(values: Float32Array): Uint8Array {
  return writeBlobFile([{ dtype: 'fp16', data: encodeFp16(values) }]).bytes;
}

function erfBySimpson(x: number): number {
  const steps = 2000;
  const h = x / steps;
  let sum = 1 + Math.exp(-x * x);
  for (let i = 1; i < steps; i++) sum += (i % 2 === 1 ? 4 : 2) * Math.exp(-((i * h) ** 2));
  return ((2 / Math.sqrt(Math.PI)) * sum * h) / 3;
}

const convWeight = randomFp16(6 * 2 * 3 * 3, 200, 0.5);
const linearWeight = randomFp16(3 * 8, 201, 0.5);
const linearBias = randomFp16(3, 202);
const int8Weight = Int8Array.from({ length: 4 * 4 }, (_, i) => ((i * 37) % 255) - 127);
const channelScales = Float32Array.of(0.125, 0.0625, 0.25, 0.5);

const OP_CASES: OpCase[] = [
  elementwiseCase('add', (a, b) => a + b),
  elementwiseCase('sub', (a, b) => a - b),
  elementwiseCase('mul', (a, b) => a * b),
  elementwiseCase('real_div', (a, b) => a / b),
  elementwiseCase('maximum', Math.max),
  elementwiseCase('minimum', Math.min),
  {
    name: 'pow with an fp16 scalar exponent (the RMSNorm rsqrt)',
    inputs: [x4],
    statements: [
      'fp16 nh = const()[name=string("nh"), val=fp16(-0.5)];',
      'tensor<fp16, [1, 4, 1, 8]> y = pow(x=x, y=nh)[name=string("op")];',
    ],
    outputs: [fp16Spec('y', [1, 4, 1, 8])],
    expected: ([x]) => [[...x!].map((v) => fp16Result(v ** -0.5))],
  },
  unaryCase('exp', Math.exp),
  unaryCase('log', (v) => Math.log(v + EPS), ', epsilon=eps'),
  unaryCase('sqrt', Math.sqrt),
  unaryCase('rsqrt', (v) => 1 / Math.sqrt(v + EPS), ', epsilon=eps'),
  unaryCase('inverse', (v) => 1 / (v + EPS), ', epsilon=eps'),
  unaryCase('tanh', Math.tanh),
  unaryCase('sigmoid', sigmoid),
  unaryCase('silu', (v) => v * sigmoid(v)),
  unaryCase('relu', (v) => Math.max(v, 0)),
  {
    name: 'gelu TANH_APPROXIMATION and SIGMOID_APPROXIMATION',
    inputs: [x4],
    statements: [
      'string mt = const()[name=string("mt"), val=string("TANH_APPROXIMATION")];',
      'string ms = const()[name=string("ms"), val=string("SIGMOID_APPROXIMATION")];',
      'tensor<fp16, [1, 4, 1, 8]> a = gelu(mode=mt, x=x)[name=string("ga")];',
      'tensor<fp16, [1, 4, 1, 8]> b = gelu(mode=ms, x=x)[name=string("gb")];',
    ],
    outputs: [fp16Spec('a', [1, 4, 1, 8]), fp16Spec('b', [1, 4, 1, 8])],
    expected: ([x]) => [
      [...x!].map((v) =>
        fp16Result(0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3)))),
      ),
      [...x!].map((v) => fp16Result(v * sigmoid(1.702 * v))),
    ],
  },
  {
    name: 'softmax over channels (axis 1)',
    inputs: [x4],
    statements: [
      'int32 ax = const()[name=string("ax"), val=int32(1)];',
      'tensor<fp16, [1, 4, 1, 8]> y = softmax(axis=ax, x=x)[name=string("op")];',
    ],
    outputs: [fp16Spec('y', [1, 4, 1, 8])],
    expected: ([x]) => {
      const out = new Array<number>(32);
      for (let s = 0; s < 8; s++) {
        const column = [0, 1, 2, 3].map((c) => Math.exp(x![c * 8 + s]!));
        const sum = column.reduce((a, b) => a + b, 0);
        column.forEach((e, c) => {
          out[c * 8 + s] = fp16Result(e / sum);
        });
      }
      return [out];
    },
  },
  {
    name: 'reduce_sum / reduce_mean / reduce_max over channels, keep_dims true and false',
    inputs: [x4],
    statements: [
      'tensor<int32, [1]> ax = const()[name=string("ax"), val=tensor<int32, [1]>([1])];',
      'bool kt = const()[name=string("kt"), val=bool(true)];',
      'bool kf = const()[name=string("kf"), val=bool(false)];',
      'tensor<fp16, [1, 1, 1, 8]> s = reduce_sum(x=x, axes=ax, keep_dims=kt)[name=string("rs")];',
      'tensor<fp16, [1, 1, 8]> m = reduce_mean(x=x, axes=ax, keep_dims=kf)[name=string("rm")];',
      'tensor<fp16, [1, 1, 1, 8]> mx = reduce_max(x=x, axes=ax, keep_dims=kt)[name=string("rx")];',
    ],
    outputs: [fp16Spec('s', [1, 1, 1, 8]), fp16Spec('m', [1, 1, 8]), fp16Spec('mx', [1, 1, 1, 8])],
    expected: ([x]) => {
      const column = (s: number) => [0, 1, 2, 3].map((c) => x![c * 8 + s]!);
      const sums = Array.from({ length: 8 }, (_, s) => column(s).reduce((a, b) => a + b, 0));
      return [
        sums.map(fp16Result),
        sums.map((sum) => fp16Result(sum / 4)),
        Array.from({ length: 8 }, (_, s) => Math.max(...column(s))),
      ];
    },
  },
  {
    name: 'reshape, transpose, identity',
    inputs: [x4],
    statements: [
      'tensor<int32, [4]> sh = const()[name=string("sh"), val=tensor<int32, [4]>([1, 2, 2, 8])];',
      'tensor<int32, [4]> pm = const()[name=string("pm"), val=tensor<int32, [4]>([0, 1, 3, 2])];',
      'tensor<fp16, [1, 2, 2, 8]> r = reshape(shape=sh, x=x)[name=string("r")];',
      'tensor<fp16, [1, 2, 8, 2]> t = transpose(perm=pm, x=r)[name=string("t")];',
      'tensor<fp16, [1, 2, 8, 2]> y = identity(x=t)[name=string("i")];',
    ],
    outputs: [fp16Spec('y', [1, 2, 8, 2])],
    expected: ([x]) => {
      const out: number[] = [];
      for (let h = 0; h < 2; h++)
        for (let s = 0; s < 8; s++) for (let d = 0; d < 2; d++) out.push(x![(h * 2 + d) * 8 + s]!);
      return [out];
    },
  },
  {
    name: 'slice_by_size, slice_by_index, concat (interleave false), split into two results',
    inputs: [x4],
    statements: [
      'tensor<int32, [4]> b = const()[name=string("b"), val=tensor<int32, [4]>([0, 1, 0, 2])];',
      'tensor<int32, [4]> z = const()[name=string("z"), val=tensor<int32, [4]>([1, 2, 1, -1])];',
      'tensor<fp16, [1, 2, 1, 6]> s = slice_by_size(x=x, begin=b, size=z)[name=string("s")];',
      'tensor<int32, [4]> e = const()[name=string("e"), val=tensor<int32, [4]>([1, 4, 1, 8])];',
      'tensor<int32, [4]> st = const()[name=string("st"), val=tensor<int32, [4]>([1, 2, 1, 3])];',
      'tensor<int32, [4]> b0 = const()[name=string("b0"), val=tensor<int32, [4]>([0, 0, 0, 0])];',
      'tensor<fp16, [1, 2, 1, 3]> k = slice_by_index(x=x, begin=b0, end=e, stride=st)[name=string("k")];',
      'int32 ax = const()[name=string("ax"), val=int32(3)];',
      'bool il = const()[name=string("il"), val=bool(false)];',
      'tensor<fp16, [1, 2, 1, 9]> c = concat(axis=ax, interleave=il, values=(s, k))[name=string("c")];',
      'tensor<int32, [2]> sz = const()[name=string("sz"), val=tensor<int32, [2]>([4, 5])];',
      'tensor<fp16, [1, 2, 1, 4]> p, tensor<fp16, [1, 2, 1, 5]> q = split(x=c, split_sizes=sz, axis=ax)[name=string("sp")];',
    ],
    outputs: [fp16Spec('p', [1, 2, 1, 4]), fp16Spec('q', [1, 2, 1, 5])],
    expected: ([x]) => {
      const rows = [1, 2].map((c) => [...x!.subarray(c * 8 + 2, c * 8 + 8)]);
      const strided = [0, 2].map((c) => [0, 3, 6].map((s) => x![c * 8 + s]!));
      const joined = [0, 1].map((r) => [...rows[r]!, ...strided[r]!]);
      return [joined.flatMap((row) => row.slice(0, 4)), joined.flatMap((row) => row.slice(4))];
    },
  },
  {
    name: 'cast to and from fp32 around an op',
    inputs: [x4],
    statements: [
      'string t32 = const()[name=string("t32"), val=string("fp32")];',
      'string t16 = const()[name=string("t16"), val=string("fp16")];',
      'tensor<fp32, [1, 4, 1, 8]> w = cast(dtype=t32, x=x)[name=string("c32")];',
      'tensor<fp16, [1, 4, 1, 8]> y = cast(dtype=t16, x=w)[name=string("c16")];',
    ],
    outputs: [fp16Spec('y', [1, 4, 1, 8])],
    expected: ([x]) => [[...x!]],
  },
  {
    name: 'matmul with transpose_y',
    inputs: [fp16Spec('a', [1, 2, 3, 5]), fp16Spec('b', [1, 2, 4, 5])],
    statements: [
      'bool bF = const()[name=string("bF"), val=bool(false)];',
      'bool bT = const()[name=string("bT"), val=bool(true)];',
      'tensor<fp16, [1, 2, 3, 4]> y = matmul(transpose_x=bF, transpose_y=bT, x=a, y=b)[name=string("mm")];',
    ],
    outputs: [fp16Spec('y', [1, 2, 3, 4])],
    expected: ([a, b]) => {
      const out: number[] = [];
      for (let h = 0; h < 2; h++)
        for (let i = 0; i < 3; i++)
          for (let j = 0; j < 4; j++) {
            let sum = 0;
            for (let k = 0; k < 5; k++) sum += a![(h * 3 + i) * 5 + k]! * b![(h * 4 + j) * 5 + k]!;
            out.push(fp16Result(sum));
          }
      return [out];
    },
  },
  {
    name: 'comparison feeding select',
    inputs: [x4, g4],
    statements: [
      'tensor<bool, [1, 4, 1, 8]> m = less(x=x, y=g)[name=string("lt")];',
      'tensor<fp16, [1, 4, 1, 8]> y = select(cond=m, a=x, b=g)[name=string("sel")];',
    ],
    outputs: [fp16Spec('y', [1, 4, 1, 8])],
    expected: ([x, g]) => [[...x!].map((v, i) => Math.min(v, g![Math.floor(i / 8)]!))],
  },
  {
    name: 'quantize then dequantize with a zero point',
    inputs: [x4],
    statements: [
      'fp16 qs = const()[name=string("qs"), val=fp16(0.0625)];',
      'int8 zp = const()[name=string("zp"), val=int8(3)];',
      'string qd = const()[name=string("qd"), val=string("int8")];',
      'tensor<int8, [1, 4, 1, 8]> q = quantize(input=x, output_dtype=qd, scale=qs, zero_point=zp)[name=string("q")];',
      'tensor<fp16, [1, 4, 1, 8]> y = dequantize(input=q, scale=qs, zero_point=zp)[name=string("dq")];',
    ],
    outputs: [fp16Spec('y', [1, 4, 1, 8])],
    expected: ([x]) => [
      [...x!].map((v) => {
        const scaled = v / 0.0625;
        const floor = Math.floor(scaled);
        const rounded = scaled - floor === 0.5 ? (floor % 2 === 0 ? floor : floor + 1) : Math.round(scaled);
        const q = Math.min(127, Math.max(-128, rounded + 3));
        return (q - 3) * 0.0625;
      }),
    ],
  },
  {
    name: 'gelu EXACT',
    inputs: [x4],
    statements: [
      'string m = const()[name=string("m"), val=string("EXACT")];',
      'tensor<fp16, [1, 4, 1, 8]> y = gelu(mode=m, x=x)[name=string("g")];',
    ],
    outputs: [fp16Spec('y', [1, 4, 1, 8])],
    expected: ([x]) => [[...x!].map((v) => fp16Result(0.5 * v * (1 + erfBySimpson(v / Math.SQRT2))))],
  },
  {
    name: 'conv 3x3, stride 1, pad_type same, groups 2, weight from a blob',
    inputs: [fp16Spec('x', [1, 4, 5, 5])],
    statements: [
      'string pt = const()[name=string("pt"), val=string("same")];',
      'tensor<int32, [2]> st = const()[name=string("st"), val=tensor<int32, [2]>([1, 1])];',
      'tensor<int32, [4]> pd = const()[name=string("pd"), val=tensor<int32, [4]>([0, 0, 0, 0])];',
      'tensor<int32, [2]> dl = const()[name=string("dl"), val=tensor<int32, [2]>([1, 1])];',
      'int32 gr = const()[name=string("gr"), val=int32(2)];',
      'tensor<fp16, [6, 2, 3, 3]> W = const()[name=string("W"), val=tensor<fp16, [6, 2, 3, 3]>(BLOBFILE(path=string("@model_path/weights/w.bin"), offset=uint64(64)))];',
      'tensor<fp16, [1, 6, 5, 5]> y = conv(dilations=dl, groups=gr, pad=pd, pad_type=pt, strides=st, weight=W, x=x)[name=string("cv")];',
    ],
    outputs: [fp16Spec('y', [1, 6, 5, 5])],
    weights: new Map([['@model_path/weights/w.bin', fp16Blob(convWeight)]]),
    expected: ([x]) => {
      const out: number[] = [];
      for (let o = 0; o < 6; o++)
        for (let h = 0; h < 5; h++)
          for (let w = 0; w < 5; w++) {
            let sum = 0;
            const group = Math.floor(o / 3);
            for (let c = 0; c < 2; c++)
              for (let kh = 0; kh < 3; kh++)
                for (let kw = 0; kw < 3; kw++) {
                  const ih = h + kh - 1;
                  const iw = w + kw - 1;
                  if (ih < 0 || ih > 4 || iw < 0 || iw > 4) continue;
                  sum +=
                    convWeight[((o * 2 + c) * 3 + kh) * 3 + kw]! * x![((group * 2 + c) * 5 + ih) * 5 + iw]!;
                }
            out.push(fp16Result(sum));
          }
      return [out];
    },
  },
  {
    name: 'linear with a constant weight and bias',
    inputs: [fp16Spec('x', [2, 8])],
    statements: [
      'tensor<fp16, [3, 8]> W = const()[name=string("W"), val=tensor<fp16, [3, 8]>(BLOBFILE(path=string("@model_path/weights/w.bin"), offset=uint64(64)))];',
      'tensor<fp16, [3]> B = const()[name=string("B"), val=tensor<fp16, [3]>(BLOBFILE(path=string("@model_path/weights/b.bin"), offset=uint64(64)))];',
      'tensor<fp16, [2, 3]> y = linear(x=x, weight=W, bias=B)[name=string("ln")];',
    ],
    outputs: [fp16Spec('y', [2, 3])],
    weights: new Map([
      ['@model_path/weights/w.bin', fp16Blob(linearWeight)],
      ['@model_path/weights/b.bin', fp16Blob(linearBias)],
    ]),
    expected: ([x]) => [
      [0, 1].flatMap((r) =>
        [0, 1, 2].map((o) => {
          let sum = linearBias[o]!;
          for (let i = 0; i < 8; i++) sum += x![r * 8 + i]! * linearWeight[o * 8 + i]!;
          return fp16Result(sum);
        }),
      ),
    ],
  },
  {
    name: 'layer_norm over channels with an explicit epsilon',
    inputs: [x4],
    statements: [
      'tensor<int32, [1]> ax = const()[name=string("ax"), val=tensor<int32, [1]>([1])];',
      'fp16 e = const()[name=string("e"), val=fp16(0.001)];',
      'tensor<fp16, [1, 4, 1, 8]> y = layer_norm(x=x, axes=ax, epsilon=e)[name=string("ln")];',
    ],
    outputs: [fp16Spec('y', [1, 4, 1, 8])],
    expected: ([x]) => {
      const out = new Array<number>(32);
      for (let s = 0; s < 8; s++) {
        const column = [0, 1, 2, 3].map((c) => x![c * 8 + s]!);
        const mean = column.reduce((a, b) => a + b, 0) / 4;
        const variance = column.reduce((a, v) => a + (v - mean) ** 2, 0) / 4;
        column.forEach((v, c) => {
          out[c * 8 + s] = fp16Result((v - mean) / Math.sqrt(variance + roundToFp16(0.001)));
        });
      }
      return [out];
    },
  },
  {
    name: 'constexpr_affine_dequantize with per-channel scales (axis 0) as a conv weight',
    inputs: [fp16Spec('x', [1, 4, 1, 8])],
    statements: [
      'string pt = const()[name=string("pt"), val=string("valid")];',
      'tensor<fp16, [4, 4, 1, 1]> W = constexpr_affine_dequantize()[axis=int32(0), name=string("W"), quantized_data=tensor<int8, [4, 4, 1, 1]>(BLOBFILE(path=string("@model_path/weights/q.bin"), offset=uint64(64))), scale=tensor<fp16, [4]>([0.125, 0.0625, 0.25, 0.5]), zero_point=tensor<int8, [4]>([0, 1, -1, 2])];',
      'tensor<int32, [2]> st = const()[name=string("st"), val=tensor<int32, [2]>([1, 1])];',
      'tensor<int32, [4]> pd = const()[name=string("pd"), val=tensor<int32, [4]>([0, 0, 0, 0])];',
      'int32 gr = const()[name=string("gr"), val=int32(1)];',
      'tensor<fp16, [1, 4, 1, 8]> y = conv(dilations=st, groups=gr, pad=pd, pad_type=pt, strides=st, weight=W, x=x)[name=string("cv")];',
    ],
    outputs: [fp16Spec('y', [1, 4, 1, 8])],
    weights: new Map([
      ['@model_path/weights/q.bin', writeBlobFile([{ dtype: 'int8', data: int8Weight }]).bytes],
    ]),
    expected: ([x]) => {
      const zeroPoints = [0, 1, -1, 2];
      const out: number[] = [];
      for (let o = 0; o < 4; o++)
        for (let s = 0; s < 8; s++) {
          let sum = 0;
          for (let i = 0; i < 4; i++) {
            const w = roundToFp16((int8Weight[o * 4 + i]! - zeroPoints[o]!) * channelScales[o]!);
            sum += w * x![i * 8 + s]!;
          }
          out.push(fp16Result(sum));
        }
      return [out];
    },
  },
];

describe('every op through MIL text', () => {
  for (const testCase of OP_CASES) {
    it(testCase.name, () => {
      const values = testCase.inputs.map((spec, i) => {
        const raw = randomFp16(product(spec.shape), 100 + i, 2);
        return testCase.positive ? raw.map((v) => roundToFp16(Math.abs(v) + 0.5)) : raw;
      });
      const program = milProgram(testCase.inputs, testCase.statements, testCase.outputs, testCase.weights);
      const got = runFp16(program, values);
      const expected = testCase.expected(values);
      got.forEach((output, j) => {
        expect([...output], testCase.outputs[j]!.name).toEqual(expected[j]);
      });
    });
  }
});

describe('compile errors', () => {
  const x = fp16Spec('x', [1, 4, 1, 32]);
  const y = fp16Spec('y', [1, 4, 1, 32]);

  it('a parse error carries the line and column and the parser error as cause', () => {
    const program = milProgram([x], ['tensor<fp16, [1, 4, 1, 32]> y = relu(x=x)[name=string("r")]'], [y]);
    const error = compileError(program);
    expect(error.details.line).toBeGreaterThan(4);
    expect(error.details.column).toBeGreaterThan(0);
    expect((error.details.cause as Error).name).toBe('MilSyntaxError');
  });

  it('a validation error (declared type differs from the inferred one) carries its position', () => {
    const program = milProgram(
      [x],
      ['tensor<fp16, [1, 4, 1, 16]> y = relu(x=x)[name=string("r")];'],
      [fp16Spec('y', [1, 4, 1, 16])],
    );
    const error = compileError(program);
    expect(error.details.line).toBe(5);
    expect((error.details.cause as Error).name).toBe('MilValidationError');
    expect(error.message).toMatch(/relu/);
  });

  it('a conv whose weight is a function input is refused with rule op-runtime-weight-conv', () => {
    const program = milProgram(
      [x, fp16Spec('w', [4, 4, 1, 1])],
      [
        'string pt = const()[name=string("pt"), val=string("valid")];',
        'tensor<int32, [2]> st = const()[name=string("st"), val=tensor<int32, [2]>([1, 1])];',
        'tensor<int32, [4]> pd = const()[name=string("pd"), val=tensor<int32, [4]>([0, 0, 0, 0])];',
        'int32 gr = const()[name=string("gr"), val=int32(1)];',
        'tensor<fp16, [1, 4, 1, 32]> y = conv(dilations=st, groups=gr, pad=pd, pad_type=pt, strides=st, weight=w, x=x)[name=string("cv")];',
      ],
      [y],
    );
    const error = compileError(program);
    expect(error.details.ruleId).toBe('op-runtime-weight-conv');
    expect(error.details.line).toBe(9);
    expect(error.message).toMatch(/weight/);
  });

  it.each([
    [
      'band_part',
      'op-unsupported',
      [
        'int32 lo = const()[name=string("lo"), val=int32(-1)];',
        'tensor<fp16, [1, 4, 1, 32]> y = band_part(x=x, lower=lo, upper=lo)[name=string("bp")];',
      ],
    ],
    ['gelu without mode', 'emit-gelu', ['tensor<fp16, [1, 4, 1, 32]> y = gelu(x=x)[name=string("g")];']],
    [
      'concat with interleave true',
      'emit-concat',
      [
        'int32 ax = const()[name=string("ax"), val=int32(1)];',
        'bool il = const()[name=string("il"), val=bool(true)];',
        'tensor<fp16, [1, 8, 1, 32]> c = concat(axis=ax, interleave=il, values=(x, x))[name=string("c")];',
        'tensor<int32, [4]> b = const()[name=string("b"), val=tensor<int32, [4]>([0, 0, 0, 0])];',
        'tensor<int32, [4]> s = const()[name=string("s"), val=tensor<int32, [4]>([1, 4, 1, 32])];',
        'tensor<fp16, [1, 4, 1, 32]> y = slice_by_size(x=c, begin=b, size=s)[name=string("sl")];',
      ],
    ],
  ])('%s is refused with rule %s', (_, ruleId, statements) => {
    expect(compileError(milProgram([x], statements, [y])).details.ruleId).toBe(ruleId);
  });

  it('fp32 I/O is refused on M1 and M2 (rule dtype-fp32-io-in-memory) and compiles on M3+', () => {
    const x32: TensorSpec = { name: 'x', dtype: 'fp32', shape: [1, 4, 1, 32] };
    const program = milProgram(
      [x32],
      [
        'string t = const()[name=string("t"), val=string("fp16")];',
        'tensor<fp16, [1, 4, 1, 32]> y = cast(dtype=t, x=x)[name=string("c")];',
      ],
      [y],
    );
    for (const chip of ['M1', 'M2'] as const) {
      expect(() => compileSimProgram(program, { chip })).toThrow(
        expect.objectContaining({ details: expect.objectContaining({ ruleId: 'dtype-fp32-io-in-memory' }) }),
      );
    }
    expect(() => compileSimProgram(program, { chip: 'M3' })).not.toThrow();
  });

  it.each([
    ['a missing output', { inputs: [x], outputs: [] as TensorSpec[] }],
    ['a wrong input name', { inputs: [fp16Spec('z', [1, 4, 1, 32])], outputs: [y] }],
    [
      'a wrong input dtype',
      { inputs: [{ name: 'x', dtype: 'fp32', shape: [1, 4, 1, 32] } as TensorSpec], outputs: [y] },
    ],
    ['a wrong output shape', { inputs: [x], outputs: [fp16Spec('y', [1, 4, 32])] }],
  ])('program I/O specs that do not match func main are refused: %s', (_, specs) => {
    const program = milProgram([x], ['tensor<fp16, [1, 4, 1, 32]> y = relu(x=x)[name=string("r")];'], [y]);
    const error = compileError({ ...program, ...specs });
    expect(error.message).toMatch(/do not match func main/);
  });
});

describe('running', () => {
  const a = fp16Spec('b_second', [1, 2, 1, 32]);
  const b = fp16Spec('a_first', [1, 2, 1, 32]);
  // Parameters and results deliberately not in alphabetical order: binding is by declaration order.
  const program = milProgram(
    [a, b],
    [
      'tensor<fp16, [1, 2, 1, 32]> z_diff = sub(x=b_second, y=a_first)[name=string("d")];',
      'tensor<fp16, [1, 2, 1, 32]> m_sum = add(x=b_second, y=b_second)[name=string("s")];',
    ],
    [fp16Spec('z_diff', [1, 2, 1, 32]), fp16Spec('m_sum', [1, 2, 1, 32])],
  );

  it('binds inputs in parameter declaration order and outputs in return order', () => {
    const first = randomFp16(64, 300);
    const second = randomFp16(64, 301);
    const [diff, sum] = runFp16(program, [first, second]);
    expect([...diff!]).toEqual([...first].map((v, i) => fp16Result(v - second[i]!)));
    expect([...sum!]).toEqual([...first].map((v) => fp16Result(v + v)));
  });

  it('runs repeatedly on new inputs without stale state', () => {
    const executable = compileSimProgram(program);
    const outputs = [new Uint8Array(128), new Uint8Array(128)];
    for (const seed of [1, 2, 3]) {
      const first = randomFp16(64, seed);
      const second = randomFp16(64, seed + 10);
      executable.run([encodeFp16Buffer(first), encodeFp16Buffer(second)], outputs);
      expect([...decodeFp16Buffer(outputs[0]!)]).toEqual(
        [...first].map((v, i) => fp16Result(v - second[i]!)),
      );
    }
  });

  it('accepts unaligned buffers', () => {
    const first = randomFp16(64, 5);
    const backing = new Uint8Array(129);
    backing.set(encodeFp16Buffer(first), 1);
    const unaligned = backing.subarray(1);
    const outBacking = new Uint8Array(257);
    const outputs = [outBacking.subarray(1, 129), outBacking.subarray(129)];
    compileSimProgram(program).run([unaligned, unaligned], outputs);
    expect([...decodeFp16Buffer(outputs[1]!.slice())]).toEqual([...first].map((v) => fp16Result(2 * v)));
  });

  it('refuses the wrong number of buffers or buffers that are too short', () => {
    const executable = compileSimProgram(program);
    const ok = new Uint8Array(128);
    expect(() => executable.run([ok], [ok, ok])).toThrow(KernelInputError);
    expect(() => executable.run([ok, new Uint8Array(127)], [ok, ok])).toThrow(KernelInputError);
    expect(() => executable.run([ok, ok], [ok, new Uint8Array(64)])).toThrow(/needs 128 bytes/);
  });

  it('folds ops on constants at compile time and gets the same values', () => {
    const x = fp16Spec('x', [1, 2, 1, 32]);
    const folded = milProgram(
      [x],
      [
        'fp16 c1 = const()[name=string("c1"), val=fp16(0.1)];',
        'fp16 c2 = const()[name=string("c2"), val=fp16(3)];',
        'fp16 c3 = mul(x=c1, y=c2)[name=string("m")];',
        'tensor<fp16, [1, 2, 1, 32]> y = add(x=x, y=c3)[name=string("a")];',
      ],
      [fp16Spec('y', [1, 2, 1, 32])],
    );
    const values = randomFp16(64, 9);
    const c3 = fp16Result(roundToFp16(0.1) * 3);
    expect([...runFp16(folded, [values])[0]!]).toEqual([...values].map((v) => fp16Result(v + c3)));
  });

  it('skips statements no returned value depends on', () => {
    // The dead slice has a runtime begin, which the simulator could not plan; it is never planned.
    const x = fp16Spec('x', [1, 2, 1, 32]);
    const begin: TensorSpec = { name: 'begin', dtype: 'fp16', shape: [4] };
    const program2 = milProgram(
      [x, begin],
      [
        'string t = const()[name=string("t"), val=string("int32")];',
        'tensor<int32, [4]> bi = cast(dtype=t, x=begin)[name=string("c")];',
        'tensor<int32, [4]> s = const()[name=string("s"), val=tensor<int32, [4]>([1, 1, 1, 8])];',
        'tensor<fp16, [1, 1, 1, 8]> dead = slice_by_size(x=x, begin=bi, size=s)[name=string("dead")];',
        'tensor<fp16, [1, 2, 1, 32]> y = relu(x=x)[name=string("r")];',
      ],
      [fp16Spec('y', [1, 2, 1, 32])],
    );
    const values = randomFp16(64, 10);
    expect([...runFp16(program2, [values, [0, 0, 0, 0]])[0]!]).toEqual(
      [...values].map((v) => Math.max(v, 0)),
    );
  });
});
