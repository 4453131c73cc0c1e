import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CONFORMANCE_DIR } from '../../../../tools/testing/corpus';
import type { MilProgram } from './ast';
import { writeBlobFile } from './blob';
import { parseProgram } from './parse';
import { checkProgramRules, RULE_CHECKS, type RuleViolation } from './rule-checks';
import { type ChipFamily, MIL_CHECKED_RULE_IDS } from './rules';

const BUILD_INFO =
  '[buildInfo = dict<string, string>({{"coremlc-component-MIL", "3510.2.1"}, {"coremlc-version", "3505.4.1"}, {"coremltools-component-milinternal", ""}, {"coremltools-version", "9.0"}})]';

interface ProgramShape {
  params?: string;
  returns?: string;
  opset?: string;
  version?: string;
}

/** A `program(1.3)` around `body`; by default `main<ios18>(tensor<fp16, [1, 4, 1, 32]> x) -> (y)`. */
function mil(body: string, shape: ProgramShape = {}): string {
  const { params = 'tensor<fp16, [1, 4, 1, 32]> x', returns = 'y', opset = 'ios18', version = '1.3' } = shape;
  return `program(${version})\n${BUILD_INFO}\n{\n    func main<${opset}>(${params}) {\n${body
    .trim()
    .split('\n')
    .map((line) => `        ${line.trim()}`)
    .join('\n')}\n    } -> (${returns});\n}\n`;
}

const RELU = 'tensor<fp16, [1, 4, 1, 32]> y = relu(x=x)[name=string("r")];';

const CONV_CONSTS = `
string pt = const()[name=string("pt"), val=string("valid")];
tensor<int32, [2]> st = const()[name=string("st"), val=tensor<int32, [2]>([1,1])];
tensor<int32, [4]> pd = const()[name=string("pd"), val=tensor<int32, [4]>([0,0,0,0])];
tensor<int32, [2]> dl = const()[name=string("dl"), val=tensor<int32, [2]>([1,1])];
int32 gr = const()[name=string("gr"), val=int32(1)];`;

const CONV_ARGS = 'dilations=dl, groups=gr, pad=pd, pad_type=pt, strides=st';

function blobConst(name: string, type: string, path = '@model_path/weights/w.bin', offset = 64): string {
  return `${type} ${name} = const()[name=string("${name}"), val=${type}(BLOBFILE(path=string("${path}"), offset=uint64(${offset})))];`;
}

const W_CONST = blobConst('W', 'tensor<fp16, [8, 4, 1, 1]>');

function fp16Weights(...elementCounts: number[]): Map<string, Uint8Array> {
  const { bytes } = writeBlobFile(elementCounts.map((n) => ({ dtype: 'fp16', data: new Uint16Array(n) })));
  return new Map([['@model_path/weights/w.bin', bytes]]);
}

interface RuleCase {
  rule: string;
  chip?: ChipFamily;
  /** Breaks the rule. */
  bad: string;
  /** The same idea done right. */
  good: string;
  weights?: Map<string, Uint8Array>;
  /** Weights for the fixed program when they differ. */
  goodWeights?: Map<string, Uint8Array>;
}

const CASES: RuleCase[] = [
  {
    rule: 'emit-program-skeleton',
    bad: mil(RELU, { opset: 'ios17' }),
    good: mil(RELU),
  },
  {
    rule: 'emit-explicit-params',
    bad: mil(`
      tensor<int32, [1]> ax = const()[name=string("ax"), val=tensor<int32, [1]>([1])];
      tensor<fp16, [1, 1, 1, 32]> y = reduce_sum(x=x, axes=ax)[name=string("rs")];`),
    good: mil(`
      tensor<int32, [1]> ax = const()[name=string("ax"), val=tensor<int32, [1]>([1])];
      bool kd = const()[name=string("kd"), val=bool(true)];
      tensor<fp16, [1, 1, 1, 32]> y = reduce_sum(x=x, axes=ax, keep_dims=kd)[name=string("rs")];`),
  },
  {
    rule: 'emit-gelu',
    bad: mil('tensor<fp16, [1, 4, 1, 32]> y = gelu(x=x)[name=string("g")];'),
    good: mil(`
      string md = const()[name=string("md"), val=string("EXACT")];
      tensor<fp16, [1, 4, 1, 32]> y = gelu(x=x, mode=md)[name=string("g")];`),
  },
  {
    rule: 'emit-concat',
    bad: mil(`
      int32 ax = const()[name=string("ax"), val=int32(1)];
      tensor<fp16, [1, 8, 1, 32]> y = concat(axis=ax, values=(x, x))[name=string("c")];`),
    good: mil(`
      int32 ax = const()[name=string("ax"), val=int32(1)];
      bool il = const()[name=string("il"), val=bool(false)];
      tensor<fp16, [1, 8, 1, 32]> y = concat(axis=ax, interleave=il, values=(x, x))[name=string("c")];`),
  },
  {
    rule: 'emit-bool-const-args',
    chip: 'M4',
    bad: mil(`
      int32 ax = const()[name=string("ax"), val=int32(1)];
      tensor<fp16, [1, 8, 1, 32]> y = concat(axis=ax, interleave=bool(false), values=(x, x))[name=string("c")];`),
    good: mil(`
      int32 ax = const()[name=string("ax"), val=int32(1)];
      bool il = const()[name=string("il"), val=bool(false)];
      tensor<fp16, [1, 8, 1, 32]> y = concat(axis=ax, interleave=il, values=(x, x))[name=string("c")];`),
  },
  {
    rule: 'emit-conv-bias',
    bad: mil(`${CONV_CONSTS}
      ${W_CONST}
      tensor<fp16, [8]> b = const()[name=string("b"), val=tensor<fp16, [8]>([0,0,0,0,0,0,0,0])];
      tensor<fp16, [1, 8, 1, 32]> y = conv(${CONV_ARGS}, weight=W, bias=b, x=x)[name=string("cv")];`),
    good: mil(`${CONV_CONSTS}
      ${W_CONST}
      tensor<fp16, [1, 8, 1, 32]> y = conv(${CONV_ARGS}, weight=W, x=x)[name=string("cv")];`),
  },
  {
    rule: 'emit-live-outputs',
    bad: mil(RELU, { returns: 'x' }),
    good: mil(RELU),
  },
  {
    rule: 'emit-identifiers',
    bad: mil(`
      tensor<fp16, [1, 4, 1, 32]> y = relu(x=x)[name=string("r1")];
      tensor<fp16, [1, 4, 1, 32]> y = sigmoid(x=x)[name=string("r2")];`),
    good: mil(`
      tensor<fp16, [1, 4, 1, 32]> h = relu(x=x)[name=string("r1")];
      tensor<fp16, [1, 4, 1, 32]> y = sigmoid(x=h)[name=string("r2")];`),
  },
  {
    rule: 'emit-binary-dtype',
    bad: mil(`
      fp32 c = const()[name=string("c"), val=fp32(1)];
      tensor<fp16, [1, 4, 1, 32]> y = add(x=x, y=c)[name=string("a")];`),
    good: mil(`
      fp16 c = const()[name=string("c"), val=fp16(1)];
      tensor<fp16, [1, 4, 1, 32]> y = add(x=x, y=c)[name=string("a")];`),
  },
  {
    rule: 'emit-constexpr-params',
    bad: mil(`${CONV_CONSTS}
      tensor<fp16, [8, 4, 1, 1]> W = constexpr_affine_dequantize(axis=int32(0), quantized_data=tensor<int8, [8, 4, 1, 1]>(BLOBFILE(path=string("@model_path/weights/w.bin"), offset=uint64(64))), scale=fp16(0.125), zero_point=int8(0))[name=string("W")];
      tensor<fp16, [1, 8, 1, 32]> y = conv(${CONV_ARGS}, weight=W, x=x)[name=string("cv")];`),
    good: mil(`${CONV_CONSTS}
      tensor<fp16, [8, 4, 1, 1]> W = constexpr_affine_dequantize()[axis=int32(0), name=string("W"), quantized_data=tensor<int8, [8, 4, 1, 1]>(BLOBFILE(path=string("@model_path/weights/w.bin"), offset=uint64(64))), scale=fp16(0.125), zero_point=int8(0)];
      tensor<fp16, [1, 8, 1, 32]> y = conv(${CONV_ARGS}, weight=W, x=x)[name=string("cv")];`),
  },
  {
    rule: 'emit-linear-const-weight',
    bad: mil('tensor<fp16, [32, 8]> y = linear(x=x, weight=w)[name=string("l")];', {
      params: 'tensor<fp16, [32, 4]> x, tensor<fp16, [8, 4]> w',
    }),
    good: mil(
      `${blobConst('w', 'tensor<fp16, [8, 4]>')}
      tensor<fp16, [32, 8]> y = linear(x=x, weight=w)[name=string("l")];`,
      { params: 'tensor<fp16, [32, 4]> x' },
    ),
  },
  {
    rule: 'emit-pow-const-base2',
    bad: mil(`
      fp16 two = const()[name=string("two"), val=fp16(2)];
      tensor<fp16, [1, 4, 1, 32]> y = pow(x=two, y=x)[name=string("p")];`),
    good: mil(`
      fp16 two = const()[name=string("two"), val=fp16(2)];
      tensor<fp16, [1, 4, 1, 32]> y = pow(x=x, y=two)[name=string("p")];`),
  },
  {
    rule: 'emit-square-opcode',
    bad: mil(
      `tensor<fp16, [1, 4, 1, 100]> s = square(x=x)[name=string("sq")];
      tensor<fp16, [1, 4, 1, 100]> y = sigmoid(x=s)[name=string("sg")];`,
      { params: 'tensor<fp16, [1, 4, 1, 100]> x' },
    ),
    good: mil(`
      tensor<fp16, [1, 4, 1, 32]> s = square(x=x)[name=string("sq")];
      tensor<fp16, [1, 4, 1, 32]> y = sigmoid(x=s)[name=string("sg")];`),
  },
  {
    rule: 'emit-mul-reduce-zero',
    bad: mil(
      `tensor<int32, [1]> ax = const()[name=string("ax"), val=tensor<int32, [1]>([1])];
      bool kd = const()[name=string("kd"), val=bool(true)];
      tensor<fp16, [1, 1, 1, 32]> s = reduce_sum(x=x, axes=ax, keep_dims=kd)[name=string("rs")];
      fp16 tiny = const()[name=string("tiny"), val=fp16(1e-30)];
      tensor<fp16, [1, 1, 1, 32]> y = mul(x=s, y=tiny)[name=string("m")];`,
    ),
    good: mil(
      `tensor<int32, [1]> ax = const()[name=string("ax"), val=tensor<int32, [1]>([1])];
      bool kd = const()[name=string("kd"), val=bool(true)];
      tensor<fp16, [1, 1, 1, 32]> s = reduce_sum(x=x, axes=ax, keep_dims=kd)[name=string("rs")];
      fp16 half = const()[name=string("half"), val=fp16(0.5)];
      tensor<fp16, [1, 1, 1, 32]> y = mul(x=s, y=half)[name=string("m")];`,
    ),
  },
  {
    rule: 'emit-constexpr-routing',
    bad: mil(
      `tensor<fp16, [8, 4, 1, 1]> W = constexpr_affine_dequantize()[axis=int32(0), name=string("W"), quantized_data=tensor<int8, [8, 4, 1, 1]>(BLOBFILE(path=string("@model_path/weights/w.bin"), offset=uint64(64))), scale=fp16(0.125), zero_point=int8(0)];
      tensor<int32, [2]> sh = const()[name=string("sh"), val=tensor<int32, [2]>([8, 4])];
      tensor<fp16, [8, 4]> y = reshape(x=W, shape=sh)[name=string("rw")];`,
    ),
    good: mil(`${CONV_CONSTS}
      tensor<fp16, [8, 4, 1, 1]> W = constexpr_affine_dequantize()[axis=int32(0), name=string("W"), quantized_data=tensor<int8, [8, 4, 1, 1]>(BLOBFILE(path=string("@model_path/weights/w.bin"), offset=uint64(64))), scale=fp16(0.125), zero_point=int8(0)];
      tensor<fp16, [1, 8, 1, 32]> y = conv(${CONV_ARGS}, weight=W, x=x)[name=string("cv")];`),
  },
  {
    rule: 'dim-rank',
    bad: mil('tensor<fp16, [1, 1, 1, 1, 2, 32]> y = relu(x=x)[name=string("r")];', {
      params: 'tensor<fp16, [1, 1, 1, 1, 2, 32]> x',
    }),
    good: mil('tensor<fp16, [1, 1, 1, 2, 32]> y = relu(x=x)[name=string("r")];', {
      params: 'tensor<fp16, [1, 1, 1, 2, 32]> x',
    }),
  },
  {
    rule: 'dim-transpose-matmul-rank',
    bad: mil(
      `tensor<int32, [5]> pm = const()[name=string("pm"), val=tensor<int32, [5]>([0, 1, 2, 4, 3])];
      tensor<fp16, [1, 1, 2, 32, 32]> t = transpose(x=x, perm=pm)[name=string("t")];
      bool bF = const()[name=string("bF"), val=bool(false)];
      tensor<fp16, [1, 1, 2, 32, 32]> y = matmul(x=t, y=x, transpose_x=bF, transpose_y=bF)[name=string("mm")];`,
      { params: 'tensor<fp16, [1, 1, 2, 32, 32]> x' },
    ),
    good: mil(
      `tensor<int32, [4]> pm = const()[name=string("pm"), val=tensor<int32, [4]>([0, 1, 3, 2])];
      tensor<fp16, [1, 2, 32, 32]> t = transpose(x=x, perm=pm)[name=string("t")];
      bool bF = const()[name=string("bF"), val=bool(false)];
      tensor<fp16, [1, 2, 32, 32]> y = matmul(x=t, y=x, transpose_x=bF, transpose_y=bF)[name=string("mm")];`,
      { params: 'tensor<fp16, [1, 2, 32, 32]> x' },
    ),
  },
  {
    rule: 'dim-axis-range',
    bad: mil('tensor<fp16, [1, 4, 0, 32]> y = relu(x=x)[name=string("r")];', {
      params: 'tensor<fp16, [1, 4, 0, 32]> x',
    }),
    good: mil(RELU),
  },
  {
    rule: 'dim-spatial',
    chip: 'M1',
    bad: mil('tensor<fp16, [1, 4, 1, 16385]> y = relu(x=x)[name=string("r")];', {
      params: 'tensor<fp16, [1, 4, 1, 16385]> x',
    }),
    good: mil('tensor<fp16, [1, 4, 1, 16384]> y = relu(x=x)[name=string("r")];', {
      params: 'tensor<fp16, [1, 4, 1, 16384]> x',
    }),
  },
  {
    rule: 'dim-channel',
    bad: mil('tensor<fp16, [1, 65537, 1, 1]> y = relu(x=x)[name=string("r")];', {
      params: 'tensor<fp16, [1, 65537, 1, 1]> x',
    }),
    good: mil('tensor<fp16, [1, 65536, 1, 1]> y = relu(x=x)[name=string("r")];', {
      params: 'tensor<fp16, [1, 65536, 1, 1]> x',
    }),
  },
  {
    rule: 'dim-transpose-extent',
    chip: 'M1',
    bad: mil(
      `tensor<int32, [4]> pm = const()[name=string("pm"), val=tensor<int32, [4]>([1, 0, 2, 3])];
      tensor<fp16, [20000, 1, 1, 1]> y = transpose(x=x, perm=pm)[name=string("t")];`,
      { params: 'tensor<fp16, [1, 20000, 1, 1]> x' },
    ),
    good: mil(
      `tensor<int32, [4]> pm = const()[name=string("pm"), val=tensor<int32, [4]>([1, 0, 2, 3])];
      tensor<fp16, [16384, 1, 1, 1]> y = transpose(x=x, perm=pm)[name=string("t")];`,
      { params: 'tensor<fp16, [1, 16384, 1, 1]> x' },
    ),
  },
  {
    rule: 'dim-conv-kernel-width',
    chip: 'M1',
    bad: mil(`${CONV_CONSTS}
      ${blobConst('W', 'tensor<fp16, [8, 4, 1, 14]>')}
      tensor<fp16, [1, 8, 1, 19]> y = conv(${CONV_ARGS}, weight=W, x=x)[name=string("cv")];`),
    good: mil(`${CONV_CONSTS}
      ${blobConst('W', 'tensor<fp16, [8, 4, 1, 13]>')}
      tensor<fp16, [1, 8, 1, 20]> y = conv(${CONV_ARGS}, weight=W, x=x)[name=string("cv")];`),
  },
  {
    rule: 'dim-pool-window',
    chip: 'M1',
    bad: mil(`
      tensor<int32, [2]> ks = const()[name=string("ks"), val=tensor<int32, [2]>([1, 30])];
      tensor<fp16, [1, 4, 1, 3]> y = max_pool(x=x, kernel_sizes=ks)[name=string("mp")];`),
    good: mil(`
      tensor<int32, [2]> ks = const()[name=string("ks"), val=tensor<int32, [2]>([1, 13])];
      tensor<fp16, [1, 4, 1, 20]> y = max_pool(x=x, kernel_sizes=ks)[name=string("mp")];`),
  },
  {
    rule: 'dim-conv-32000-cin',
    bad: mil(
      `${CONV_CONSTS}
      ${blobConst('W', 'tensor<fp16, [8, 32000, 1, 1]>')}
      tensor<fp16, [1, 8, 1, 32]> y = conv(${CONV_ARGS}, weight=W, x=x)[name=string("cv")];`,
      { params: 'tensor<fp16, [1, 32000, 1, 32]> x' },
    ),
    good: mil(
      `${CONV_CONSTS}
      ${blobConst('W', 'tensor<fp16, [32000, 8, 1, 1]>')}
      tensor<fp16, [1, 32000, 1, 32]> y = conv(${CONV_ARGS}, weight=W, x=x)[name=string("cv")];`,
      { params: 'tensor<fp16, [1, 8, 1, 32]> x' },
    ),
  },
  {
    rule: 'dtype-compute',
    bad: mil(`
      string to32 = const()[name=string("to32"), val=string("fp32")];
      tensor<fp32, [1, 4, 1, 32]> h = cast(x=x, dtype=to32)[name=string("c")];
      tensor<fp32, [1, 4, 1, 32]> y = relu(x=h)[name=string("r")];`),
    good: mil(`
      tensor<fp16, [1, 4, 1, 32]> h = relu(x=x)[name=string("r")];
      string to32 = const()[name=string("to32"), val=string("fp32")];
      tensor<fp32, [1, 4, 1, 32]> y = cast(x=h, dtype=to32)[name=string("c")];`),
  },
  {
    rule: 'dtype-io',
    bad: mil(
      `string to16 = const()[name=string("to16"), val=string("fp16")];
      tensor<fp16, [1, 4, 1, 32]> y = cast(x=x, dtype=to16)[name=string("c")];`,
      { params: 'tensor<int32, [1, 4, 1, 32]> x' },
    ),
    good: mil(
      `string to16 = const()[name=string("to16"), val=string("fp16")];
      tensor<fp16, [1, 4, 1, 32]> y = cast(x=x, dtype=to16)[name=string("c")];`,
      { params: 'tensor<uint8, [1, 4, 1, 64]> x' },
    ),
  },
  {
    rule: 'dtype-fp32-io-in-memory',
    chip: 'M2',
    bad: mil(
      `string to16 = const()[name=string("to16"), val=string("fp16")];
      tensor<fp16, [1, 4, 1, 32]> y = cast(x=x, dtype=to16)[name=string("c")];`,
      { params: 'tensor<fp32, [1, 4, 1, 32]> x' },
    ),
    good: mil(RELU),
  },
  {
    rule: 'dtype-cast-int32',
    chip: 'M1',
    bad: mil(`
      string ti = const()[name=string("ti"), val=string("int32")];
      tensor<int32, [1, 4, 1, 32]> h = cast(x=x, dtype=ti)[name=string("c")];
      string to16 = const()[name=string("to16"), val=string("fp16")];
      tensor<fp16, [1, 4, 1, 32]> y = cast(x=h, dtype=to16)[name=string("c2")];`),
    good: mil(`
      string ti = const()[name=string("ti"), val=string("int8")];
      tensor<int8, [1, 4, 1, 32]> h = cast(x=x, dtype=ti)[name=string("c")];
      string to16 = const()[name=string("to16"), val=string("fp16")];
      tensor<fp16, [1, 4, 1, 32]> y = cast(x=h, dtype=to16)[name=string("c2")];`),
  },
  {
    rule: 'dtype-bool',
    bad: mil(`tensor<fp16, [1, 4, 1, 32]> y = select(cond=m, a=x, b=x)[name=string("s")];`, {
      params: 'tensor<fp16, [1, 4, 1, 32]> x, tensor<bool, [1, 4, 1, 32]> m',
    }),
    good: mil(
      `fp16 zero = const()[name=string("zero"), val=fp16(0)];
      tensor<bool, [1, 4, 1, 32]> c = greater(x=m, y=zero)[name=string("g")];
      tensor<fp16, [1, 4, 1, 32]> y = select(cond=c, a=x, b=x)[name=string("s")];`,
      { params: 'tensor<fp16, [1, 4, 1, 32]> m, tensor<fp16, [1, 4, 1, 32]> x' },
    ),
  },
  {
    rule: 'op-family-floors',
    chip: 'M1',
    bad: mil('tensor<fp16, [1, 4, 1, 32]> y = sin(x=x)[name=string("s")];'),
    good: mil(RELU),
  },
  {
    rule: 'op-unsupported',
    bad: mil('tensor<fp16, [1, 4, 1, 32]> y = tan(x=x)[name=string("t")];'),
    good: mil('tensor<fp16, [1, 4, 1, 32]> y = tanh(x=x)[name=string("t")];'),
  },
  {
    rule: 'op-gather',
    bad: mil(`
      tensor<int32, [2]> idx = const()[name=string("idx"), val=tensor<int32, [2]>([0, 3])];
      int32 ax = const()[name=string("ax"), val=int32(3)];
      tensor<fp16, [1, 4, 1, 2]> y = gather(x=x, indices=idx, axis=ax)[name=string("g")];`),
    good: mil(`
      tensor<int32, [4]> b = const()[name=string("b"), val=tensor<int32, [4]>([0, 0, 0, 0])];
      tensor<int32, [4]> sz = const()[name=string("sz"), val=tensor<int32, [4]>([1, 4, 1, 2])];
      tensor<fp16, [1, 4, 1, 2]> y = slice_by_size(x=x, begin=b, size=sz)[name=string("s")];`),
  },
  {
    rule: 'op-cumsum',
    bad: mil(`
      int32 ax = const()[name=string("ax"), val=int32(3)];
      bool bF = const()[name=string("bF"), val=bool(false)];
      tensor<fp16, [1, 4, 1, 32]> y = cumsum(x=x, axis=ax, exclusive=bF, reverse=bF)[name=string("cs")];`),
    good: mil(RELU),
  },
  {
    rule: 'op-reduce-prod',
    bad: mil(`
      tensor<int32, [1]> ax = const()[name=string("ax"), val=tensor<int32, [1]>([3])];
      bool kd = const()[name=string("kd"), val=bool(true)];
      tensor<fp16, [1, 4, 1, 1]> y = reduce_prod(x=x, axes=ax, keep_dims=kd)[name=string("rp")];`),
    good: mil(`
      tensor<int32, [1]> ax = const()[name=string("ax"), val=tensor<int32, [1]>([3])];
      bool kd = const()[name=string("kd"), val=bool(true)];
      tensor<fp16, [1, 4, 1, 1]> y = reduce_sum(x=x, axes=ax, keep_dims=kd)[name=string("rs")];`),
  },
  {
    rule: 'op-runtime-weight-conv',
    bad: mil(
      `${CONV_CONSTS}
      tensor<fp16, [1, 8, 1, 32]> y = conv(${CONV_ARGS}, weight=w, x=x)[name=string("ffn_w1")];`,
      { params: 'tensor<fp16, [1, 4, 1, 32]> x, tensor<fp16, [8, 4, 1, 1]> w' },
    ),
    good: mil(`${CONV_CONSTS}
      ${W_CONST}
      tensor<fp16, [1, 8, 1, 32]> y = conv(${CONV_ARGS}, weight=W, x=x)[name=string("ffn_w1")];`),
  },
  {
    rule: 'op-einsum',
    bad: mil(
      `string eq = const()[name=string("eq"), val=string("nchw,nchw->nchw")];
      tensor<fp16, [1, 4, 1, 32]> y = einsum(equation=eq, values=(x, x))[name=string("e")];`,
    ),
    good: mil(
      `string eq = const()[name=string("eq"), val=string("nchw,nwhu->nchu")];
      ${blobConst('k', 'tensor<fp16, [1, 32, 1, 8]>')}
      tensor<fp16, [1, 4, 1, 8]> y = einsum(equation=eq, values=(x, k))[name=string("e")];`,
    ),
  },
  {
    rule: 'op-tile-factors',
    bad: mil(`
      tensor<int32, [4]> reps = const()[name=string("reps"), val=tensor<int32, [4]>([1, 1, 1, 5])];
      tensor<fp16, [1, 4, 1, 160]> y = tile(x=x, reps=reps)[name=string("t")];`),
    good: mil(`
      tensor<int32, [4]> reps = const()[name=string("reps"), val=tensor<int32, [4]>([1, 1, 1, 4])];
      tensor<fp16, [1, 4, 1, 128]> y = tile(x=x, reps=reps)[name=string("t")];`),
  },
  {
    rule: 'op-pad-modes',
    chip: 'M1',
    bad: mil(`
      tensor<int32, [8]> p = const()[name=string("p"), val=tensor<int32, [8]>([0, 0, 0, 0, 0, 0, 1, 1])];
      string md = const()[name=string("md"), val=string("reflect")];
      fp16 cv = const()[name=string("cv"), val=fp16(0)];
      tensor<fp16, [1, 4, 1, 34]> y = pad(x=x, pad=p, mode=md, constant_val=cv)[name=string("pd")];`),
    good: mil(`
      tensor<int32, [8]> p = const()[name=string("p"), val=tensor<int32, [8]>([0, 0, 0, 0, 0, 0, 1, 1])];
      string md = const()[name=string("md"), val=string("constant")];
      fp16 cv = const()[name=string("cv"), val=fp16(0)];
      tensor<fp16, [1, 4, 1, 34]> y = pad(x=x, pad=p, mode=md, constant_val=cv)[name=string("pd")];`),
  },
  {
    rule: 'op-resize-m1',
    chip: 'M1',
    bad: mil(`
      fp32 sc = const()[name=string("sc"), val=fp32(2)];
      tensor<fp16, [1, 4, 2, 64]> y = upsample_nearest_neighbor(x=x, scale_factor_height=sc, scale_factor_width=sc)[name=string("up")];`),
    good: mil(RELU),
  },
  {
    rule: 'op-range-1d',
    chip: 'M1',
    bad: mil(
      `fp16 s = const()[name=string("s"), val=fp16(0)];
      fp16 e = const()[name=string("e"), val=fp16(32)];
      fp16 d = const()[name=string("d"), val=fp16(1)];
      tensor<fp16, [32]> y = range_1d(start=s, end=e, step=d)[name=string("rg")];`,
      { params: '' },
    ),
    good: mil(RELU),
  },
  {
    rule: 'op-layer-norm-affine',
    bad: mil(`
      tensor<int32, [1]> ax = const()[name=string("ax"), val=tensor<int32, [1]>([1])];
      ${blobConst('g', 'tensor<fp16, [4]>')}
      fp16 eps = const()[name=string("eps"), val=fp16(0.00001)];
      tensor<fp16, [1, 4, 1, 32]> y = layer_norm(x=x, axes=ax, gamma=g, epsilon=eps)[name=string("ln")];`),
    good: mil(`
      tensor<int32, [1]> ax = const()[name=string("ax"), val=tensor<int32, [1]>([1])];
      fp16 eps = const()[name=string("eps"), val=fp16(0.00001)];
      tensor<fp16, [1, 4, 1, 32]> y = layer_norm(x=x, axes=ax, epsilon=eps)[name=string("ln")];`),
  },
  {
    rule: 'num-width-slice-concat',
    chip: 'M2',
    bad: mil(`
      tensor<int32, [4]> sz = const()[name=string("sz"), val=tensor<int32, [4]>([1, 4, 1, 8])];
      tensor<int32, [4]> b1 = const()[name=string("b1"), val=tensor<int32, [4]>([0, 0, 0, 8])];
      tensor<int32, [4]> b2 = const()[name=string("b2"), val=tensor<int32, [4]>([0, 0, 0, 16])];
      tensor<fp16, [1, 4, 1, 8]> s1 = slice_by_size(x=x, begin=b1, size=sz)[name=string("s1")];
      tensor<fp16, [1, 4, 1, 8]> s2 = slice_by_size(x=x, begin=b2, size=sz)[name=string("s2")];
      int32 ax = const()[name=string("ax"), val=int32(3)];
      bool il = const()[name=string("il"), val=bool(false)];
      tensor<fp16, [1, 4, 1, 16]> y = concat(axis=ax, interleave=il, values=(s1, s2))[name=string("c")];`),
    good: mil(`
      tensor<int32, [4]> sz = const()[name=string("sz"), val=tensor<int32, [4]>([1, 4, 1, 8])];
      tensor<int32, [4]> b1 = const()[name=string("b1"), val=tensor<int32, [4]>([0, 0, 0, 0])];
      tensor<int32, [4]> b2 = const()[name=string("b2"), val=tensor<int32, [4]>([0, 0, 0, 16])];
      tensor<fp16, [1, 4, 1, 8]> s1 = slice_by_size(x=x, begin=b1, size=sz)[name=string("s1")];
      tensor<fp16, [1, 4, 1, 8]> s2 = slice_by_size(x=x, begin=b2, size=sz)[name=string("s2")];
      int32 ax = const()[name=string("ax"), val=int32(3)];
      bool il = const()[name=string("il"), val=bool(false)];
      tensor<fp16, [1, 4, 1, 16]> y = concat(axis=ax, interleave=il, values=(s1, s2))[name=string("c")];`),
  },
  {
    rule: 'num-eps-underflow',
    bad: mil(`
      fp16 eps = const()[name=string("eps"), val=fp16(1e-8)];
      tensor<fp16, [1, 4, 1, 32]> y = add(x=x, y=eps)[name=string("a")];`),
    good: mil(`
      fp16 eps = const()[name=string("eps"), val=fp16(0.00001)];
      tensor<fp16, [1, 4, 1, 32]> y = add(x=x, y=eps)[name=string("a")];`),
  },
  {
    rule: 'num-mask-value',
    bad: mil(`
      tensor<fp16, [1, 1, 1, 32]> cm = const()[name=string("cm"), val=tensor<fp16, [1, 1, 1, 32]>([0, -inf, -inf, -inf, -inf, -inf, -inf, -inf, -inf, -inf, -inf, -inf, -inf, -inf, -inf, -inf, -inf, -inf, -inf, -inf, -inf, -inf, -inf, -inf, -inf, -inf, -inf, -inf, -inf, -inf, -inf, -inf])];
      tensor<fp16, [1, 4, 1, 32]> y = add(x=x, y=cm)[name=string("msk")];`),
    good: mil(`
      tensor<fp16, [1, 1, 1, 32]> cm = const()[name=string("cm"), val=tensor<fp16, [1, 1, 1, 32]>([0, -65504, -65504, -65504, -65504, -65504, -65504, -65504, -65504, -65504, -65504, -65504, -65504, -65504, -65504, -65504, -65504, -65504, -65504, -65504, -65504, -65504, -65504, -65504, -65504, -65504, -65504, -65504, -65504, -65504, -65504, -65504])];
      tensor<fp16, [1, 4, 1, 32]> y = add(x=x, y=cm)[name=string("msk")];`),
  },
  {
    rule: 'io-binding-order',
    chip: 'M4',
    bad: mil('tensor<fp16, [1, 4, 1, 32]> y = add(x=x, y=w)[name=string("a")];', {
      params: 'tensor<fp16, [1, 4, 1, 32]> x, tensor<fp16, [1, 4, 1, 32]> w',
    }),
    good: mil('tensor<fp16, [1, 4, 1, 32]> y = add(x=w, y=x)[name=string("a")];', {
      params: 'tensor<fp16, [1, 4, 1, 32]> w, tensor<fp16, [1, 4, 1, 32]> x',
    }),
  },
  {
    rule: 'io-alignment',
    bad: mil('tensor<fp16, [1, 4, 1, 16]> y = relu(x=x)[name=string("r")];', {
      params: 'tensor<fp16, [1, 4, 1, 16]> x',
    }),
    good: mil(RELU),
  },
  {
    rule: 'io-in-memory-api',
    bad: mil(`${CONV_CONSTS}
      ${blobConst('W', 'tensor<fp16, [8, 4, 1, 1]>', '@model_path/w.bin')}
      tensor<fp16, [1, 8, 1, 32]> y = conv(${CONV_ARGS}, weight=W, x=x)[name=string("cv")];`),
    good: mil(`${CONV_CONSTS}
      ${W_CONST}
      tensor<fp16, [1, 8, 1, 32]> y = conv(${CONV_ARGS}, weight=W, x=x)[name=string("cv")];`),
    weights: fp16Weights(32),
  },
  {
    rule: 'blob-offset',
    bad: mil(`${CONV_CONSTS}
      ${blobConst('W', 'tensor<fp16, [8, 4, 1, 1]>', '@model_path/weights/w.bin', 128)}
      tensor<fp16, [1, 8, 1, 32]> y = conv(${CONV_ARGS}, weight=W, x=x)[name=string("cv")];`),
    good: mil(`${CONV_CONSTS}
      ${W_CONST}
      tensor<fp16, [1, 8, 1, 32]> y = conv(${CONV_ARGS}, weight=W, x=x)[name=string("cv")];`),
    weights: fp16Weights(32),
  },
  {
    rule: 'blob-multi-tensor-file',
    chip: 'M1',
    bad: mil(`${CONV_CONSTS}
      ${blobConst('W', 'tensor<fp16, [8, 4, 1, 1]>')}
      ${blobConst('W2', 'tensor<fp16, [8, 8, 1, 1]>', '@model_path/weights/w.bin', 192)}
      tensor<fp16, [1, 8, 1, 32]> h = conv(${CONV_ARGS}, weight=W, x=x)[name=string("cv")];
      tensor<fp16, [1, 8, 1, 32]> y = conv(${CONV_ARGS}, weight=W2, x=h)[name=string("cv2")];`),
    good: mil(`${CONV_CONSTS}
      ${W_CONST}
      tensor<fp16, [1, 8, 1, 32]> y = conv(${CONV_ARGS}, weight=W, x=x)[name=string("cv")];`),
    weights: fp16Weights(32, 64),
    goodWeights: fp16Weights(32),
  },
  {
    rule: 'perf-sram',
    bad: mil('tensor<fp16, [1, 4096, 1, 4097]> y = relu(x=x)[name=string("r")];', {
      params: 'tensor<fp16, [1, 4096, 1, 4097]> x',
    }),
    good: mil('tensor<fp16, [1, 4096, 1, 4096]> y = relu(x=x)[name=string("r")];', {
      params: 'tensor<fp16, [1, 4096, 1, 4096]> x',
    }),
  },
  {
    rule: 'perf-rmsnorm-reduction',
    bad: mil(
      `tensor<int32, [1]> ax = const()[name=string("ax"), val=tensor<int32, [1]>([1])];
      bool kd = const()[name=string("kd"), val=bool(true)];
      tensor<fp16, [512, 1, 1, 1]> y = reduce_sum(x=x, axes=ax, keep_dims=kd)[name=string("rs")];`,
      { params: 'tensor<fp16, [512, 64, 1, 1]> x' },
    ),
    good: mil(`
      tensor<int32, [1]> ax = const()[name=string("ax"), val=tensor<int32, [1]>([1])];
      bool kd = const()[name=string("kd"), val=bool(true)];
      tensor<fp16, [1, 1, 1, 32]> y = reduce_sum(x=x, axes=ax, keep_dims=kd)[name=string("rs")];`),
  },
];

function violationsOf(
  text: string,
  chip: ChipFamily = 'M4',
  weights?: Map<string, Uint8Array>,
): RuleViolation[] {
  return checkProgramRules(parseProgram(text), weights === undefined ? { chip } : { chip, weights });
}

describe('rule checks: each breaking program triggers its rule and the fixed one does not', () => {
  it.each(CASES.map((c) => [c.rule, c] as const))('%s', (ruleId, testCase) => {
    const chip = testCase.chip ?? 'M4';
    const bad = violationsOf(testCase.bad, chip, testCase.weights).filter((v) => v.ruleId === ruleId);
    expect(bad.length, `no ${ruleId} violation in the breaking program`).toBeGreaterThan(0);
    for (const violation of bad) {
      expect(violation.message).toContain(`[ANE rule ${ruleId}, ${chip}]`);
      expect(violation.message).toContain(' Fix: ');
      expect(violation.chip).toBe(chip);
      expect(violation.position.line).toBeGreaterThan(0);
    }
    const good = violationsOf(testCase.good, chip, testCase.goodWeights ?? testCase.weights).filter(
      (v) => v.ruleId === ruleId,
    );
    expect(good, `unexpected ${ruleId} violation in the fixed program`).toEqual([]);
  });

  it('covers every registered check with a case', () => {
    const covered = new Set(CASES.map((c) => c.rule));
    expect([...RULE_CHECKS.keys()].filter((id) => !covered.has(id))).toEqual([]);
    expect(MIL_CHECKED_RULE_IDS.filter((id) => !covered.has(id))).toEqual([]);
  });
});

describe('violation messages', () => {
  it('name the op, the rule, what the hardware does and the fix', () => {
    const runtimeWeight = CASES.find((c) => c.rule === 'op-runtime-weight-conv')!;
    const [violation] = violationsOf(runtimeWeight.bad).filter((v) => v.ruleId === 'op-runtime-weight-conv');
    expect(violation).toMatchObject({
      ruleId: 'op-runtime-weight-conv',
      severity: 'error',
      op: 'conv',
      subject: 'ffn_w1',
      position: { line: 10 },
    });
    expect(violation!.message).toBe(
      "conv weight must be constant on the ANE; 'w' is a function input (op 'ffn_w1'): the in-memory compiler rejects the program (InvalidMILProgram). Fix: Pass trainable weights as data to a `matmul` (a 1x1 conv is a matmul), or lower a trainable conv to im2col + matmul; bake only frozen conv weights. [ANE rule op-runtime-weight-conv, M4]",
    );
  });

  it('name parameters and returned values when no statement is concerned', () => {
    const [violation] = violationsOf(mil(RELU, { returns: 'x' })).filter(
      (v) => v.ruleId === 'emit-live-outputs',
    );
    expect(violation?.subject).toBe('x');
    expect(violation?.op).toBeUndefined();
    expect(violation?.message).toMatch(
      /^returns parameter 'x' directly instead of a value computed in the body: the program is rejected/,
    );
  });

  it('carry the severity of their rule', () => {
    const alignment = violationsOf(CASES.find((c) => c.rule === 'io-alignment')!.bad);
    expect(alignment.find((v) => v.ruleId === 'io-alignment')?.severity).toBe('warning');
  });
});

describe('rule checks in detail', () => {
  it('report each part of the program skeleton', () => {
    const text = mil(
      `
      tensor<fp16, [1, 4, 1, 32]> h = relu(x=x);
      tensor<fp16, [1, 4, 1, 32]> y = relu(x=h)[name=string("r")];
      tensor<fp16, [1, 4, 1, 32]> z = relu(x=y)[name=string("r")];`,
      { version: '1.0', opset: 'ios17' },
    );
    const details = violationsOf(text.replace(/\[buildInfo[^\n]*\n/, ''))
      .filter((v) => v.ruleId === 'emit-program-skeleton')
      .map((v) => /^(.*?)(?: \(op '[^']*'\))?: /.exec(v.message)?.[1]);
    expect(details).toEqual([
      'program has no buildInfo line (devices add the standard one; to write it yourself, put [buildInfo = dict<string, string>({{"coremlc-version", "3505.4.1"}})] on the line after program(1.0))',
      "function 'main' has opset <ios17>, not <ios16> (program(1.0))",
      'relu statement has no name attribute',
      "op name 'r' is used twice",
    ]);
  });

  it('accepts the program(1.0)/<ios16> fallback dialect and refuses other versions', () => {
    const skeleton = (version: string, opset: string) =>
      violationsOf(mil(RELU, { version, opset })).filter((v) => v.ruleId === 'emit-program-skeleton');
    expect(skeleton('1.0', 'ios16')).toEqual([]);
    expect(skeleton('1.3', 'ios18')).toEqual([]);
    expect(skeleton('1.1', 'ios17')[0]?.message).toContain('program version is 1.1, not 1.3 (or 1.0)');
    expect(skeleton('1.3', 'ios16')[0]?.message).toContain('opset <ios16>, not <ios18>');
  });

  it('flags identifiers a hand-built AST spells badly', () => {
    const program = parseProgram(mil(RELU));
    const main = program.functions[0]!;
    const renamed: MilProgram = {
      ...program,
      functions: [{ ...main, params: [{ ...main.params[0]!, name: '9x' }] }],
    };
    expect(checkProgramRules(renamed).filter((v) => v.ruleId === 'emit-identifiers')[0]?.message).toMatch(
      /^'9x' is not a valid identifier/,
    );
  });

  it('gates chip-specific rules by family', () => {
    const sin = mil('tensor<fp16, [1, 4, 1, 32]> y = sin(x=x)[name=string("s")];');
    expect(violationsOf(sin, 'M2').map((v) => v.ruleId)).toContain('op-family-floors');
    expect(violationsOf(sin, 'M3').map((v) => v.ruleId)).not.toContain('op-family-floors');
    const wide = mil('tensor<fp16, [1, 4, 1, 20000]> y = relu(x=x)[name=string("r")];', {
      params: 'tensor<fp16, [1, 4, 1, 20000]> x',
    });
    expect(violationsOf(wide, 'M3').map((v) => v.ruleId)).toContain('dim-spatial');
    expect(violationsOf(wide, 'M4').map((v) => v.ruleId)).not.toContain('dim-spatial');
    const transposed = CASES.find((c) => c.rule === 'dim-transpose-extent')!.bad;
    expect(violationsOf(transposed, 'M4').map((v) => v.ruleId)).not.toContain('dim-transpose-extent');
  });

  it('report a BLOBFILE whose record does not hold the declared tensor', () => {
    const blob = CASES.find((c) => c.rule === 'blob-offset')!;
    const wrongSize = violationsOf(blob.good, 'M4', fp16Weights(16)).filter(
      (v) => v.ruleId === 'blob-offset',
    );
    expect(wrongSize[0]?.message).toMatch(
      /^BLOBFILE @model_path\/weights\/w.bin offset 64: the record holds fp16 with 32 bytes, the program declares fp16 × 32 \(64 bytes\)/,
    );
    const missing = violationsOf(blob.good, 'M4', new Map()).map((v) => v.ruleId);
    expect(missing).toContain('io-in-memory-api');
    expect(missing).not.toContain('blob-offset');
  });

  it('accepts any relative weight path under @model_path/ that has its weights entry (Orion style)', () => {
    const blob = (n: number) => writeBlobFile([{ dtype: 'fp16', data: new Uint16Array(n) }]).bytes;
    const text = mil(`${CONV_CONSTS}
      ${blobConst('W0', 'tensor<fp16, [4, 4, 1, 1]>', '@model_path/layer0/wq.bin')}
      ${blobConst('W1', 'tensor<fp16, [4, 4, 1, 1]>', '@model_path/layer1/wq.bin')}
      ${blobConst('cm', 'tensor<fp16, [1, 1, 1, 32]>', '@model_path/masks/causal.bin')}
      ${blobConst('e', 'tensor<fp16, [1, 4, 1, 32]>', '@model_path/embed.bin')}
      tensor<fp16, [1, 4, 1, 32]> h0 = conv(${CONV_ARGS}, weight=W0, x=x)[name=string("c0")];
      tensor<fp16, [1, 4, 1, 32]> h1 = conv(${CONV_ARGS}, weight=W1, x=h0)[name=string("c1")];
      tensor<fp16, [1, 4, 1, 32]> h2 = add(x=h1, y=cm)[name=string("m")];
      tensor<fp16, [1, 4, 1, 32]> y = add(x=h2, y=e)[name=string("a")];`);
    const weights = new Map([
      ['@model_path/layer0/wq.bin', blob(16)],
      ['@model_path/layer1/wq.bin', blob(16)],
      ['@model_path/masks/causal.bin', blob(32)],
      ['@model_path/embed.bin', blob(128)],
    ]);
    const ids = violationsOf(text, 'M4', weights).map((v) => v.ruleId);
    expect(ids).not.toContain('io-in-memory-api');
    expect(ids).not.toContain('blob-offset');
    const missing = new Map(weights);
    missing.delete('@model_path/masks/causal.bin');
    expect(
      violationsOf(text, 'M4', missing).filter((v) => v.ruleId === 'io-in-memory-api')[0]?.message,
    ).toMatch(/^BLOBFILE path '@model_path\/masks\/causal.bin' has no entry in the weights dictionary/);
  });

  it('refuses weight paths with .., empty or absolute components, or outside @model_path/', () => {
    const paths: [string, RegExp][] = [
      ['@model_path/../escape.bin', /has a '\.\.' component, which would leave the model directory/],
      ['@model_path/layer0/../../w.bin', /has a '\.\.' component/],
      ['@model_path//etc/w.bin', /is absolute after @model_path\//],
      ['@model_path/layer0//w.bin', /has an empty component/],
      ['@model_path/', /names no file after @model_path\//],
      ['@model_path/./w.bin', /has a '\.' component/],
      ['weights/w.bin', /does not start with @model_path\//],
    ];
    for (const [path, problem] of paths) {
      const text = mil(`${CONV_CONSTS}
        ${blobConst('W', 'tensor<fp16, [8, 4, 1, 1]>', path)}
        tensor<fp16, [1, 8, 1, 32]> y = conv(${CONV_ARGS}, weight=W, x=x)[name=string("cv")];`);
      const weights = new Map([[path, writeBlobFile([{ dtype: 'fp16', data: new Uint16Array(32) }]).bytes]]);
      const found = violationsOf(text, 'M4', weights).filter((v) => v.ruleId === 'io-in-memory-api');
      expect(found[0]?.message, path).toMatch(problem);
      expect(found[0]?.severity, path).toBe('error');
    }
  });

  it('finds an infinite mask inside a weight blob', () => {
    const mask = new Uint16Array(32).fill(0xfc00);
    const weights = new Map([
      ['@model_path/weights/w.bin', writeBlobFile([{ dtype: 'fp16', data: mask }]).bytes],
    ]);
    const text = mil(`
      ${blobConst('cm', 'tensor<fp16, [1, 1, 1, 32]>')}
      tensor<fp16, [1, 4, 1, 32]> y = add(x=x, y=cm)[name=string("msk")];`);
    expect(violationsOf(text, 'M4', weights).map((v) => v.ruleId)).toContain('num-mask-value');
  });
});

interface CorpusCase {
  id: string;
  program: MilProgram;
  weights: Map<string, Uint8Array>;
}

const corpus: CorpusCase[] = readdirSync(CONFORMANCE_DIR, { withFileTypes: true })
  .filter((entry) => entry.isDirectory())
  .map((entry) => {
    const dir = join(CONFORMANCE_DIR, entry.name);
    const manifest = JSON.parse(readFileSync(join(dir, 'case.json'), 'utf8')) as {
      weights: { key: string; file: string }[];
    };
    return {
      id: entry.name,
      program: parseProgram(readFileSync(join(dir, 'program.mil'), 'utf8')),
      weights: new Map(manifest.weights.map((w) => [w.key, new Uint8Array(readFileSync(join(dir, w.file)))])),
    };
  });

describe('rule checks on the conformance corpus', () => {
  it.each(corpus.map((c) => [c.id, c] as const))('%s has no errors on M4', (_, testCase) => {
    const violations = checkProgramRules(testCase.program, { chip: 'M4', weights: testCase.weights });
    expect(violations.filter((v) => v.severity === 'error')).toEqual([]);
  });

  it('warns where the corpus itself probes a contested rule', () => {
    const warningsOn = (id: string, chip: ChipFamily) => {
      const testCase = corpus.find((c) => c.id === id)!;
      return checkProgramRules(testCase.program, { chip, weights: testCase.weights }).map(
        (v) => `${v.ruleId}:${v.severity}`,
      );
    };
    expect(warningsOn('J-dyn-matmul-2in', 'M4')).toEqual(['io-binding-order:warning']);
    expect(warningsOn('E-int8-w8a8', 'M4')).toEqual(['io-alignment:warning', 'io-alignment:warning']);
    expect(warningsOn('A2-conv-linear-fp32io', 'M2')).toEqual([
      'dtype-fp32-io-in-memory:error',
      'dtype-fp32-io-in-memory:error',
    ]);
    expect(warningsOn('F-swiglu-ffn', 'M1')).toContain('blob-multi-tensor-file:warning');
  });

  it('never throws on corrupted weight files, on any chip', () => {
    const withWeights = corpus.filter((c) => c.weights.size > 0);
    fc.assert(
      fc.property(
        fc.nat({ max: withWeights.length - 1 }),
        fc.array(fc.tuple(fc.nat(), fc.nat({ max: 255 })), { minLength: 1, maxLength: 6 }),
        fc.nat(),
        fc.constantFrom<ChipFamily>('M1', 'M2', 'M3', 'M4', 'M5'),
        (caseIndex, edits, cut, chip) => {
          const testCase = withWeights[caseIndex]!;
          const weights = new Map(
            [...testCase.weights].map(([key, bytes]) => {
              const copy = bytes.slice(0, bytes.length - (cut % 3 === 0 ? cut % bytes.length : 0));
              for (const [at, value] of edits) if (copy.length > 0) copy[at % copy.length] = value;
              return [key, copy] as const;
            }),
          );
          const violations = checkProgramRules(testCase.program, { chip, weights });
          for (const v of violations) expect(v.message).toContain('[ANE rule ');
        },
      ),
      { numRuns: 300 },
    );
  });
});
