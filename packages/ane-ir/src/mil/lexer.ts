/**
 * Tokenizer for MIL text. Whitespace, `// line` and `/* block *\/` comments are skipped. A `-` or
 * `+` directly before a digit or `.` belongs to the number; `->` is one token.
 */
import type { SourcePosition } from './ast';
import { MilSyntaxError } from './errors';

export type TokenKind = 'identifier' | 'number' | 'string' | 'punctuation' | 'end';

export interface Token {
  readonly kind: TokenKind;
  /** Source text; for a string, the decoded contents. */
  readonly text: string;
  /** Numeric value of a number token. */
  readonly value: number;
  /** Whether a number token was written as an integer (no `.`, exponent or hex-float `p`). */
  readonly integral: boolean;
  readonly position: SourcePosition;
}

const SIMPLE_ESCAPES: ReadonlyMap<string, string> = new Map([
  ['"', '"'],
  ['\\', '\\'],
  ['n', '\n'],
  ['t', '\t'],
  ['r', '\r'],
  ['/', '/'],
]);

const PUNCTUATION = new Set(['(', ')', '[', ']', '{', '}', '<', '>', ',', '=', ';', '-', '+']);

function isIdentifierStart(code: number): boolean {
  return (code >= 65 && code <= 90) || (code >= 97 && code <= 122) || code === 95;
}

function isIdentifierPart(code: number): boolean {
  return isIdentifierStart(code) || isDigit(code) || code === 64; // '@'
}

function isDigit(code: number): boolean {
  return code >= 48 && code <= 57;
}

function isHexDigit(code: number): boolean {
  return isDigit(code) || (code >= 65 && code <= 70) || (code >= 97 && code <= 102);
}

const DECIMAL_NUMBER = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;
const HEX_NUMBER = /^([+-]?)0[xX]([0-9a-fA-F]*)(?:\.([0-9a-fA-F]*))?(?:[pP]([+-]?\d+))?$/;

/** Tokens of `source`, ending with one `end` token. Throws `MilSyntaxError` on a character it cannot read. */
export function tokenize(source: string): Token[] {
  const tokens: Token[] = [];
  let index = 0;
  let line = 1;
  let lineStart = 0;
  const length = source.length;

  const positionAt = (at: number): SourcePosition => ({ line, column: at - lineStart + 1 });
  const fail = (reason: string, at: number): never => {
    throw new MilSyntaxError(reason, source, positionAt(at));
  };
  const push = (kind: TokenKind, text: string, start: number, value = 0, integral = false): void => {
    tokens.push({ kind, text, value, integral, position: positionAt(start) });
  };

  while (index < length) {
    const code = source.charCodeAt(index);
    if (code === 10) {
      index++;
      line++;
      lineStart = index;
      continue;
    }
    if (code === 32 || code === 9 || code === 13) {
      index++;
      continue;
    }
    const next = source.charCodeAt(index + 1);
    if (code === 47 && next === 47) {
      while (index < length && source.charCodeAt(index) !== 10) index++;
      continue;
    }
    if (code === 47 && next === 42) {
      const startLine = line;
      const startColumn = index - lineStart + 1;
      index += 2;
      while (index < length && !(source.charCodeAt(index) === 42 && source.charCodeAt(index + 1) === 47)) {
        if (source.charCodeAt(index) === 10) {
          line++;
          lineStart = index + 1;
        }
        index++;
      }
      if (index >= length) {
        throw new MilSyntaxError('unterminated /* comment', source, { line: startLine, column: startColumn });
      }
      index += 2;
      continue;
    }
    const start = index;
    if (isIdentifierStart(code)) {
      index++;
      while (index < length && isIdentifierPart(source.charCodeAt(index))) index++;
      push('identifier', source.slice(start, index), start);
      continue;
    }
    const signed = (code === 45 || code === 43) && (isDigit(next) || next === 46);
    if (isDigit(code) || (code === 46 && isDigit(next)) || signed) {
      index = scanNumberEnd(source, signed ? index + 1 : index);
      const text = source.slice(start, index);
      if (index < length && isIdentifierPart(source.charCodeAt(index))) {
        fail(`malformed number '${text}${source[index]}'`, start);
      }
      const parsed = parseNumberText(text);
      if (parsed === undefined) fail(`malformed number '${text}'`, start);
      else push('number', text, start, parsed.value, parsed.integral);
      continue;
    }
    if (code === 34) {
      index++;
      let decoded = '';
      for (;;) {
        if (index >= length || source.charCodeAt(index) === 10) fail('unterminated string literal', start);
        const c = source[index]!;
        if (c === '"') break;
        if (c === '\\') {
          const escaped = source[index + 1];
          const unescaped = escaped === undefined ? undefined : SIMPLE_ESCAPES.get(escaped);
          if (unescaped !== undefined) {
            decoded += unescaped;
            index += 2;
            continue;
          }
          if (escaped === 'u' && /^[0-9a-fA-F]{4}$/.test(source.slice(index + 2, index + 6))) {
            decoded += String.fromCharCode(Number.parseInt(source.slice(index + 2, index + 6), 16));
            index += 6;
            continue;
          }
          fail(`unknown escape '\\${escaped ?? ''}' in string literal`, index);
        }
        decoded += c;
        index++;
      }
      index++;
      push('string', decoded, start);
      continue;
    }
    if (code === 45 && next === 62) {
      index += 2;
      push('punctuation', '->', start);
      continue;
    }
    const char = source[index]!;
    if (PUNCTUATION.has(char)) {
      index++;
      push('punctuation', char, start);
      continue;
    }
    fail(`unexpected character ${JSON.stringify(char)}`, start);
  }
  push('end', '', index);
  return tokens;
}

function scanNumberEnd(source: string, index: number): number {
  const length = source.length;
  if (source[index] === '0' && (source[index + 1] === 'x' || source[index + 1] === 'X')) {
    index += 2;
    while (index < length && (isHexDigit(source.charCodeAt(index)) || source[index] === '.')) index++;
    if (source[index] === 'p' || source[index] === 'P') {
      index++;
      if (source[index] === '+' || source[index] === '-') index++;
      while (index < length && isDigit(source.charCodeAt(index))) index++;
    }
    return index;
  }
  while (index < length && (isDigit(source.charCodeAt(index)) || source[index] === '.')) index++;
  if (source[index] === 'e' || source[index] === 'E') {
    const afterSign = source[index + 1] === '+' || source[index + 1] === '-' ? index + 2 : index + 1;
    if (isDigit(source.charCodeAt(afterSign))) {
      index = afterSign;
      while (index < length && isDigit(source.charCodeAt(index))) index++;
    }
  }
  return index;
}

/** The value of a decimal or C hex-float literal (`0x1.8p+1`), or undefined when malformed. */
export function parseNumberText(text: string): { value: number; integral: boolean } | undefined {
  if (DECIMAL_NUMBER.test(text)) {
    return { value: Number(text), integral: !/[.eE]/.test(text) };
  }
  const hex = HEX_NUMBER.exec(text);
  if (hex === null) return undefined;
  const [, sign, whole = '', fraction, exponentText] = hex;
  const digits = whole + (fraction ?? '');
  if (digits.length === 0) return undefined;
  const integral = fraction === undefined && exponentText === undefined;
  const exponent = (exponentText === undefined ? 0 : Number(exponentText)) - 4 * (fraction?.length ?? 0);
  // BigInt to Number rounds to nearest even; scaling by a power of two is then exact (outside subnormals).
  const mantissa = Number(BigInt(`0x${digits}`));
  const magnitude = mantissa === 0 ? 0 : scaleByPowerOfTwo(mantissa, exponent);
  return { value: sign === '-' ? -magnitude : magnitude, integral };
}

function scaleByPowerOfTwo(value: number, exponent: number): number {
  // Split the exponent so that no intermediate power of two overflows or underflows on its own.
  let result = value;
  let remaining = Math.max(-2200, Math.min(2200, exponent));
  while (remaining !== 0) {
    const step = Math.max(-1000, Math.min(1000, remaining));
    result *= 2 ** step;
    remaining -= step;
  }
  return result;
}
