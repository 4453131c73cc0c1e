import type { ChipFamily, TensorSpec } from 'ane-ir/mil';
import { CHIP_FAMILIES, encodeFp16, getRule, ruleLimit, SIMULATED_RULE_IDS, writeBlobFile } from 'ane-ir/mil';
import { describe, expect, it } from 'vitest';
import { openDevice } from '../device/device';
import { CompileBudgetError } from '../errors';
import { behaviourSettingsFor, SIMULATED_BEHAVIOURS } from './behaviours';
import { compileSimProgram } from './executable';
import { decodeFp16Buffer, encodeFp16Buffer } from './io';
import { fp16Spec, milProgram, randomFp16, runFp16 } from './test-support.test-helper';

describe('SIMULATED_BEHAVIOURS', () => {
  it('has exactly one entry per simulator rule of the rule table (no drift)', () => {
    expect(Object.keys(SIMULATED_BEHAVIOURS).sort()).toEqual([...SIMULATED_RULE_IDS].sort());
  });

  it('turns chip-specific behaviours on only for the chips their rule lists', () => {
    for (const chip of CHIP_FAMILIES) {
      const settings = behaviourSettingsFor(chip);
      expect(settings.ignoreAttentionMask).toBe(true);
      expect(settings.matmulInfinityThreshold).toBe(32752);
      expect(settings.widthSliceSaturationLimit).toBe(['M1', 'M2', 'M3'].includes(chip) ? 4094 : undefined);
      expect(settings.narrowReduceSum).toBe(false);
    }
  });
});

const row = (name: string, width: number): TensorSpec => fp16Spec(name, [1, 1, 1, width]);

describe('num-fp16-range: results beyond ±65504 become ±inf', () => {
  it('an add or mul whose result rounds past 65504 is ±infinity; 65504 itself is finite', () => {
    const program = milProgram(
      [row('x', 32), row('y', 32)],
      [
        'tensor<fp16, [1, 1, 1, 32]> s = add(x=x, y=y)[name=string("a")];',
        'tensor<fp16, [1, 1, 1, 32]> p = mul(x=x, y=y)[name=string("m")];',
      ],
      [row('s', 32), row('p', 32)],
    );
    const x = new Array(32).fill(0);
    const y = new Array(32).fill(0);
    [x[0], y[0], x[1], y[1], x[2], y[2], x[3], y[3]] = [60000, 6000, -60000, -6000, 65504, 0, 300, -300];
    const [sum, productOut] = runFp16(program, [x, y]);
    expect([...sum!.subarray(0, 3)]).toEqual([Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, 65504]);
    expect(productOut![3]).toBe(Number.NEGATIVE_INFINITY);
  });
});

describe('num-matmul-output-inf: matmul outputs with |y| >= 32752 become ±inf', () => {
  const program = milProgram(
    [row('x', 2), fp16Spec('w', [1, 1, 2, 32])],
    [
      'bool bF = const()[name=string("bF"), val=bool(false)];',
      'tensor<fp16, [1, 1, 1, 32]> y = matmul(transpose_x=bF, transpose_y=bF, x=x, y=w)[name=string("mm")];',
    ],
    [row('y', 32)],
  );
  for (const chip of CHIP_FAMILIES) {
    it(`on ${chip}: 32752 and beyond saturate, 32736 (the next fp16 below) does not`, () => {
      // y[j] = 16376*w0[j] + 16376*w1[j]: 32752 at w = (1, 1); -32752 at (-1, -1); 32736 at (1, 0.9990234375).
      const w = new Array(64).fill(0);
      [w[0], w[32], w[1], w[33], w[2], w[34]] = [1, 1, -1, -1, 1, 0.9990234375];
      const [y] = runFp16(program, [[16376, 16376], w], { chip: chip as ChipFamily });
      expect(y![0]).toBe(Number.POSITIVE_INFINITY);
      expect(y![1]).toBe(Number.NEGATIVE_INFINITY);
      expect(y![2]).toBe(32736);
    });
  }

  it('does not apply to conv (the rule names matmul)', () => {
    const program = milProgram(
      [row('x', 32)],
      [
        'string pt = const()[name=string("pt"), val=string("valid")];',
        'tensor<int32, [2]> st = const()[name=string("st"), val=tensor<int32, [2]>([1, 1])];',
        'tensor<int32, [4]> pd = const()[name=string("pd"), val=tensor<int32, [4]>([0, 0, 0, 0])];',
        'int32 gr = const()[name=string("gr"), val=int32(1)];',
        'tensor<fp16, [1, 1, 1, 1]> W = const()[name=string("W"), val=tensor<fp16, [1, 1, 1, 1]>([2])];',
        'tensor<fp16, [1, 1, 1, 32]> y = conv(dilations=st, groups=gr, pad=pd, pad_type=pt, strides=st, weight=W, x=x)[name=string("cv")];',
      ],
      [row('y', 32)],
    );
    expect(runFp16(program, [new Array(32).fill(20000)])[0]![0]).toBe(40000);
  });
});

describe('num-width-slice-saturation: width-offset slices saturate past 4094 on M1-M3', () => {
  const sliced = (beginLast: number) =>
    milProgram(
      [row('x', 64)],
      [
        `tensor<int32, [4]> b = const()[name=string("b"), val=tensor<int32, [4]>([0, 0, 0, ${beginLast}])];`,
        'tensor<int32, [4]> s = const()[name=string("s"), val=tensor<int32, [4]>([1, 1, 1, 32])];',
        'tensor<fp16, [1, 1, 1, 32]> y = slice_by_size(x=x, begin=b, size=s)[name=string("sl")];',
      ],
      [row('y', 32)],
    );
  const input = new Array(64).fill(1);
  [input[32], input[33], input[34], input[35]] = [4094, 4100, -5000, -4094];
  for (const chip of CHIP_FAMILIES) {
    const saturates = ['M1', 'M2', 'M3'].includes(chip);
    it(`on ${chip}: ${saturates ? '|v| > 4094 becomes ±inf' : 'exact'} with a nonzero last-axis begin`, () => {
      const [y] = runFp16(sliced(32), [input], { chip: chip as ChipFamily });
      expect([...y!.subarray(0, 5)]).toEqual(
        saturates
          ? [4094, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, -4094, 1]
          : [4094, 4100, -5000, -4094, 1],
      );
    });
  }

  it('a zero last-axis begin stays exact on M1', () => {
    const shifted = [...input.slice(32), ...input.slice(0, 32)];
    const [y] = runFp16(sliced(0), [shifted], { chip: 'M1' });
    expect([...y!.subarray(0, 4)]).toEqual([4094, 4100, -5000, -4094]);
  });
});

describe('op-sdpa-mil: scaled_dot_product_attention ignores attn_mask', () => {
  it('gives the unmasked result whatever the mask says', () => {
    const spec = fp16Spec('q', [1, 2, 8, 32]);
    const statements = (withMask: boolean) => [
      'tensor<fp16, [1, 1, 8, 8]> m = const()[name=string("m"), val=tensor<fp16, [1, 1, 8, 8]>(BLOBFILE(path=string("@model_path/weights/mask.bin"), offset=uint64(64)))];',
      `tensor<fp16, [1, 2, 8, 32]> y = scaled_dot_product_attention(query=q, key=q, value=q${withMask ? ', attn_mask=m' : ''})[name=string("sd")];`,
    ];
    const causal = Float32Array.from({ length: 64 }, (_, i) => (i % 8 > Math.floor(i / 8) ? -65504 : 0));
    const weights = new Map([
      ['@model_path/weights/mask.bin', writeBlobFile([{ dtype: 'fp16', data: encodeFp16(causal) }]).bytes],
    ]);
    const q = randomFp16(2 * 8 * 32, 60, 2);
    const [masked] = runFp16(milProgram([spec], statements(true), [fp16Spec('y', [1, 2, 8, 32])], weights), [
      q,
    ]);
    const [unmasked] = runFp16(
      milProgram([spec], statements(false), [fp16Spec('y', [1, 2, 8, 32])], weights),
      [q],
    );
    expect([...masked!]).toEqual([...unmasked!]);
    // The first query row would attend to key 0 only under the mask (output = v[0]); unmasked it does not.
    expect([...masked!.subarray(0, 32)]).not.toEqual([...q.subarray(0, 32)]);
  });
});

describe('num-accumulator-width', () => {
  it('matmul accumulates wide: a dot product of 16384 ones is exactly 16384', () => {
    const K = 16384;
    const program = milProgram(
      [row('x', K), fp16Spec('w', [1, 1, K, 32])],
      [
        'bool bF = const()[name=string("bF"), val=bool(false)];',
        'tensor<fp16, [1, 1, 1, 32]> y = matmul(transpose_x=bF, transpose_y=bF, x=x, y=w)[name=string("mm")];',
      ],
      [row('y', 32)],
    );
    const [y] = runFp16(program, [new Array(K).fill(1), new Array(K * 32).fill(1)]);
    expect(y![0]).toBe(16384);
  });

  it("reduce_sum rounds once by default; reduceSumAccumulation 'fp16' rounds every add (stalls at 2048)", () => {
    const program = milProgram(
      [fp16Spec('x', [1, 4096, 1, 32])],
      [
        'tensor<int32, [1]> ax = const()[name=string("ax"), val=tensor<int32, [1]>([1])];',
        'bool kd = const()[name=string("kd"), val=bool(true)];',
        'tensor<fp16, [1, 1, 1, 32]> y = reduce_sum(x=x, axes=ax, keep_dims=kd)[name=string("rs")];',
      ],
      [row('y', 32)],
    );
    const ones = new Array(4096 * 32).fill(1);
    expect(runFp16(program, [ones])[0]![0]).toBe(4096);
    expect(runFp16(program, [ones], { reduceSumAccumulation: 'fp16' })[0]![0]).toBe(2048);
  });
});

describe('io-packed-read: dense data from byte 0, extra bytes untouched', () => {
  it('reads only the declared bytes of a longer input and writes only the declared bytes of a longer output', () => {
    const program = milProgram(
      [row('x', 32)],
      ['tensor<fp16, [1, 1, 1, 32]> y = relu(x=x)[name=string("r")];'],
      [row('y', 32)],
    );
    const values = randomFp16(32, 70);
    const input = new Uint8Array(64 + 100).fill(0x7c);
    input.set(encodeFp16Buffer(values));
    const output = new Uint8Array(64 + 100).fill(0xab);
    compileSimProgram(program).run([input], [output]);
    expect([...decodeFp16Buffer(output.slice(0, 64))]).toEqual([...values].map((v) => Math.max(v, 0)));
    expect(output.subarray(64).every((byte) => byte === 0xab)).toBe(true);
  });
});

describe('blob-weights-baked: weights are copied at compile time', () => {
  it('changing the weights map or its bytes after compiling does not change the results', () => {
    const gains = randomFp16(32, 80);
    const bytes = writeBlobFile([{ dtype: 'fp16', data: encodeFp16(gains) }]).bytes;
    const program = milProgram(
      [row('x', 32)],
      [
        'tensor<fp16, [1, 1, 1, 32]> g = const()[name=string("g"), val=tensor<fp16, [1, 1, 1, 32]>(BLOBFILE(path=string("@model_path/weights/g.bin"), offset=uint64(64)))];',
        'tensor<fp16, [1, 1, 1, 32]> y = mul(x=x, y=g)[name=string("m")];',
      ],
      [row('y', 32)],
      new Map([['@model_path/weights/g.bin', bytes]]),
    );
    const executable = compileSimProgram(program);
    bytes.fill(0, 128);
    program.weights.set('@model_path/weights/g.bin', new Uint8Array(bytes.length));
    const output = new Uint8Array(64);
    executable.run([encodeFp16Buffer(new Array(32).fill(1))], [output]);
    expect([...decodeFp16Buffer(output)]).toEqual([...gains]);
  });
});

describe('rt-compile-budget: the sim device refuses compiles past the rule limit', () => {
  it('the default budget is the rule limit, cache hits are free, the next compile fails', () => {
    const limit = ruleLimit(getRule('rt-compile-budget'), 'M4')!;
    using device = openDevice({ backend: 'sim' });
    expect(device.compileBudget.limit).toBe(limit);
    const programFor = (i: number) =>
      milProgram(
        [row('x', 32)],
        [
          `fp16 c = const()[name=string("c"), val=fp16(${i})];`,
          'tensor<fp16, [1, 1, 1, 32]> y = add(x=x, y=c)[name=string("a")];',
        ],
        [row('y', 32)],
      );
    for (let i = 0; i < limit; i++) device.compile(programFor(i)).dispose();
    device.compile(programFor(0)).dispose();
    expect(() => device.compile(programFor(limit))).toThrow(CompileBudgetError);
  });
});
