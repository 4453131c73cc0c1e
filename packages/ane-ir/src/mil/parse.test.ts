import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CONFORMANCE_DIR } from '../../../../tools/testing/corpus';
import type { BlobValue, MilProgram, OpStatement, ScalarValue, TensorValue, TupleArgument } from './ast';
import { MilError, MilLimitError, MilSyntaxError } from './errors';
import { parseNumberText } from './lexer';
import { MAX_MIL_TEXT_LENGTH, parseProgram } from './parse';
import { printProgram } from './print';
import { validateProgram } from './validate';

const corpus = readdirSync(CONFORMANCE_DIR, { withFileTypes: true })
  .filter((entry) => entry.isDirectory())
  .map((entry) => ({
    id: entry.name,
    text: readFileSync(join(CONFORMANCE_DIR, entry.name, 'program.mil'), 'utf8'),
    weights: weightsOf(entry.name),
  }));

function weightsOf(caseDir: string): Map<string, Uint8Array> {
  const spec = JSON.parse(readFileSync(join(CONFORMANCE_DIR, caseDir, 'case.json'), 'utf8')) as {
    weights: { key: string; file: string }[];
  };
  return new Map(
    spec.weights.map((w) => [w.key, new Uint8Array(readFileSync(join(CONFORMANCE_DIR, caseDir, w.file)))]),
  );
}

function body(program: MilProgram): readonly OpStatement[] {
  return program.functions[0]!.body;
}

function statementByOutput(program: MilProgram, name: string): OpStatement {
  const found = body(program).find((s) => s.outputs.some((o) => o.name === name));
  if (found === undefined) throw new Error(`no statement defines ${name}`);
  return found;
}

/** Wraps statements in the corpus header and `func main<ios18>(params)`. */
function program(params: string, statements: string[], returns: string): string {
  return [
    'program(1.3)',
    '{',
    `    func main<ios18>(${params}) {`,
    ...statements.map((s) => `        ${s}`),
    `    } -> (${returns});`,
    '}',
    '',
  ].join('\n');
}

function syntaxErrorOf(text: string): MilSyntaxError {
  try {
    parseProgram(text);
  } catch (error) {
    if (error instanceof MilSyntaxError) return error;
    throw error;
  }
  throw new Error('expected a MilSyntaxError');
}

describe('parseProgram on the conformance corpus', () => {
  it('finds all 12 cases', () => {
    expect(corpus.map((c) => c.id)).toHaveLength(12);
  });

  it.each(corpus.map((c) => [c.id, c] as const))('parses %s', (_id, { text }) => {
    const ast = parseProgram(text);
    expect(ast.version).toBe('1.3');
    expect(ast.buildInfo?.entries).toEqual([
      { key: 'coremlc-component-MIL', value: '3510.2.1' },
      { key: 'coremlc-version', value: '3505.4.1' },
      { key: 'coremltools-component-milinternal', value: '' },
      { key: 'coremltools-version', value: '9.0' },
    ]);
    expect(ast.functions).toHaveLength(1);
    expect(ast.functions[0]!.name).toBe('main');
    expect(ast.functions[0]!.opset).toBe('ios18');
    // One statement per line ending in ';' inside the function.
    const statementLines = text.split('\n').filter((line) => /^ {8}\S.*;$/.test(line));
    expect(body(ast)).toHaveLength(statementLines.length);
  });

  it('reads case A statement by statement', () => {
    const ast = parseProgram(corpus.find((c) => c.id.startsWith('A-'))!.text);
    const func = ast.functions[0]!;
    expect(func.params).toEqual([
      {
        name: 'x',
        type: { kind: 'tensor', dtype: 'fp16', shape: [1, 64, 1, 32] },
        position: { line: 4, column: 22 },
      },
    ]);
    expect(func.returns).toEqual([{ name: 'out', position: { line: 12, column: 11 } }]);

    const pt = statementByOutput(ast, 'pt');
    expect(pt.op).toBe('const');
    expect(pt.position).toEqual({ line: 5, column: 9 });
    expect(pt.outputs[0]!.type).toEqual({ kind: 'scalar', dtype: 'string' });
    expect(pt.args.size).toBe(0);
    expect(pt.attributes.get('val')).toMatchObject({
      kind: 'scalar',
      value: 'valid',
      type: { kind: 'scalar', dtype: 'string' },
    });

    const st = statementByOutput(ast, 'st').attributes.get('val') as TensorValue;
    expect(st).toMatchObject({
      kind: 'tensor',
      type: { kind: 'tensor', dtype: 'int32', shape: [2] },
      data: [1, 1],
    });

    const weight = statementByOutput(ast, 'W').attributes.get('val') as BlobValue;
    expect(weight).toMatchObject({
      kind: 'blob',
      type: { kind: 'tensor', dtype: 'fp16', shape: [128, 64, 1, 1] },
      path: '@model_path/weights/w.bin',
      offset: 64,
    });

    const conv = statementByOutput(ast, 'out');
    expect(conv.op).toBe('conv');
    expect([...conv.args.keys()]).toEqual([
      'dilations',
      'groups',
      'pad',
      'pad_type',
      'strides',
      'weight',
      'x',
    ]);
    expect(conv.args.get('weight')).toEqual({ kind: 'ref', name: 'W', position: { line: 11, column: 107 } });
    expect(conv.attributes.get('name')).toMatchObject({ kind: 'scalar', value: 'cv' });
  });

  it('reads the attribute-only constexpr op and the hex-float scalars of case E', () => {
    const ast = parseProgram(corpus.find((c) => c.id.startsWith('E-'))!.text);
    expect((statementByOutput(ast, 'q_scale').attributes.get('val') as ScalarValue).value).toBe(0.125);
    const w1 = statementByOutput(ast, 'W1');
    expect(w1.op).toBe('constexpr_affine_dequantize');
    expect(w1.args.size).toBe(0);
    expect([...w1.attributes.keys()]).toEqual(['axis', 'name', 'quantized_data', 'scale', 'zero_point']);
    expect(w1.attributes.get('quantized_data')).toMatchObject({
      kind: 'blob',
      type: { dtype: 'int8', shape: [64, 64, 1, 1] },
      offset: 4224,
    });
    expect(w1.attributes.get('zero_point')).toMatchObject({
      type: { kind: 'scalar', dtype: 'int8' },
      value: 0,
    });
  });

  it("reads concat's tuple argument in case F", () => {
    const ast = parseProgram(corpus.find((c) => c.id.startsWith('F-'))!.text);
    const values = statementByOutput(ast, 'out').args.get('values') as TupleArgument;
    expect(values.kind).toBe('tuple');
    expect(values.items.map((item) => (item.kind === 'ref' ? item.name : '?'))).toEqual(['y', 'h1', 'h3']);
  });
});

describe('parseProgram on the wider dialect', () => {
  it('reads program(1.0) with rank-0 tensor scalars and the 1.0 buildInfo type', () => {
    const text = [
      'program(1.0)',
      '[buildInfo = dict<tensor<string, []>, tensor<string, []>>({{"coremltools-version", "8.1"}})]',
      '{',
      '    func main<ios16>(tensor<fp16, [1, 10]> x) {',
      '        tensor<int32, []> ax = const()[name = tensor<string, []>("ax"), val = tensor<int32, []>(-1)];',
      '        tensor<fp16, [1, 10]> y = softmax(axis = ax, x = x)[name = tensor<string, []>("y")];',
      '    } -> (y);',
      '}',
    ].join('\n');
    const ast = parseProgram(text);
    expect(ast.version).toBe('1.0');
    expect(ast.buildInfo?.keyType).toEqual({ kind: 'tensor', dtype: 'string', shape: [] });
    const ax = statementByOutput(ast, 'ax');
    expect(ax.outputs[0]!.type).toEqual({ kind: 'tensor', dtype: 'int32', shape: [] });
    expect(ax.attributes.get('val')).toMatchObject({
      kind: 'scalar',
      type: { kind: 'tensor', shape: [] },
      value: -1,
    });
    expect(ax.attributes.get('name')).toMatchObject({ kind: 'scalar', value: 'ax' });
  });

  it('reads numbers: hex floats, signs, exponents, inf and nan', () => {
    const values = [
      'fp16(0x1p-3)',
      'fp32(0x1.8p+1)',
      'fp32(-0x1.0P4)',
      'fp16(-0.5)',
      'fp16(1e-5)',
      'fp32(2.5E+3)',
      'fp16(.25)',
      'fp16(-inf)',
      'fp32(nan)',
      'int32(-7)',
      'int8(0x7f)',
      'uint64(18446744073709551615)',
      'fp16(- 1)',
    ];
    // `fp16(0x1p-3)` declares `fp16 c0`: the scalar type is the literal's dtype.
    const text = program(
      '',
      values.map((value, i) => `${value.slice(0, value.indexOf('('))} c${i} = const()[val = ${value}];`),
      'c0',
    );
    const ast = parseProgram(text);
    const parsed = body(ast).map((s) => (s.attributes.get('val') as ScalarValue).value);
    expect(parsed).toEqual([
      0.125,
      3,
      -16,
      -0.5,
      1e-5,
      2500,
      0.25,
      Number.NEGATIVE_INFINITY,
      Number.NaN,
      -7,
      127,
      2 ** 64,
      -1,
    ]);
  });

  it('parses hex-float text exactly', () => {
    expect(parseNumberText('0x1p-3')).toEqual({ value: 0.125, integral: false });
    expect(parseNumberText('0x1.8p+1')).toEqual({ value: 3, integral: false });
    expect(parseNumberText('0x.8p1')).toEqual({ value: 1, integral: false });
    expect(parseNumberText('0x1.fffffffffffffp+1023')).toEqual({ value: Number.MAX_VALUE, integral: false });
    expect(parseNumberText('0x1p-1074')).toEqual({ value: 5e-324, integral: false });
    expect(parseNumberText('0x10')).toEqual({ value: 16, integral: true });
    expect(parseNumberText('0x')).toBeUndefined();
    expect(parseNumberText('1.2.3')).toBeUndefined();
  });

  it('reads inline literals, bare bools, and free whitespace and comments', () => {
    const text = `program(1.3) { // header and body on one line
      func main<ios18>( tensor<fp16,[2,3]> x ) {
        /* a block
           comment */
        tensor<fp16,[2,3]>   y=add( x=x ,y=fp16( 1.0 ) ) [ name=string( "y" ) ] ;
        tensor<fp16, [2, 2]> z = matmul(x = x, y = x, transpose_y = true)[name = string("z")];
        tensor<fp16, [2, 2]> m = mul(x = z, y = tensor<fp16, [2, 2]>([[1, -2], [3e0, 0x1p2]]))[name = string("m")];
      } -> (y, z, m)
    }`;
    const ast = parseProgram(text);
    const [y, z, m] = body(ast);
    expect(y!.args.get('y')).toMatchObject({
      kind: 'scalar',
      type: { kind: 'scalar', dtype: 'fp16' },
      value: 1,
    });
    expect(y!.position).toEqual({ line: 5, column: 9 });
    expect(z!.args.get('transpose_y')).toMatchObject({
      kind: 'scalar',
      type: { dtype: 'bool' },
      value: true,
    });
    expect(m!.args.get('y')).toMatchObject({ kind: 'tensor', data: [1, -2, 3, 4] });
    expect(ast.functions[0]!.returns.map((r) => r.name)).toEqual(['y', 'z', 'm']);
  });

  it('reads several typed outputs, with and without parentheses', () => {
    const outputs = (line: string) =>
      body(parseProgram(program('tensor<fp16, [1, 4]> x', [line], 'a')))[0]!.outputs.map((o) => [
        o.name,
        o.type,
      ]);
    const expected = [
      ['a', { kind: 'tensor', dtype: 'fp16', shape: [1, 2] }],
      ['b', { kind: 'tensor', dtype: 'fp16', shape: [1, 2] }],
    ];
    expect(
      outputs(
        '(tensor<fp16, [1, 2]> a, tensor<fp16, [1, 2]> b) = split(x = x, num_splits = int32(2), axis = int32(1));',
      ),
    ).toEqual(expected);
    expect(
      outputs(
        'tensor<fp16, [1, 2]> a, tensor<fp16, [1, 2]> b = split(x = x, num_splits = int32(2), axis = int32(1))[name = string("s")];',
      ),
    ).toEqual(expected);
  });

  it('reads string escapes and several functions', () => {
    const text = [
      'program(1.3)',
      '{',
      '    func main<ios18>(tensor<fp16, [1]> x) {',
      '        string s = const()[name = string("quote\\"back\\\\slash\\n"), val = string("\\u0041")];',
      '    } -> (x);',
      '    func other<ios17>(tensor<fp32, [2]> a) {',
      '    } -> (a);',
      '}',
    ].join('\n');
    const ast = parseProgram(text);
    expect(ast.functions.map((f) => `${f.name}<${f.opset}>`)).toEqual(['main<ios18>', 'other<ios17>']);
    const s = body(ast)[0]!;
    expect(s.attributes.get('name')).toMatchObject({ value: 'quote"back\\slash\n' });
    expect(s.attributes.get('val')).toMatchObject({ value: 'A' });
  });
});

describe('MilSyntaxError', () => {
  it('reports line, column and a caret excerpt', () => {
    const text = program(
      'tensor<fp16, [1]> x',
      ['tensor<fp16, [1]> y = relu(x = x)[name = string("y")]'],
      'y',
    );
    const error = syntaxErrorOf(text);
    expect(error).toBeInstanceOf(MilError);
    expect(error.name).toBe('MilSyntaxError');
    expect([error.line, error.column]).toEqual([5, 5]);
    expect(error.message).toBe(
      ["expected ';', found '}' (line 5, column 5)", '5 |     } -> (y);', '  |     ^'].join('\n'),
    );
  });

  const cases: [string, string, number, number, RegExp][] = [
    [
      'truncated',
      'program(1.3)\n{\n    func main<ios18>(tensor<fp16, [1]> x) {\n        tensor<fp16, [1]> y = relu(x',
      4,
      37,
      /expected '=', found end of input/,
    ],
    ['empty', '', 1, 1, /expected 'program', found end of input/],
    [
      'unterminated string',
      'program(1.3)\n[buildInfo = dict<string, string>({{"k", "v}})]',
      2,
      42,
      /unterminated string/,
    ],
    [
      'unknown character',
      'program(1.3) {\n  func main<ios18>() {\n    int32 a = const()[val = int32(1)] $;',
      3,
      39,
      /unexpected character "\$"/,
    ],
    [
      'int8 out of range',
      program('', ['int8 a = const()[val = int8(300)];'], 'a'),
      4,
      37,
      /300 is out of range for int8/,
    ],
    [
      'fractional integer',
      program('', ['int32 a = const()[val = int32(1.5)];'], 'a'),
      4,
      39,
      /int32 literal must be an integer/,
    ],
    [
      'literal element count',
      program('', ['tensor<int32, [3]> a = const()[val = tensor<int32, [3]>([1, 2])];'], 'a'),
      4,
      65,
      /has 2 elements, expected 3/,
    ],
    ['symbolic dimension', program('tensor<fp16, [1, is0]> x', [], 'x'), 3, 39, /symbolic dimension 'is0'/],
    [
      'parameter given twice',
      program('tensor<fp16, [1]> x', ['tensor<fp16, [1]> y = add(x = x, x = x);'], 'y'),
      4,
      42,
      /parameter 'x' is given twice/,
    ],
    [
      'untyped literal',
      program('tensor<fp16, [1]> x', ['tensor<fp16, [1]> y = add(x = x, y = 1);'], 'y'),
      4,
      46,
      /expected a typed literal/,
    ],
    ['unknown type', program('tensor<fp17, [1]> x', [], 'x'), 3, 29, /unknown element type 'fp17'/],
    [
      'malformed number',
      program('', ['fp16 a = const()[val = fp16(1.2.3)];'], 'a'),
      4,
      37,
      /malformed number '1.2.3'/,
    ],
    ['trailing text', `${program('', [], '')}extra`, 6, 1, /expected end of input after the program/],
    [
      'deep list',
      program(
        '',
        [`tensor<int32, [1]> a = const()[val = tensor<int32, [1]>(${'['.repeat(40)}1${']'.repeat(40)})];`],
        'a',
      ),
      4,
      97,
      /nests deeper than 32/,
    ],
  ];

  it.each(cases)('%s', (_name, text, line, column, message) => {
    const error = syntaxErrorOf(text);
    expect(error.reason).toMatch(message);
    expect([error.line, error.column]).toEqual([line, column]);
  });
});

describe('resource limits and what Apple refuses', () => {
  it('refuses text longer than the limit with MilLimitError naming the size and the limit, before tokenizing', () => {
    const text = program('tensor<fp16, [1, 4, 1, 32]> x', [`// ${'x'.repeat(2000)}`], 'x');
    expect(() => parseProgram(text, { maxTextLength: 1000 })).toThrow(MilLimitError);
    try {
      parseProgram(text, { maxTextLength: 1000 });
    } catch (error) {
      const limit = error as MilLimitError;
      expect([limit.found, limit.limit]).toEqual([text.length, 1000]);
      expect(limit.message).toMatch(/^MIL text length \(characters\) is \d+, above the limit of 1000: /);
    }
    expect(parseProgram(text, { maxTextLength: text.length }).functions).toHaveLength(1);
    expect(MAX_MIL_TEXT_LENGTH).toBe(8 * 2 ** 20);
    // The default applies without options: one character over it is refused, cheaply.
    expect(() => parseProgram(' '.repeat(MAX_MIL_TEXT_LENGTH + 1))).toThrow(MilLimitError);
  });

  it('refuses deeply nested tuples with MilSyntaxError, not a stack overflow', () => {
    const text = program(
      'tensor<fp16, [1, 4, 1, 32]> x',
      [`tensor<fp16, [1, 8, 1, 32]> y = concat(values=${'('.repeat(100000)}x))[name=string("c")];`],
      'y',
    );
    const error = syntaxErrorOf(text);
    expect(error.reason).toBe('tuples cannot be nested');
    // At the second '(', before any recursion.
    expect([error.line, error.column]).toEqual([4, text.split('\n')[3]!.indexOf('((') + 2]);
  });

  it('refuses deeply nested tensor literals with MilSyntaxError', () => {
    const text = program(
      'tensor<fp16, [1, 4, 1, 32]> x',
      [`tensor<fp16, [1]> c = const()[name=string("c"), val=tensor<fp16, [1]>(${'['.repeat(100000)}))];`],
      'x',
    );
    expect(syntaxErrorOf(text).reason).toBe('tensor literal nests deeper than 32 levels');
  });

  it("refuses typed elements such as fp16(0x1p-1) inside a tensor literal, saying Apple's compiler does", () => {
    const text = program(
      'tensor<fp16, [1, 4, 1, 32]> x',
      ['tensor<fp16, [2]> c = const()[name=string("c"), val=tensor<fp16, [2]>([fp16(0x1p-1), 1])];'],
      'x',
    );
    const error = syntaxErrorOf(text);
    expect(error.reason).toMatch(
      /^a tensor literal's elements are bare numbers, not typed scalars such as fp16\(\.\.\.\): Apple's MIL compiler refuses fp16\(0x1p-1\) inside a tensor literal \(seen by mil-hwx-compiler\)/,
    );
    expect(error.column).toBe(text.split('\n')[3]!.indexOf('fp16(0x1p-1)') + 1);
  });
});

describe('parser robustness (property test)', () => {
  // Mutations of the corpus: truncation, byte edits, deletions and duplications of a range.
  const texts = corpus.map((c) => c.text);
  const alphabet = [...'(){}[]<>,;=->"_.0123456789abcxyz \n\t@#$'] as const;
  const mutation = fc.oneof(
    fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
    fc.record({ kind: fc.constant('edit' as const), at: fc.nat(), char: fc.constantFrom(...alphabet) }),
    fc.record({
      kind: fc.constant('byte' as const),
      at: fc.nat(),
      code: fc.integer({ min: 0, max: 0xffff }),
    }),
    fc.record({
      kind: fc.constant('delete' as const),
      at: fc.nat(),
      length: fc.integer({ min: 1, max: 40 }),
    }),
    // Token-level edits keep the text parseable and exercise the validator's shape rules.
    fc.record({
      kind: fc.constant('number' as const),
      at: fc.nat(),
      value: fc.oneof(fc.integer({ min: -3, max: 300 }), fc.constantFrom(2 ** 31, 4224, 65504)),
    }),
    fc.record({ kind: fc.constant('identifier' as const), at: fc.nat(), from: fc.nat() }),
    fc.record({
      kind: fc.constant('duplicate' as const),
      at: fc.nat(),
      length: fc.integer({ min: 1, max: 200 }),
      to: fc.nat(),
    }),
  );
  type Mutation = typeof mutation extends fc.Arbitrary<infer M> ? M : never;

  function mutate(text: string, m: Mutation): string {
    const at = m.at % (text.length + 1);
    switch (m.kind) {
      case 'truncate':
        return text.slice(0, at);
      case 'edit':
        return text.slice(0, at) + m.char + text.slice(at + 1);
      case 'byte':
        return text.slice(0, at) + String.fromCharCode(m.code) + text.slice(at + 1);
      case 'delete':
        return text.slice(0, at) + text.slice(at + m.length);
      case 'number':
        return replaceNth(text, /\b\d+\b/g, m.at, String(m.value));
      case 'identifier': {
        const names = [...text.matchAll(/\b[A-Za-z_][A-Za-z0-9_]*\b/g)].map((match) => match[0]);
        return names.length === 0
          ? text
          : replaceNth(text, /\b[A-Za-z_][A-Za-z0-9_]*\b/g, m.at, names[m.from % names.length]!);
      }
      case 'duplicate': {
        const to = m.to % (text.length + 1);
        return text.slice(0, to) + text.slice(at, at + m.length) + text.slice(to);
      }
    }
  }

  function replaceNth(text: string, pattern: RegExp, n: number, replacement: string): string {
    const matches = [...text.matchAll(pattern)];
    const match = matches[n % Math.max(1, matches.length)];
    if (match === undefined) return text;
    return text.slice(0, match.index) + replacement + text.slice(match.index + match[0].length);
  }

  it('returns an AST or throws MilError, never anything else, and never hangs', () => {
    const outcomes = new Map<string, number>();
    const tally = (outcome: string) => outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
    fc.assert(
      fc.property(
        fc.nat({ max: texts.length - 1 }),
        fc.array(mutation, { minLength: 1, maxLength: 4 }),
        (index, mutations) => {
          const text = mutations.reduce(mutate, texts[index]!);
          const started = performance.now();
          try {
            const ast = parseProgram(text);
            // What parses must print and parse back, and validate or fail with a MilError.
            expect(printProgram(parseProgram(printProgram(ast)))).toBe(printProgram(ast));
            validateProgram(ast, { weights: corpus[index]!.weights, source: text });
            tally('valid');
          } catch (error) {
            if (!(error instanceof MilError)) throw error;
            tally(error.name);
          }
          // Generous: a parse of these ~3 KB inputs takes well under a millisecond.
          expect(performance.now() - started).toBeLessThan(2000);
        },
      ),
      { numRuns: 3000 },
    );
    // The mutations reach all three outcomes, so the validator is exercised too.
    // (about 90% syntax errors, 6% validation errors, 4% valid programs)
    expect(outcomes.get('valid')).toBeGreaterThan(20);
    expect(outcomes.get('MilSyntaxError')).toBeGreaterThan(20);
    expect(outcomes.get('MilValidationError')).toBeGreaterThan(20);
  });

  it('survives arbitrary strings', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 300, unit: 'binary' }), (text) => {
        try {
          parseProgram(text);
        } catch (error) {
          if (!(error instanceof MilError)) throw error;
        }
      }),
      { numRuns: 2000 },
    );
  });
});
