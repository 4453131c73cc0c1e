import { describe, expect, it } from 'vitest';
import {
  formatSourceExcerpt,
  MilError,
  MilSyntaxError,
  MilUnknownOpError,
  MilValidationError,
} from './errors';

describe('MIL errors', () => {
  it('form one hierarchy under MilError', () => {
    const syntax = new MilSyntaxError('expected x', 'abc', { line: 1, column: 2 });
    const unknown = new MilUnknownOpError('unknown op', { code: 'unknown-op', op: 'foo' });
    expect(syntax).toBeInstanceOf(MilError);
    expect(unknown).toBeInstanceOf(MilValidationError);
    expect(unknown).toBeInstanceOf(MilError);
    expect([syntax.name, unknown.name]).toEqual(['MilSyntaxError', 'MilUnknownOpError']);
  });

  it('put the caret under the column, keeping tabs so it lines up', () => {
    expect(formatSourceExcerpt('first\n\tx = y;\n', { line: 2, column: 6 })).toBe(
      '2 | \tx = y;\n  | \t    ^',
    );
  });

  it('cut very long lines to a window around the caret', () => {
    const line = `${'a'.repeat(500)}X${'b'.repeat(500)}`;
    const excerpt = formatSourceExcerpt(line, { line: 1, column: 501 });
    const [text, caret] = excerpt.split('\n') as [string, string];
    expect(text).toBe(`1 | ...${'a'.repeat(100)}X${'b'.repeat(99)}...`);
    expect(caret.indexOf('^')).toBe(text.indexOf('X'));
  });

  it('point past the end of a line for an error at end of input', () => {
    expect(formatSourceExcerpt('ab', { line: 1, column: 3 })).toBe('1 | ab\n  |   ^');
  });

  it('say op, statement, expected, found and where in validation messages', () => {
    const error = new MilValidationError('declared type does not match', {
      code: 'type-mismatch',
      op: 'relu',
      statement: 'r',
      position: { line: 2, column: 3 },
      expected: 'fp16',
      found: 'fp32',
      source: 'line one\n  fp32 r = relu(x = x);',
    });
    expect(error.message).toBe(
      "relu 'r': declared type does not match (expected fp16, found fp32) at line 2, column 3\n2 |   fp32 r = relu(x = x);\n  |   ^",
    );
    expect([error.line, error.column, error.code]).toEqual([2, 3, 'type-mismatch']);
  });
});
