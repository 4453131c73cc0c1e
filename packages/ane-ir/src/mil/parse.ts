/**
 * Parser for the MIL text dialect (program(1.0) and program(1.3)): a recursive-descent pass over
 * the tokens of `lexer.ts` that builds the AST of `ast.ts`. It checks syntax and literal well-formedness
 * only (a literal's element count and ranges); types, shapes and references are the validator's job.
 */
import type {
  Argument,
  BlobValue,
  BuildInfo,
  Func,
  MilProgram,
  OpOutput,
  OpStatement,
  Param,
  RefArgument,
  ReturnRef,
  ScalarData,
  Statement,
  TupleArgument,
  Value,
} from './ast';
import { MilLimitError, MilSyntaxError } from './errors';
import { type Token, tokenize } from './lexer';
import {
  elementCountOf,
  isFloatDtype,
  isIntegerDtype,
  isMilDtype,
  type MilDtype,
  type ScalarType,
  scalarType,
  type TensorType,
  tensorType,
  type ValueType,
} from './types';

/**
 * The longest MIL text `parseProgram` reads by default: 8 MiB characters. Parsing costs about 70
 * times the text's size in heap (tokens and AST), so this keeps one parse under ~600 MB; programs
 * the project emits (weights in BLOBFILEs or inputs) are a few hundred KB at most.
 */
export const MAX_MIL_TEXT_LENGTH = 8 * 2 ** 20;

export interface ParseOptions {
  /** Longest text to read, in UTF-16 characters (default `MAX_MIL_TEXT_LENGTH`). */
  readonly maxTextLength?: number;
}

/**
 * Parses MIL text into an AST. Throws `MilSyntaxError` (with line, column and a caret excerpt), or
 * `MilLimitError` for text longer than `options.maxTextLength` (checked before tokenizing).
 */
export function parseProgram(source: string, options: ParseOptions = {}): MilProgram {
  const limit = options.maxTextLength ?? MAX_MIL_TEXT_LENGTH;
  if (source.length > limit) {
    throw new MilLimitError(
      'MIL text length (characters)',
      source.length,
      limit,
      'move large constants into weight blobs (BLOBFILE) or program inputs, or pass a larger maxTextLength to parseProgram if the heap allows (parsing takes about 70 bytes of heap per character)',
    );
  }
  return new Parser(source, tokenize(source)).program();
}

const MAX_LIST_DEPTH = 32;
const MAX_DIMENSION = 2 ** 31 - 1;

const INTEGER_RANGES: Partial<Record<MilDtype, readonly [number, number]>> = {
  int4: [-8, 7],
  int8: [-128, 127],
  int16: [-32768, 32767],
  int32: [-(2 ** 31), 2 ** 31 - 1],
  int64: [-(2 ** 63), 2 ** 63 - 1],
  uint1: [0, 1],
  uint2: [0, 3],
  uint3: [0, 7],
  uint4: [0, 15],
  uint6: [0, 63],
  uint8: [0, 255],
  uint16: [0, 65535],
  uint32: [0, 2 ** 32 - 1],
  uint64: [0, 2 ** 64 - 1],
};

const NON_FINITE: ReadonlyMap<string, number> = new Map([
  ['inf', Number.POSITIVE_INFINITY],
  ['infinity', Number.POSITIVE_INFINITY],
  ['nan', Number.NaN],
]);

class Parser {
  private index = 0;

  constructor(
    private readonly source: string,
    private readonly tokens: readonly Token[],
  ) {}

  program(): MilProgram {
    const start = this.expectKeyword('program');
    this.expectPunctuation('(');
    const versionToken = this.next();
    if (versionToken.kind !== 'number' && versionToken.kind !== 'identifier') {
      this.fail(`expected a program version such as 1.3, found ${describe(versionToken)}`, versionToken);
    }
    this.expectPunctuation(')');
    const buildInfo = this.isPunctuation('[') ? this.buildInfo() : undefined;
    this.expectPunctuation('{');
    const functions: Func[] = [];
    while (!this.isPunctuation('}')) functions.push(this.func());
    this.expectPunctuation('}');
    const end = this.peek();
    if (end.kind !== 'end') this.fail(`expected end of input after the program, found ${describe(end)}`, end);
    const program: MilProgram = { version: versionToken.text, functions, position: start.position };
    return buildInfo === undefined ? program : { ...program, buildInfo };
  }

  private buildInfo(): BuildInfo {
    const open = this.expectPunctuation('[');
    const key = this.expectIdentifier('a program attribute');
    if (key.text !== 'buildInfo')
      this.fail(`unknown program attribute '${key.text}' (only buildInfo is known)`, key);
    this.expectPunctuation('=');
    this.expectKeyword('dict');
    this.expectPunctuation('<');
    const keyType = this.type();
    this.expectPunctuation(',');
    const valueType = this.type();
    this.expectPunctuation('>');
    this.expectPunctuation('(');
    this.expectPunctuation('{');
    const entries: { key: string; value: string }[] = [];
    if (!this.isPunctuation('}')) {
      do {
        this.expectPunctuation('{');
        const entryKey = this.expectString();
        this.expectPunctuation(',');
        const entryValue = this.expectString();
        this.expectPunctuation('}');
        entries.push({ key: entryKey, value: entryValue });
      } while (this.acceptPunctuation(','));
    }
    this.expectPunctuation('}');
    this.expectPunctuation(')');
    this.expectPunctuation(']');
    return { keyType, valueType, entries, position: open.position };
  }

  private func(): Func {
    const start = this.expectKeyword('func');
    const name = this.expectIdentifier('a function name').text;
    let opset = '';
    if (this.acceptPunctuation('<')) {
      opset = this.expectIdentifier('an opset such as ios18').text;
      this.expectPunctuation('>');
    }
    this.expectPunctuation('(');
    const params: Param[] = [];
    if (!this.isPunctuation(')')) {
      do {
        const typeStart = this.peek();
        const type = this.type();
        const paramName = this.expectIdentifier('a parameter name').text;
        params.push({ name: paramName, type, position: typeStart.position });
      } while (this.acceptPunctuation(','));
    }
    this.expectPunctuation(')');
    this.expectPunctuation('{');
    const body: Statement[] = [];
    while (!this.isPunctuation('}')) body.push(this.statement());
    this.expectPunctuation('}');
    this.expectPunctuation('->');
    this.expectPunctuation('(');
    const returns: ReturnRef[] = [];
    if (!this.isPunctuation(')')) {
      do {
        const token = this.expectIdentifier('a returned value name');
        returns.push({ name: token.text, position: token.position });
      } while (this.acceptPunctuation(','));
    }
    this.expectPunctuation(')');
    this.acceptPunctuation(';');
    return { name, opset, params, body, returns, position: start.position };
  }

  private statement(): OpStatement {
    const start = this.peek();
    const outputs: OpOutput[] = [];
    const parenthesized = this.acceptPunctuation('(');
    do {
      const typeStart = this.peek();
      const type = this.type();
      const name = this.expectIdentifier('a result name').text;
      outputs.push({ name, type, position: typeStart.position });
    } while (this.acceptPunctuation(','));
    if (parenthesized) this.expectPunctuation(')');
    this.expectPunctuation('=');
    const op = this.expectIdentifier('an op name').text;
    this.expectPunctuation('(');
    const args = new Map<string, Argument>();
    if (!this.isPunctuation(')')) {
      do {
        const key = this.expectIdentifier('a parameter name');
        if (args.has(key.text)) this.fail(`parameter '${key.text}' is given twice`, key);
        this.expectPunctuation('=');
        args.set(key.text, this.argument());
      } while (this.acceptPunctuation(','));
    }
    this.expectPunctuation(')');
    const attributes = new Map<string, Value>();
    if (this.acceptPunctuation('[')) {
      if (!this.isPunctuation(']')) {
        do {
          const key = this.expectIdentifier('an attribute name');
          if (attributes.has(key.text)) this.fail(`attribute '${key.text}' is given twice`, key);
          this.expectPunctuation('=');
          attributes.set(key.text, this.value());
        } while (this.acceptPunctuation(','));
      }
      this.expectPunctuation(']');
    }
    this.expectPunctuation(';');
    return { kind: 'op', outputs, op, args, attributes, position: start.position };
  }

  private argument(): Argument {
    const token = this.peek();
    if (this.isPunctuation('(')) {
      this.next();
      const items: (RefArgument | Value)[] = [];
      if (!this.isPunctuation(')')) {
        do {
          // Checked before descending, so `((((...` cannot recurse past the stack.
          if (this.isPunctuation('(')) this.fail('tuples cannot be nested', this.peek());
          items.push(this.argument() as RefArgument | Value);
        } while (this.acceptPunctuation(','));
      }
      this.expectPunctuation(')');
      const tuple: TupleArgument = { kind: 'tuple', items, position: token.position };
      return tuple;
    }
    if (token.kind === 'identifier' && !this.startsValue()) {
      this.next();
      return { kind: 'ref', name: token.text, position: token.position };
    }
    return this.value();
  }

  /** Whether the next tokens begin a literal (`int32(`, `tensor<`, `true`) rather than a reference. */
  private startsValue(): boolean {
    const token = this.peek();
    if (token.kind !== 'identifier') return true;
    if (token.text === 'true' || token.text === 'false') return true;
    const following = this.peek(1);
    if (following.kind !== 'punctuation') return false;
    if (token.text === 'tensor') return following.text === '<';
    return isMilDtype(token.text) && following.text === '(';
  }

  private value(): Value {
    const token = this.peek();
    if (token.kind === 'identifier' && (token.text === 'true' || token.text === 'false')) {
      this.next();
      return {
        kind: 'scalar',
        type: scalarType('bool'),
        value: token.text === 'true',
        position: token.position,
      };
    }
    if (token.kind !== 'identifier') {
      this.fail(`expected a typed literal such as int32(1) or string("x"), found ${describe(token)}`, token);
    }
    if (token.text === 'tensor') {
      const type = this.tensorTypeAfterKeyword();
      this.expectPunctuation('(');
      const payloadStart = this.peek();
      let value: Value;
      if (payloadStart.kind === 'identifier' && payloadStart.text === 'BLOBFILE') {
        value = this.blobFile(type, token);
      } else if (this.isPunctuation('[')) {
        if (type.shape.length === 0)
          this.fail('a rank-0 tensor literal is written without brackets', payloadStart);
        const data: ScalarData[] = [];
        this.listInto(type.dtype, data, 1);
        const expectedCount = elementCountOf(type);
        if (data.length !== expectedCount) {
          this.fail(
            `tensor<${type.dtype}, [${type.shape.join(', ')}]> literal has ${data.length} elements, expected ${expectedCount}`,
            payloadStart,
          );
        }
        value = { kind: 'tensor', type, data, position: token.position };
      } else {
        if (type.shape.length !== 0) {
          this.fail(`a tensor literal of shape [${type.shape.join(', ')}] needs a [...] list`, payloadStart);
        }
        value = { kind: 'scalar', type, value: this.literal(type.dtype), position: token.position };
      }
      this.expectPunctuation(')');
      return value;
    }
    if (!isMilDtype(token.text)) {
      this.fail(`expected a typed literal such as int32(1) or string("x"), found ${describe(token)}`, token);
    }
    this.next();
    const type: ScalarType = scalarType(token.text);
    this.expectPunctuation('(');
    const literal = this.literal(type.dtype);
    this.expectPunctuation(')');
    return { kind: 'scalar', type, value: literal, position: token.position };
  }

  private blobFile(type: TensorType, start: Token): BlobValue {
    this.expectKeyword('BLOBFILE');
    this.expectPunctuation('(');
    let path: string | undefined;
    let offset: number | undefined;
    do {
      const key = this.expectIdentifier('path or offset');
      this.expectPunctuation('=');
      const valueToken = this.peek();
      const value = this.value();
      if (key.text === 'path') {
        if (path !== undefined) this.fail("BLOBFILE 'path' is given twice", key);
        if (value.kind !== 'scalar' || value.type.dtype !== 'string') {
          this.fail(
            'BLOBFILE path must be a string, e.g. path=string("@model_path/weights/w.bin")',
            valueToken,
          );
        }
        path = value.value as string;
      } else if (key.text === 'offset') {
        if (offset !== undefined) this.fail("BLOBFILE 'offset' is given twice", key);
        if (value.kind !== 'scalar' || !isIntegerDtype(value.type.dtype) || (value.value as number) < 0) {
          this.fail('BLOBFILE offset must be a non-negative integer, e.g. offset=uint64(64)', valueToken);
        }
        offset = value.value as number;
      } else {
        this.fail(`unknown BLOBFILE field '${key.text}' (expected path or offset)`, key);
      }
    } while (this.acceptPunctuation(','));
    const close = this.expectPunctuation(')');
    if (path === undefined) this.fail('BLOBFILE needs a path', close);
    if (offset === undefined) this.fail('BLOBFILE needs an offset', close);
    return { kind: 'blob', type, path, offset, position: start.position };
  }

  private listInto(dtype: MilDtype, data: ScalarData[], depth: number): void {
    const open = this.expectPunctuation('[');
    if (depth > MAX_LIST_DEPTH) this.fail(`tensor literal nests deeper than ${MAX_LIST_DEPTH} levels`, open);
    if (this.acceptPunctuation(']')) return;
    do {
      if (this.isPunctuation('[')) this.listInto(dtype, data, depth + 1);
      else {
        this.refuseTypedElement();
        data.push(this.literal(dtype));
      }
    } while (this.acceptPunctuation(','));
    this.expectPunctuation(']');
  }

  /**
   * `[fp16(0x1p-1), ...]`: Apple's MIL compiler refuses typed scalars as tensor-literal elements
   * (mil-hwx-compiler saw it rejected), so the simulator refuses them too.
   */
  private refuseTypedElement(): void {
    const token = this.peek();
    const following = this.peek(1);
    if (
      token.kind === 'identifier' &&
      isMilDtype(token.text) &&
      following.kind === 'punctuation' &&
      following.text === '('
    ) {
      this.fail(
        `a tensor literal's elements are bare numbers, not typed scalars such as ${token.text}(...): Apple's MIL compiler refuses ${token.text}(0x1p-1) inside a tensor literal (seen by mil-hwx-compiler), so this parser does too; write the number alone, e.g. [0x1p-1, 1.0]`,
        token,
      );
    }
  }

  /** One literal element of `dtype`: `1`, `-0.5`, `0x1p-3`, `inf`, `true`, `"valid"`. */
  private literal(dtype: MilDtype): ScalarData {
    const token = this.peek();
    if (dtype === 'bool') {
      if (token.kind === 'identifier' && (token.text === 'true' || token.text === 'false')) {
        this.next();
        return token.text === 'true';
      }
      this.fail(`expected true or false for a bool literal, found ${describe(token)}`, token);
    }
    if (dtype === 'string') {
      if (token.kind === 'string') {
        this.next();
        return token.text;
      }
      this.fail(`expected a "quoted" string literal, found ${describe(token)}`, token);
    }
    let negative = false;
    if (token.kind === 'punctuation' && (token.text === '-' || token.text === '+')) {
      negative = token.text === '-';
      this.next();
    }
    const numberToken = this.peek();
    if (numberToken.kind === 'identifier' && isFloatDtype(dtype)) {
      const special = NON_FINITE.get(numberToken.text.toLowerCase());
      if (special !== undefined) {
        this.next();
        return negative ? -special : special;
      }
    }
    if (numberToken.kind !== 'number' || (token !== numberToken && /^[+-]/.test(numberToken.text))) {
      this.fail(`expected a number for a ${dtype} literal, found ${describe(numberToken)}`, numberToken);
    }
    this.next();
    const value = negative ? -numberToken.value : numberToken.value;
    if (isFloatDtype(dtype)) return value;
    const range = INTEGER_RANGES[dtype];
    if (!numberToken.integral || !Number.isInteger(value)) {
      this.fail(`a ${dtype} literal must be an integer, found ${numberToken.text}`, token);
    }
    if (range !== undefined && (value < range[0] || value > range[1])) {
      this.fail(`${value} is out of range for ${dtype} [${range[0]}, ${range[1]}]`, token);
    }
    return value === 0 ? 0 : value;
  }

  private type(): ValueType {
    const token = this.expectIdentifier('a type such as fp16 or tensor<fp16, [1, 4]>');
    if (token.text === 'tensor') {
      this.index--;
      return this.tensorTypeAfterKeyword();
    }
    if (!isMilDtype(token.text)) this.fail(`unknown type '${token.text}'`, token);
    return scalarType(token.text);
  }

  /** `tensor<dtype, [d0, d1, ...]>` starting at the `tensor` keyword. */
  private tensorTypeAfterKeyword(): TensorType {
    this.expectKeyword('tensor');
    this.expectPunctuation('<');
    const dtypeToken = this.expectIdentifier('an element type such as fp16');
    if (!isMilDtype(dtypeToken.text)) this.fail(`unknown element type '${dtypeToken.text}'`, dtypeToken);
    this.expectPunctuation(',');
    this.expectPunctuation('[');
    const shape: number[] = [];
    if (!this.isPunctuation(']')) {
      do {
        const dim = this.next();
        if (dim.kind === 'identifier') {
          this.fail(`symbolic dimension '${dim.text}' is not supported; write a fixed size`, dim);
        }
        if (dim.kind !== 'number' || !dim.integral || dim.value < 0 || dim.value > MAX_DIMENSION) {
          this.fail(`expected a dimension (a non-negative integer), found ${describe(dim)}`, dim);
        }
        shape.push(dim.value === 0 ? 0 : dim.value);
      } while (this.acceptPunctuation(','));
    }
    this.expectPunctuation(']');
    this.expectPunctuation('>');
    return tensorType(dtypeToken.text, shape);
  }

  private peek(offset = 0): Token {
    return this.tokens[Math.min(this.index + offset, this.tokens.length - 1)]!;
  }

  private next(): Token {
    const token = this.peek();
    if (this.index < this.tokens.length - 1) this.index++;
    return token;
  }

  private isPunctuation(text: string): boolean {
    const token = this.peek();
    return token.kind === 'punctuation' && token.text === text;
  }

  private acceptPunctuation(text: string): boolean {
    if (!this.isPunctuation(text)) return false;
    this.next();
    return true;
  }

  private expectPunctuation(text: string): Token {
    const token = this.peek();
    if (token.kind !== 'punctuation' || token.text !== text) {
      this.fail(`expected '${text}', found ${describe(token)}`, token);
    }
    return this.next();
  }

  private expectKeyword(keyword: string): Token {
    const token = this.peek();
    if (token.kind !== 'identifier' || token.text !== keyword) {
      this.fail(`expected '${keyword}', found ${describe(token)}`, token);
    }
    return this.next();
  }

  private expectIdentifier(what: string): Token {
    const token = this.peek();
    if (token.kind !== 'identifier') this.fail(`expected ${what}, found ${describe(token)}`, token);
    return this.next();
  }

  private expectString(): string {
    const token = this.peek();
    if (token.kind !== 'string') this.fail(`expected a "quoted" string, found ${describe(token)}`, token);
    return this.next().text;
  }

  private fail(reason: string, token: Token): never {
    throw new MilSyntaxError(reason, this.source, token.position);
  }
}

function describe(token: Token): string {
  switch (token.kind) {
    case 'end':
      return 'end of input';
    case 'string':
      return `string ${JSON.stringify(token.text.length > 40 ? `${token.text.slice(0, 40)}...` : token.text)}`;
    default:
      return `'${token.text.length > 40 ? `${token.text.slice(0, 40)}...` : token.text}'`;
  }
}
