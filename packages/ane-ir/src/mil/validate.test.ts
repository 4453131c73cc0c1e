import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CONFORMANCE_DIR } from '../../../../tools/testing/corpus';
import { writeBlobFile } from './blob';
import { maderixBenchFile } from './blob.test-helper';
import { MilError, MilUnknownOpError, type MilValidationCode, MilValidationError } from './errors';
import { parseProgram } from './parse';
import { type ValidatedProgram, type ValidateOptions, validateProgram } from './validate';

interface CorpusCase {
  id: string;
  text: string;
  weights: Map<string, Uint8Array>;
  outputs: { name: string; dtype: string; shape: number[] }[];
}

const corpus: CorpusCase[] = readdirSync(CONFORMANCE_DIR, { withFileTypes: true })
  .filter((entry) => entry.isDirectory())
  .map((entry) => {
    const dir = join(CONFORMANCE_DIR, entry.name);
    const spec = JSON.parse(readFileSync(join(dir, 'case.json'), 'utf8')) as {
      weights: { key: string; file: string }[];
      outputs: { name: string; dtype: string; shape: number[] }[];
    };
    return {
      id: entry.name,
      text: readFileSync(join(dir, 'program.mil'), 'utf8'),
      weights: new Map(spec.weights.map((w) => [w.key, new Uint8Array(readFileSync(join(dir, w.file)))])),
      outputs: spec.outputs,
    };
  });

function corpusCase(prefix: string): CorpusCase {
  return corpus.find((c) => c.id.startsWith(prefix))!;
}

/** A program around `statements`; the first statement is on line 4, column 9. */
function program(
  statements: string[],
  returns = 'y',
  params = 'tensor<fp16, [1, 4, 1, 8]> x',
  opset = 'ios18',
): string {
  return [
    'program(1.3)',
    '{',
    `    func main<${opset}>(${params}) {`,
    ...statements.map((s) => `        ${s}`),
    `    } -> (${returns});`,
    '}',
    '',
  ].join('\n');
}

/** 1-based column of `needle` in line `line` (1-based) of `text`, searching from `from`. */
function columnOf(text: string, line: number, needle: string, from = 0): number {
  const index = text.split('\n')[line - 1]!.indexOf(needle, from);
  if (index < 0) throw new Error(`'${needle}' not on line ${line}`);
  return index + 1;
}

function validationErrorOf(text: string, options: ValidateOptions = {}): MilValidationError {
  try {
    validateProgram(parseProgram(text), { ...options, source: text });
  } catch (error) {
    if (error instanceof MilValidationError) return error;
    throw error;
  }
  throw new Error('expected a MilValidationError');
}

function expectError(
  error: MilValidationError,
  expected: { code: MilValidationCode; line: number; column: number; op?: string; statement?: string },
): void {
  expect(error).toBeInstanceOf(MilError);
  expect({
    code: error.code,
    line: error.line,
    column: error.column,
    ...(expected.op === undefined ? {} : { op: error.op }),
    ...(expected.statement === undefined ? {} : { statement: error.statement }),
  }).toEqual(expected);
}

const fp16Blob = (elements: number) =>
  writeBlobFile([{ dtype: 'fp16', data: new Uint16Array(elements) }]).bytes;

describe('validateProgram on the conformance corpus', () => {
  it.each(corpus.map((c) => [c.id, c] as const))('validates %s with its weights', (_id, c) => {
    const validated = validateProgram(parseProgram(c.text), { weights: c.weights, source: c.text });
    expect(
      validated.main.outputs.map((o) => ({
        name: o.name,
        dtype: o.type.dtype,
        shape: [...('shape' in o.type ? o.type.shape : [])],
      })),
    ).toEqual(c.outputs.map((o) => ({ name: o.name, dtype: o.dtype, shape: o.shape })));
    // Every BLOBFILE got its record.
    const blobCount = (c.text.match(/BLOBFILE/g) ?? []).length;
    expect(validated.blobs.size).toBe(blobCount);
  });

  it('validates without weights too (blobs unchecked)', () => {
    for (const c of corpus) expect(validateProgram(parseProgram(c.text)).blobs.size).toBe(0);
  });

  it('gives an interpreter resolved inputs, constants and blob records (case E)', () => {
    const c = corpusCase('E-');
    const validated: ValidatedProgram = validateProgram(parseProgram(c.text), { weights: c.weights });
    const main = validated.main;
    expect(main.opsetVersion).toBe(18);
    expect(main.params.map((p) => p.name)).toEqual(['x']);

    const w1 = main.statements.find((s) => s.name === 'W1')!;
    expect(w1.schema.name).toBe('constexpr_affine_dequantize');
    expect([...w1.inputs.keys()]).toEqual(['quantized_data', 'zero_point', 'scale', 'axis']);
    const quantized = w1.inputs.get('quantized_data')!;
    expect(quantized.kind).toBe('literal');
    if (quantized.kind !== 'literal' || quantized.value.kind !== 'blob')
      throw new Error('expected a blob literal');
    // Second int8 record of weight.bin: record at 4224, payload 64 bytes later, 64*64 bytes.
    expect(validated.blobs.get(quantized.value)).toEqual({
      offset: 4224,
      dtype: 'int8',
      byteSize: 4096,
      payloadOffset: 4288,
      paddingBits: 0,
    });

    const c0 = main.statements.find((s) => s.name === 'c0')!;
    expect(c0.inputs.get('weight')).toEqual({
      kind: 'ref',
      name: 'W0',
      type: { kind: 'tensor', dtype: 'fp16', shape: [64, 64, 1, 1] },
      constant: true,
    });
    expect(c0.outputTypes).toEqual([{ kind: 'tensor', dtype: 'fp16', shape: [1, 64, 16, 16] }]);

    expect(main.values.get('x')).toMatchObject({ constant: false });
    expect(main.values.get('W0')).toMatchObject({ constant: true });
    expect(main.values.get('W0')!.data).toBeUndefined();
    expect(main.values.get('c_strides')).toMatchObject({ constant: true, data: [1, 1] });
    expect(main.values.get('q_dtype')).toMatchObject({ data: ['int8'] });
    expect(main.values.get('c0')).toMatchObject({ constant: false });
  });

  it('gives fp16 constants the value fp16 rounding denotes (case D: 0.176777 -> 0.1767578125)', () => {
    const validated = validateProgram(parseProgram(corpusCase('D-').text));
    expect(validated.main.values.get('scv')!.data).toEqual([0.1767578125]);
  });

  it("takes concat's tuple items as resolved references (case F)", () => {
    const validated = validateProgram(parseProgram(corpusCase('F-').text));
    const concat = validated.main.statements.find((s) => s.name === 'cat')!;
    const values = concat.inputs.get('values')!;
    expect(
      values.kind === 'tuple' ? values.items.map((item) => (item.kind === 'ref' ? item.name : '?')) : [],
    ).toEqual(['y', 'h1', 'h3']);
  });
});

describe('MilValidationError on malformed programs', () => {
  it('unknown op', () => {
    const text = program(['tensor<fp16, [1, 4, 1, 8]> y = frobnicate(x = x)[name = string("fy")];']);
    const error = validationErrorOf(text);
    expect(error).toBeInstanceOf(MilUnknownOpError);
    expectError(error, { code: 'unknown-op', line: 4, column: 9, op: 'frobnicate', statement: 'fy' });
    expect(error.message).toBe(
      [
        "frobnicate 'fy': unknown op 'frobnicate' (expected an op with a schema (see OP_SCHEMAS), found frobnicate) at line 4, column 9",
        '4 |         tensor<fp16, [1, 4, 1, 8]> y = frobnicate(x = x)[name = string("fy")];',
        '  |         ^',
      ].join('\n'),
    );
  });

  it('wrong arity: an unknown parameter', () => {
    const text = program(['tensor<fp16, [1, 4, 1, 8]> y = relu(x = x, alpha = x)[name = string("y")];']);
    const error = validationErrorOf(text);
    expectError(error, {
      code: 'unknown-param',
      line: 4,
      column: columnOf(text, 4, 'x)'),
      op: 'relu',
      statement: 'y',
    });
    expect(error.expected).toBe('one of x');
    expect(error.found).toBe('alpha');
  });

  it('wrong arity: an unknown attribute', () => {
    const text = program(['tensor<fp16, [1, 4, 1, 8]> y = relu(x = x)[name = string("y"), val = int32(1)];']);
    expectError(validationErrorOf(text), {
      code: 'unknown-param',
      line: 4,
      column: columnOf(text, 4, 'int32(1)'),
    });
  });

  it('missing required parameter', () => {
    const text = program(['tensor<fp16, [1, 4, 1, 8]> y = mul(x = x)[name = string("y")];']);
    const error = validationErrorOf(text);
    expectError(error, { code: 'missing-param', line: 4, column: 9, op: 'mul', statement: 'y' });
    expect(error.reason).toBe("missing required parameter 'y'");
  });

  it('declared shape differs from the inferred one', () => {
    const text = program(['tensor<fp16, [1, 4, 1, 9]> y = relu(x = x)[name = string("r")];']);
    const error = validationErrorOf(text);
    expectError(error, { code: 'type-mismatch', line: 4, column: 9, op: 'relu', statement: 'r' });
    expect(error.expected).toBe('tensor<fp16, [1, 4, 1, 8]>');
    expect(error.found).toBe('tensor<fp16, [1, 4, 1, 9]>');
  });

  it('declared dtype differs, on the second output of a split', () => {
    const text = program(
      [
        'int32 ax = const()[name = string("ax"), val = int32(3)];',
        'tensor<fp16, [1, 4, 1, 4]> a, tensor<fp32, [1, 4, 1, 4]> b = split(x = x, num_splits = int32(2), axis = ax)[name = string("s")];',
      ],
      'a',
    );
    const error = validationErrorOf(text);
    expectError(error, {
      code: 'type-mismatch',
      line: 5,
      column: columnOf(text, 5, 'tensor<fp32'),
      op: 'split',
    });
    expect([error.expected, error.found]).toEqual([
      'tensor<fp16, [1, 4, 1, 4]>',
      'tensor<fp32, [1, 4, 1, 4]>',
    ]);
  });

  it('wrong number of declared outputs', () => {
    const text = program(
      [
        'tensor<fp16, [1, 4, 1, 4]> a = split(x = x, num_splits = int32(2), axis = int32(3))[name = string("s")];',
      ],
      'a',
    );
    expectError(validationErrorOf(text), { code: 'output-count', line: 4, column: 9 });
  });

  it('undefined reference, and a reference to a later value', () => {
    const undefinedText = program(['tensor<fp16, [1, 4, 1, 8]> y = relu(x = z)[name = string("y")];']);
    const error = validationErrorOf(undefinedText);
    expectError(error, { code: 'undefined-ref', line: 4, column: columnOf(undefinedText, 4, 'z)') });
    expect(error.reason).toBe("'z' is not defined");

    const laterText = program([
      'tensor<fp16, [1, 4, 1, 8]> y = relu(x = w)[name = string("y")];',
      'tensor<fp16, [1, 4, 1, 8]> w = relu(x = x)[name = string("w")];',
    ]);
    const later = validationErrorOf(laterText);
    expectError(later, { code: 'undefined-ref', line: 4, column: columnOf(laterText, 4, 'w)') });
    expect(later.reason).toBe("'w' is used before it is defined (at line 5)");
  });

  it('duplicate value name and duplicate op name', () => {
    const valueText = program([
      'tensor<fp16, [1, 4, 1, 8]> y = relu(x = x)[name = string("a")];',
      'tensor<fp16, [1, 4, 1, 8]> y = relu(x = x)[name = string("b")];',
    ]);
    expectError(validationErrorOf(valueText), { code: 'duplicate-name', line: 5, column: 9 });
    const shadowText = program(['tensor<fp16, [1, 4, 1, 8]> x = relu(x = x)[name = string("a")];'], 'x');
    expectError(validationErrorOf(shadowText), { code: 'duplicate-name', line: 4, column: 9 });
    const opText = program([
      'tensor<fp16, [1, 4, 1, 8]> y = relu(x = x)[name = string("a")];',
      'tensor<fp16, [1, 4, 1, 8]> z = relu(x = y)[name = string("a")];',
    ]);
    expectError(validationErrorOf(opText), {
      code: 'duplicate-name',
      line: 5,
      column: columnOf(opText, 5, 'string("a")'),
    });
  });

  it('returned value not defined', () => {
    const text = program(['tensor<fp16, [1, 4, 1, 8]> y = relu(x = x)[name = string("y")];'], 'y, nope');
    expectError(validationErrorOf(text), { code: 'return', line: 5, column: columnOf(text, 5, 'nope') });
  });

  it('runtime value where a constant is required', () => {
    const text = program(
      ['tensor<fp16, [1, 4, 8, 1]> y = transpose(x = x, perm = p)[name = string("y")];'],
      'y',
      'tensor<fp16, [1, 4, 1, 8]> x, tensor<int32, [4]> p',
    );
    const error = validationErrorOf(text);
    expectError(error, { code: 'not-constant', line: 4, column: columnOf(text, 4, 'p)') });
    expect(error.found).toBe("runtime value 'p'");
  });

  it('unsupported dtype', () => {
    const text = program(
      ['tensor<int32, [4]> y = relu(x = i)[name = string("y")];'],
      'y',
      'tensor<int32, [4]> i',
    );
    const error = validationErrorOf(text);
    expectError(error, { code: 'dtype', line: 4, column: columnOf(text, 4, 'i)') });
    expect([error.expected, error.found]).toEqual(['fp16 | fp32', 'int32']);
  });

  it('tuple where a single value goes, and the reverse', () => {
    const tupleText = program(['tensor<fp16, [1, 4, 1, 8]> y = relu(x = (x))[name = string("y")];']);
    expectError(validationErrorOf(tupleText), {
      code: 'param-kind',
      line: 4,
      column: columnOf(tupleText, 4, '(x)'),
    });
    const singleText = program([
      'tensor<fp16, [1, 4, 1, 8]> y = concat(values = x, axis = int32(1))[name = string("y")];',
    ]);
    expectError(validationErrorOf(singleText), {
      code: 'param-kind',
      line: 4,
      column: columnOf(singleText, 4, 'x, axis'),
    });
  });

  it('op newer than the opset', () => {
    const text = program(
      [
        'tensor<int8, [1, 4, 1, 8]> y = quantize(input = x, scale = fp16(0.5), output_dtype = string("int8"))[name = string("y")];',
      ],
      'y',
      'tensor<fp16, [1, 4, 1, 8]> x',
      'ios16',
    );
    const error = validationErrorOf(text);
    expectError(error, { code: 'opset', line: 4, column: 9, op: 'quantize' });
    expect([error.expected, error.found]).toEqual(['ios17+', 'ios16']);
  });

  it('const val given as a reference', () => {
    const text = program(['tensor<fp16, [1, 4, 1, 8]> y = const(val = x)[name = string("y")];']);
    expectError(validationErrorOf(text), { code: 'param-kind', line: 4, column: columnOf(text, 4, 'x)') });
  });

  it('const whose declared type differs from its value', () => {
    const text = program([
      'tensor<int32, [3]> y = const()[name = string("y"), val = tensor<int32, [2]>([1, 2])];',
    ]);
    const error = validationErrorOf(text);
    expectError(error, { code: 'type-mismatch', line: 4, column: 9, op: 'const' });
    expect([error.expected, error.found]).toEqual(['tensor<int32, [2]>', 'tensor<int32, [3]>']);
  });

  it('the same parameter as argument and attribute', () => {
    const text = program([
      'tensor<fp16, [1, 4, 1, 8]> y = softmax(x = x, axis = int32(1))[name = string("y"), axis = int32(1)];',
    ]);
    expectError(validationErrorOf(text), {
      code: 'duplicate-param',
      line: 4,
      column: columnOf(text, 4, 'int32(1)]'),
    });
  });

  it('a program without functions', () => {
    const error = validationErrorOf('program(1.3)\n{\n}\n');
    expectError(error, { code: 'no-function', line: 1, column: 1 });
  });
});

describe('MilValidationError on weight blobs', () => {
  const blobStatement = (shape: string, path = 'w.bin', offset = 64, dtype = 'fp16') =>
    `tensor<${dtype}, ${shape}> W = const()[name = string("W"), val = tensor<${dtype}, ${shape}>(BLOBFILE(path = string("@model_path/weights/${path}"), offset = uint64(${offset})))];`;
  const text = (statement: string) => program([statement], 'W');
  const weights = (bytes: Uint8Array) => new Map([['@model_path/weights/w.bin', bytes]]);

  it('accepts a well-formed blob and records it', () => {
    const source = text(blobStatement('[2, 4]'));
    const validated = validateProgram(parseProgram(source), { weights: weights(fp16Blob(8)) });
    expect([...validated.blobs.values()]).toEqual([
      { offset: 64, dtype: 'fp16', byteSize: 16, payloadOffset: 128, paddingBits: 0 },
    ]);
  });

  it('missing blob file', () => {
    const source = text(blobStatement('[2, 4]', 'other.bin'));
    const error = validationErrorOf(source, { weights: weights(fp16Blob(8)) });
    expectError(error, {
      code: 'missing-blob',
      line: 4,
      column: columnOf(source, 4, 'tensor', 10),
      op: 'const',
      statement: 'W',
    });
    expect(error.found).toBe('@model_path/weights/w.bin');
  });

  it('bad sentinel', () => {
    const bytes = fp16Blob(8);
    bytes[64] = 0;
    const source = text(blobStatement('[2, 4]'));
    const error = validationErrorOf(source, { weights: weights(bytes) });
    expectError(error, { code: 'bad-blob', line: 4, column: columnOf(source, 4, 'tensor', 10) });
    expect([error.expected, error.found]).toEqual(['record sentinel 0xDEADBEEF', '0xDEADBE00']);
  });

  it('unknown dtype code', () => {
    const bytes = fp16Blob(8);
    bytes[68] = 99;
    const error = validationErrorOf(text(blobStatement('[2, 4]')), { weights: weights(bytes) });
    expect(error.code).toBe('bad-blob');
    expect(error.found).toBe('code 99');
  });

  it('offset out of range', () => {
    const source = text(blobStatement('[2, 4]', 'w.bin', 192));
    const error = validationErrorOf(source, { weights: weights(fp16Blob(8)) });
    expectError(error, { code: 'bad-blob', line: 4, column: columnOf(source, 4, 'tensor', 10) });
    expect(error.reason).toMatch(/at offset 192/);
  });

  it('payload size differs from the declared shape', () => {
    const source = text(blobStatement('[1, 4]'));
    const error = validationErrorOf(source, { weights: weights(fp16Blob(8)) });
    expectError(error, { code: 'bad-blob', line: 4, column: columnOf(source, 4, 'tensor', 10) });
    expect([error.expected, error.found]).toEqual(['8 bytes (4 x fp16)', '16 bytes']);
  });

  it('record dtype differs from the declared dtype', () => {
    const bytes = writeBlobFile([{ dtype: 'int8', data: new Int8Array(16) }]).bytes;
    const error = validationErrorOf(text(blobStatement('[2, 4]')), { weights: weights(bytes) });
    expect([error.code, error.expected, error.found]).toEqual(['bad-blob', 'fp16', 'int8']);
  });

  it('checks BLOBFILEs inside attribute-only ops (constexpr_affine_dequantize)', () => {
    const source = program(
      [
        'tensor<fp16, [2, 4]> W = constexpr_affine_dequantize()[axis = int32(0), name = string("W"), quantized_data = tensor<int8, [2, 4]>(BLOBFILE(path = string("@model_path/weights/w.bin"), offset = uint64(64))), scale = fp16(0.5), zero_point = int8(0)];',
      ],
      'W',
    );
    const error = validationErrorOf(source, { weights: weights(fp16Blob(8)) });
    expectError(error, { code: 'bad-blob', line: 4, column: columnOf(source, 4, 'tensor<int8') });
    const ok = writeBlobFile([{ dtype: 'int8', data: new Int8Array(8) }]).bytes;
    expect(validateProgram(parseProgram(source), { weights: weights(ok) }).blobs.size).toBe(1);
  });
});

describe('weight blobs written by other tools', () => {
  // maderix/ANE ane_int8_bench.m: three int8 records in one file with header count 1, dtype code 1,
  // size field = channel count, payload-offset field 0.
  const payloads = [
    Int8Array.from({ length: 8 }, (_, i) => i - 4),
    Int8Array.from({ length: 8 }, (_, i) => 2 * i),
    Int8Array.from({ length: 4 }, (_, i) => -i),
  ];
  const { bytes, offsets } = maderixBenchFile(payloads, [2, 2, 1]);
  const quantized = (name: string, shape: string, offset: number) =>
    `tensor<fp16, ${shape}> ${name} = constexpr_affine_dequantize()[axis = int32(0), name = string("${name}"), quantized_data = tensor<int8, ${shape}>(BLOBFILE(path = string("@model_path/weights/q.bin"), offset = uint64(${offset}))), scale = fp16(0.5), zero_point = int8(0)];`;
  const source = program(
    [
      quantized('A', '[2, 4]', offsets[0]!),
      quantized('B', '[2, 4]', offsets[1]!),
      quantized('C', '[1, 4]', offsets[2]!),
    ],
    'A',
  );

  it('are accepted with a warning naming each field, and read at record + 64 with the declared dtype', () => {
    const validated = validateProgram(parseProgram(source), {
      weights: new Map([['@model_path/weights/q.bin', bytes]]),
    });
    expect([...validated.blobs.values()]).toEqual([
      { offset: 64, dtype: 'int8', byteSize: 8, payloadOffset: 128, paddingBits: 0 },
      { offset: 192, dtype: 'int8', byteSize: 8, payloadOffset: 256, paddingBits: 0 },
      { offset: 320, dtype: 'int8', byteSize: 4, payloadOffset: 384, paddingBits: 0 },
    ]);
    expect(validated.warnings.map((w) => `${w.offset} ${w.field}`)).toEqual([
      '64 payload offset',
      '64 dtype code',
      '64 payload size',
      '192 payload offset',
      '192 dtype code',
      '192 payload size',
      '320 payload offset',
      '320 dtype code',
      '320 payload size',
      '0 tensor count',
    ]);
    expect(validated.warnings[0]!.message).toMatch(
      /^BLOBFILE @model_path\/weights\/q.bin at offset 64: payload offset field \(byte 80\) is 0, expected 128 \(record \+ 64\); .*what the ANE reads from such a record is unverified \(rule blob-offset\)/,
    );
    expect(validated.warnings.at(-1)!.message).toMatch(
      /^weight file @model_path\/weights\/q.bin: tensor count field \(byte 0\) is 1, the program reads 3 records from it/,
    );
    expect(validated.warnings[0]!.position.line).toBe(4);
  });

  it('our own well-formed blobs give no warning', () => {
    const ours = writeBlobFile(payloads.map((data) => ({ dtype: 'int8' as const, data })));
    const text = program(
      [
        quantized('A', '[2, 4]', ours.offsets[0]!),
        quantized('B', '[2, 4]', ours.offsets[1]!),
        quantized('C', '[1, 4]', ours.offsets[2]!),
      ],
      'A',
    );
    const validated = validateProgram(parseProgram(text), {
      weights: new Map([['@model_path/weights/q.bin', ours.bytes]]),
    });
    expect(validated.warnings).toEqual([]);
  });
});
