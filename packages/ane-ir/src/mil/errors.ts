/**
 * Typed errors of the MIL dialect. Every error the parser or validator raises is a `MilError`; its
 * message names what was expected, what was found and where.
 */
import type { SourcePosition } from './ast';

/** Base class of every error raised while reading, checking or writing MIL. */
export class MilError extends Error {
  override name = 'MilError';
}

/** Malformed MIL text. `line` and `column` are 1-based; the message ends with a caret excerpt. */
export class MilSyntaxError extends MilError {
  override name = 'MilSyntaxError';
  readonly line: number;
  readonly column: number;
  /** The description without the location and excerpt. */
  readonly reason: string;

  constructor(reason: string, source: string, position: SourcePosition) {
    super(
      `${reason} (line ${position.line}, column ${position.column})\n${formatSourceExcerpt(source, position)}`,
    );
    this.reason = reason;
    this.line = position.line;
    this.column = position.column;
  }
}

/**
 * Input past a documented resource limit (e.g. MIL text longer than `MAX_MIL_TEXT_LENGTH`): refused
 * before the work that would exhaust memory or the stack. Names the quantity, its size and the limit.
 */
export class MilLimitError extends MilError {
  override name = 'MilLimitError';
  constructor(
    /** What was measured, e.g. 'MIL text length (characters)'. */
    readonly quantity: string,
    readonly found: number,
    readonly limit: number,
    /** What to do instead. */
    readonly fix: string,
  ) {
    super(`${quantity} is ${found}, above the limit of ${limit}: ${fix}`);
  }
}

/** What a validation error is about; tests and tools can branch on it. */
export type MilValidationCode =
  | 'unknown-op'
  | 'unknown-param'
  | 'missing-param'
  | 'duplicate-param'
  | 'not-constant'
  | 'param-kind'
  | 'dtype'
  | 'shape'
  | 'invalid-value'
  | 'output-count'
  | 'type-mismatch'
  | 'undefined-ref'
  | 'duplicate-name'
  | 'return'
  | 'no-function'
  | 'opset'
  | 'missing-blob'
  | 'bad-blob';

export interface MilValidationDetails {
  readonly code: MilValidationCode;
  /** The op type, e.g. `conv`. */
  readonly op?: string;
  /** The statement's `name` attribute, or its first output's name when it has none. */
  readonly statement?: string;
  readonly position?: SourcePosition;
  readonly expected?: string;
  readonly found?: string;
  /** The MIL text, to add a caret excerpt to the message. */
  readonly source?: string;
}

/** A well-formed program that breaks a rule of the dialect: types, shapes, references, blobs. */
export class MilValidationError extends MilError {
  override name = 'MilValidationError';
  readonly code: MilValidationCode;
  readonly op: string | undefined;
  readonly statement: string | undefined;
  readonly position: SourcePosition | undefined;
  readonly line: number | undefined;
  readonly column: number | undefined;
  readonly expected: string | undefined;
  readonly found: string | undefined;
  readonly reason: string;

  constructor(reason: string, details: MilValidationDetails) {
    super(formatValidationMessage(reason, details));
    this.reason = reason;
    this.code = details.code;
    this.op = details.op;
    this.statement = details.statement;
    this.position = details.position;
    this.line = details.position?.line;
    this.column = details.position?.column;
    this.expected = details.expected;
    this.found = details.found;
  }
}

/** An op type with no schema. */
export class MilUnknownOpError extends MilValidationError {
  override name = 'MilUnknownOpError';
}

function formatValidationMessage(reason: string, details: MilValidationDetails): string {
  const subject =
    details.op === undefined
      ? ''
      : details.statement === undefined
        ? `${details.op}: `
        : `${details.op} '${details.statement}': `;
  let message = `${subject}${reason}`;
  if (details.expected !== undefined || details.found !== undefined) {
    message += ` (expected ${details.expected ?? '?'}, found ${details.found ?? '?'})`;
  }
  if (details.position !== undefined) {
    message += ` at line ${details.position.line}, column ${details.position.column}`;
    if (details.source !== undefined) message += `\n${formatSourceExcerpt(details.source, details.position)}`;
  }
  return message;
}

const EXCERPT_HALF_WIDTH = 100;

/**
 * The source line at `position` with a caret under the column:
 *
 *     7 |         tensor<fp16, [1]> y = foo(x=x)[name=string("y")];
 *       |                               ^
 */
export function formatSourceExcerpt(source: string, position: SourcePosition): string {
  const lines = source.split('\n');
  const lineText = (lines[position.line - 1] ?? '').replace(/\r$/, '');
  const caretIndex = Math.max(0, position.column - 1);
  // Very long lines (minified or garbage input) are cut to a window around the caret.
  const whole = lineText.length <= 2 * EXCERPT_HALF_WIDTH;
  const start = whole ? 0 : Math.max(0, caretIndex - EXCERPT_HALF_WIDTH);
  const end = whole ? lineText.length : Math.min(lineText.length, caretIndex + EXCERPT_HALF_WIDTH);
  const shown = `${start > 0 ? '...' : ''}${lineText.slice(start, end)}${end < lineText.length ? '...' : ''}`;
  const caretOffset = (start > 0 ? 3 : 0) + (caretIndex - start);
  const padding = shown.slice(0, caretOffset).replace(/[^\t]/g, ' ');
  const gutter = String(position.line);
  return `${gutter} | ${shown}\n${' '.repeat(gutter.length)} | ${padding}^`;
}
