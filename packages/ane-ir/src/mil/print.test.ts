import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CONFORMANCE_DIR } from '../../../../tools/testing/corpus';
import { parseProgram } from './parse';
import { printProgram } from './print';

const corpus = readdirSync(CONFORMANCE_DIR, { withFileTypes: true })
  .filter((entry) => entry.isDirectory())
  .map(
    (entry) => [entry.name, readFileSync(join(CONFORMANCE_DIR, entry.name, 'program.mil'), 'utf8')] as const,
  );

/** The AST as plain data without source positions (Maps become entry lists, NaN a marker). */
function withoutPositions(node: unknown): unknown {
  if (node instanceof Map) return [...node].map(([key, value]) => [key, withoutPositions(value)]);
  if (Array.isArray(node)) return node.map(withoutPositions);
  if (typeof node === 'number' && Number.isNaN(node)) return 'NaN';
  if (Object.is(node, -0)) return '-0';
  if (node !== null && typeof node === 'object') {
    return Object.fromEntries(
      Object.entries(node)
        .filter(([key]) => key !== 'position')
        .map(([key, value]) => [key, withoutPositions(value)]),
    );
  }
  return node;
}

function expectRoundTrip(text: string): string {
  const ast = parseProgram(text);
  const printed = printProgram(ast);
  expect(withoutPositions(parseProgram(printed))).toEqual(withoutPositions(ast));
  expect(printProgram(parseProgram(printed))).toBe(printed);
  return printed;
}

describe('printProgram', () => {
  it.each(corpus)('round-trips %s', (_id, text) => {
    expectRoundTrip(text);
  });

  it('prints case E exactly as written, except hex floats in decimal', () => {
    const text = corpus.find(([id]) => id.startsWith('E-'))![1];
    expect(printProgram(parseProgram(text))).toBe(text.replaceAll('0x1p-3', '0.125'));
  });

  it('prints the corpus spelling: 4-space indent, spaced keys, args then attributes', () => {
    const text = corpus.find(([id]) => id.startsWith('A-'))![1];
    const lines = printProgram(parseProgram(text)).split('\n');
    expect(lines.slice(0, 4)).toEqual([
      'program(1.3)',
      '[buildInfo = dict<string, string>({{"coremlc-component-MIL", "3510.2.1"}, {"coremlc-version", "3505.4.1"}, {"coremltools-component-milinternal", ""}, {"coremltools-version", "9.0"}})]',
      '{',
      '    func main<ios18>(tensor<fp16, [1, 64, 1, 32]> x) {',
    ]);
    expect(lines[5]).toBe(
      '        tensor<int32, [2]> st = const()[name = string("st"), val = tensor<int32, [2]>([1, 1])];',
    );
    expect(lines[9]).toBe(
      '        tensor<fp16, [128, 64, 1, 1]> W = const()[name = string("W"), val = tensor<fp16, [128, 64, 1, 1]>(BLOBFILE(path = string("@model_path/weights/w.bin"), offset = uint64(64)))];',
    );
    expect(lines[10]).toBe(
      '        tensor<fp16, [1, 128, 1, 32]> out = conv(dilations = dl, groups = gr, pad = pd, pad_type = pt, strides = st, weight = W, x = x)[name = string("cv")];',
    );
    expect(lines.slice(11)).toEqual(['    } -> (out);', '}', '']);
  });

  it('round-trips program(1.0) scalars, special numbers, escapes, tuples and several outputs', () => {
    const text = [
      'program(1.0)',
      '[buildInfo = dict<tensor<string, []>, tensor<string, []>>({})]',
      '{',
      '    func main<ios16>(tensor<fp32, [2, 4]> x, tensor<fp32, [2, 4]> w) {',
      '        tensor<fp32, []> a = const()[name = tensor<string, []>("a\\"\\\\\\n\\u0001"), val = tensor<fp32, []>(-0)];',
      '        tensor<fp32, [5]> b = const()[val = tensor<fp32, [5]>([inf, -inf, nan, 1e-45, 0x1.8p+1])];',
      '        tensor<fp16, [2]> c = const()[val = tensor<fp16, [2]>(BLOBFILE(path = tensor<string, []>("@model_path/weights/c.bin"), offset = tensor<uint64, []>(128)))];',
      '        tensor<fp32, [2, 8]> d = concat(values = (x, w), axis = int32(1), interleave = false);',
      '        (tensor<fp32, [2, 2]> e, tensor<fp32, [2, 6]> f) = split(x = d, split_sizes = tensor<int32, [2]>([2, 6]), axis = int32(-1));',
      '        tensor<bool, [2]> g = const()[val = tensor<bool, [2]>([true, false])];',
      '    } -> (e, f);',
      '    func empty() {',
      '    } -> ();',
      '}',
    ].join('\n');
    const printed = expectRoundTrip(text);
    expect(printed).toContain('val = tensor<fp32, []>(-0)');
    expect(printed).toContain('tensor<fp32, [5]>([inf, -inf, nan, 1e-45, 3])');
    expect(printed).toContain('name = tensor<string, []>("a\\"\\\\\\n\\u0001")');
    expect(printed).toContain(
      'BLOBFILE(path = tensor<string, []>("@model_path/weights/c.bin"), offset = tensor<uint64, []>(128))',
    );
    expect(printed).toContain('tensor<fp32, [2, 2]> e, tensor<fp32, [2, 6]> f = split(');
    expect(printed).toContain('interleave = bool(false)');
    expect(printed).toContain('    func empty() {\n    } -> ();');
  });

  it('keeps the written fp16 number (0.176777), not its rounded value', () => {
    const text = corpus.find(([id]) => id.startsWith('D-'))![1];
    expect(printProgram(parseProgram(text))).toContain('val = fp16(0.176777)');
  });
});
