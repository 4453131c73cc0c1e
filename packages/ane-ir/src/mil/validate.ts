/**
 * Validator: checks a parsed program against the op schemas and, when given, its weight blobs, and
 * returns what an interpreter needs to run it: per statement the resolved inputs (from args or
 * attributes) and result types, per value its type and constness, per BLOBFILE its blob record.
 *
 * Checks, in statement order: known op and opset; every parameter known, given once, of the right
 * kind (tuple or single), constant where the schema says so, of an allowed dtype; required
 * parameters present; references defined earlier; inferred result types equal to the declared
 * ones; value names and op names unique; returned names defined; and for every BLOBFILE, its path
 * in the weights and its record valid (sentinel, dtype code, payload size, bounds) and matching the
 * declared type. A record another tool wrote (payload-offset field not record + 64) is read as the
 * program declares it and reported in `warnings`, one per odd field.
 */
import type {
  Argument,
  BlobValue,
  Func,
  MilProgram,
  OpStatement,
  Param,
  RefArgument,
  ScalarData,
  SourcePosition,
  Value,
} from './ast';
import { literalNumber, statementName } from './ast';
import {
  type BlobField,
  type BlobFieldDeviation,
  type BlobRecord,
  blobPayloadBytes,
  blobTensorCount,
  describeBlobDeviation,
  isBlobDtype,
  MilBlobError,
  readBlobRecord,
  readBlobRecordAs,
} from './blob';
import { MilUnknownOpError, type MilValidationDetails, MilValidationError } from './errors';
import {
  formatShape,
  InferenceContext,
  OP_SCHEMAS,
  type Operand,
  type OperandInput,
  type OpSchema,
  opsetVersionOf,
  UNKNOWN_DIM,
  UnknownAtCompileTime,
} from './schemas';
import { elementCountOf, formatValueType, shapeOf, type TensorType, type ValueType } from './types';

export interface ValidateOptions {
  /** Weights dictionary: BLOBFILE path -> blob file bytes. When given, every BLOBFILE is checked. */
  readonly weights?: ReadonlyMap<string, Uint8Array>;
  /** The MIL text the program was parsed from, to put a caret excerpt in error messages. */
  readonly source?: string;
}

/** Where a statement input comes from. */
export type ResolvedOperand =
  | { readonly kind: 'ref'; readonly name: string; readonly type: ValueType; readonly constant: boolean }
  | { readonly kind: 'literal'; readonly value: Value; readonly type: ValueType };

export type ResolvedInput =
  | ResolvedOperand
  | { readonly kind: 'tuple'; readonly items: readonly ResolvedOperand[] };

export interface ValueInfo {
  readonly name: string;
  readonly type: ValueType;
  /** Known at compile time: a function parameter is not; `const` and `constexpr_*` results are. */
  readonly constant: boolean;
  /** Elements (as the literal's dtype denotes them) of a `const` with a literal value. */
  readonly data?: readonly ScalarData[];
  readonly position: SourcePosition;
}

export interface ValidatedStatement {
  readonly statement: OpStatement;
  readonly schema: OpSchema;
  /** The `name` attribute, when present. */
  readonly name: string | undefined;
  /** Every parameter given, from the argument list or the attribute block, by parameter name. */
  readonly inputs: ReadonlyMap<string, ResolvedInput>;
  /** Result types, in output order (as declared; equal to the inferred ones). */
  readonly outputTypes: readonly ValueType[];
}

export interface ValidatedFunction {
  readonly func: Func;
  /** `18` for `ios18`; undefined for an opset spelled otherwise. */
  readonly opsetVersion: number | undefined;
  readonly params: readonly Param[];
  /** Every named value: parameters and statement outputs. */
  readonly values: ReadonlyMap<string, ValueInfo>;
  readonly statements: readonly ValidatedStatement[];
  /** Returned values with their types, in return order. */
  readonly outputs: readonly { readonly name: string; readonly type: ValueType }[];
}

/**
 * Something the validator accepted but a user should know: a weight blob written by another tool
 * (read as the program declares it; what the ANE reads from it is unverified, rule `blob-offset`).
 */
export interface MilWarning {
  readonly code: 'foreign-blob-record';
  /** The blob field that does not follow the MILBlob v2 layout. */
  readonly field: BlobField;
  /** The BLOBFILE path (weights key) and record offset. */
  readonly path: string;
  readonly offset: number;
  readonly position: SourcePosition;
  readonly message: string;
}

export interface ValidatedProgram {
  readonly program: MilProgram;
  readonly functions: ReadonlyMap<string, ValidatedFunction>;
  /** The function named `main`, or the only/first function. */
  readonly main: ValidatedFunction;
  /**
   * The blob record of every BLOBFILE literal (only when weights were given), as the program reads
   * it: for a record written by another tool, the payload at record + 64 with the declared dtype.
   */
  readonly blobs: ReadonlyMap<BlobValue, BlobRecord>;
  /** What was accepted with a warning (records other tools write), in statement order. */
  readonly warnings: readonly MilWarning[];
}

/** Validates `program`; throws `MilValidationError` (with code, op, statement, position) on the first problem. */
export function validateProgram(program: MilProgram, options: ValidateOptions = {}): ValidatedProgram {
  const blobs = new Map<BlobValue, BlobRecord>();
  const warnings: MilWarning[] = [];
  const functions = new Map<string, ValidatedFunction>();
  const fail = (reason: string, details: MilValidationDetails): never => {
    const withSource = options.source === undefined ? details : { ...details, source: options.source };
    throw new MilValidationError(reason, withSource);
  };
  for (const func of program.functions) {
    if (functions.has(func.name)) {
      fail(`function '${func.name}' is defined twice`, { code: 'duplicate-name', position: func.position });
    }
    functions.set(func.name, new FunctionValidator(func, options, blobs, warnings, fail).run());
  }
  const main = functions.get('main') ?? functions.values().next().value;
  if (main === undefined) {
    return fail('the program has no function', {
      code: 'no-function',
      position: program.position,
      expected: 'func main',
    });
  }
  warnings.push(...tensorCountWarnings(blobs, options.weights));
  return { program, functions, main, blobs, warnings };
}

const FOREIGN_RECORD_NOTE =
  'the record was written by another tool (e.g. maderix/ANE ane_int8_bench.m) and is read with the payload at record + 64 and the dtype and shape the program declares; what the ANE reads from such a record is unverified (rule blob-offset). Write blobs with writeBlobFile to silence this';

/** A file whose header counts fewer tensors than the program reads records from (maderix writes 1 for 3). */
function tensorCountWarnings(
  blobs: ReadonlyMap<BlobValue, BlobRecord>,
  weights: ReadonlyMap<string, Uint8Array> | undefined,
): MilWarning[] {
  const byPath = new Map<string, { first: BlobValue; offsets: Set<number> }>();
  for (const [value, record] of blobs) {
    const entry = byPath.get(value.path) ?? { first: value, offsets: new Set<number>() };
    entry.offsets.add(record.offset);
    byPath.set(value.path, entry);
  }
  const warnings: MilWarning[] = [];
  for (const [path, { first, offsets }] of byPath) {
    const bytes = weights?.get(path);
    if (bytes === undefined) continue;
    const count = blobTensorCount(bytes);
    if (count >= offsets.size) continue;
    warnings.push({
      code: 'foreign-blob-record',
      field: 'tensor count',
      path,
      offset: 0,
      position: first.position,
      message: `weight file ${path}: tensor count field (byte 0) is ${count}, the program reads ${offsets.size} records from it; ${FOREIGN_RECORD_NOTE}`,
    });
  }
  return warnings;
}

type Fail = (reason: string, details: MilValidationDetails) => never;
/** A failure inside one statement: op and statement name are filled in. */
type StatementFail = (reason: string, details: Omit<MilValidationDetails, 'op' | 'statement'>) => never;

class FunctionValidator {
  private readonly values = new Map<string, ValueInfo>();
  private readonly opNames = new Map<string, SourcePosition>();
  private readonly laterDefinitions = new Map<string, SourcePosition>();
  private readonly opsetVersion: number | undefined;

  constructor(
    private readonly func: Func,
    private readonly options: ValidateOptions,
    private readonly blobs: Map<BlobValue, BlobRecord>,
    private readonly warnings: MilWarning[],
    private readonly failWith: Fail,
  ) {
    this.opsetVersion = opsetVersionOf(func.opset);
  }

  run(): ValidatedFunction {
    for (const param of this.func.params) {
      this.define(param.name, {
        name: param.name,
        type: param.type,
        constant: false,
        position: param.position,
      });
    }
    for (const statement of this.func.body) {
      for (const output of statement.outputs) {
        if (!this.laterDefinitions.has(output.name)) this.laterDefinitions.set(output.name, output.position);
      }
    }
    const statements = this.func.body.map((statement) => this.statement(statement));
    const outputs = this.func.returns.map((ret) => {
      const value = this.values.get(ret.name);
      if (value === undefined) {
        return this.failWith(`returned value '${ret.name}' is not defined`, {
          code: 'return',
          position: ret.position,
          expected: 'a parameter or a statement result',
          found: ret.name,
        });
      }
      return { name: ret.name, type: value.type };
    });
    return {
      func: this.func,
      opsetVersion: this.opsetVersion,
      params: this.func.params,
      values: this.values,
      statements,
      outputs,
    };
  }

  private sourceDetail(): { source?: string } {
    return this.options.source === undefined ? {} : { source: this.options.source };
  }

  private define(name: string, info: ValueInfo): void {
    const previous = this.values.get(name);
    if (previous !== undefined) {
      this.failWith(`'${name}' is defined twice (first at line ${previous.position.line})`, {
        code: 'duplicate-name',
        position: info.position,
        found: name,
      });
    }
    this.values.set(name, info);
  }

  private statement(statement: OpStatement): ValidatedStatement {
    const opName = statementName(statement);
    const label = opName ?? statement.outputs[0]?.name;
    const fail: StatementFail = (reason, details) =>
      this.failWith(reason, {
        ...details,
        op: statement.op,
        ...(label === undefined ? {} : { statement: label }),
        ...(details.position === undefined ? { position: statement.position } : {}),
      });

    const schema = OP_SCHEMAS.get(statement.op);
    if (schema === undefined) {
      throw new MilUnknownOpError(`unknown op '${statement.op}'`, {
        code: 'unknown-op',
        op: statement.op,
        ...(label === undefined ? {} : { statement: label }),
        position: statement.position,
        expected: 'an op with a schema (see OP_SCHEMAS)',
        found: statement.op,
        ...this.sourceDetail(),
      });
    }
    if (
      schema.minOpset !== undefined &&
      this.opsetVersion !== undefined &&
      this.opsetVersion < schema.minOpset
    ) {
      fail(`needs opset ios${schema.minOpset} or later`, {
        code: 'opset',
        expected: `ios${schema.minOpset}+`,
        found: this.func.opset,
      });
    }

    this.checkOpName(statement, fail);
    const given = givenParameters(statement, schema, fail);
    const { inputs, operands } = this.resolveParameters(schema, given, fail);
    const declared = statement.outputs.map((output) => output.type);
    this.checkResultTypes(statement, schema, operands, fail);

    const constant = statement.op === 'const' || statement.op.startsWith('constexpr_');
    const constValue = statement.op === 'const' ? given.get('val') : undefined;
    const data = constValue === undefined || !isValue(constValue) ? undefined : literalData(constValue);
    for (const output of statement.outputs) {
      const info: ValueInfo = { name: output.name, type: output.type, constant, position: output.position };
      this.define(output.name, data === undefined ? info : { ...info, data });
    }
    return { statement, schema, name: opName, inputs, outputTypes: declared };
  }

  private checkOpName(statement: OpStatement, fail: StatementFail): void {
    const nameAttribute = statement.attributes.get('name');
    if (nameAttribute === undefined) return;
    if (nameAttribute.kind !== 'scalar' || typeof nameAttribute.value !== 'string') {
      fail("the 'name' attribute must be a string", {
        code: 'invalid-value',
        position: nameAttribute.position,
        expected: 'string("...")',
      });
    }
    const name = nameAttribute.value as string;
    const previous = this.opNames.get(name);
    if (previous !== undefined) {
      fail(`op name '${name}' is used twice (first at line ${previous.line})`, {
        code: 'duplicate-name',
        position: nameAttribute.position,
        found: name,
      });
    }
    this.opNames.set(name, nameAttribute.position);
  }

  /** Checks each given parameter's kind, constness, dtype and references; resolves it for the interpreter. */
  private resolveParameters(
    schema: OpSchema,
    given: ReadonlyMap<string, Argument>,
    fail: StatementFail,
  ): { inputs: Map<string, ResolvedInput>; operands: Map<string, OperandInput> } {
    const inputs = new Map<string, ResolvedInput>();
    const operands = new Map<string, OperandInput>();
    for (const spec of schema.params) {
      const argument = given.get(spec.name);
      if (argument === undefined) {
        if (spec.required) {
          fail(`missing required parameter '${spec.name}'`, {
            code: 'missing-param',
            expected: `${spec.name}=...`,
            found: given.size === 0 ? 'no parameters' : [...given.keys()].join(', '),
          });
        }
        continue;
      }
      if ((spec.tuple ?? false) !== (argument.kind === 'tuple')) {
        const reason = spec.tuple
          ? `'${spec.name}' must be a tuple such as (a, b)`
          : `'${spec.name}' must be a single value, not a tuple`;
        fail(reason, { code: 'param-kind', position: argument.position });
      }
      const resolveOne = (item: RefArgument | Value): { resolved: ResolvedOperand; operand: Operand } => {
        const resolved = this.resolve(item, fail);
        const operand = this.operandOf(resolved);
        if (spec.constant && !operand.constant) {
          fail(`'${spec.name}' must be a compile-time constant (a const or a literal)`, {
            code: 'not-constant',
            position: item.position,
            expected: 'a const',
            found: item.kind === 'ref' ? `runtime value '${item.name}'` : 'a runtime value',
          });
        }
        if (!spec.dtypes.includes(operand.type.dtype)) {
          fail(`'${spec.name}' has an unsupported dtype`, {
            code: 'dtype',
            position: item.position,
            expected: spec.dtypes.join(' | '),
            found: operand.type.dtype,
          });
        }
        return { resolved, operand };
      };
      if (argument.kind === 'tuple') {
        const items = argument.items.map(resolveOne);
        inputs.set(spec.name, { kind: 'tuple', items: items.map((item) => item.resolved) });
        operands.set(
          spec.name,
          items.map((item) => item.operand),
        );
      } else {
        const { resolved, operand } = resolveOne(argument);
        inputs.set(spec.name, resolved);
        operands.set(spec.name, operand);
      }
    }
    return { inputs, operands };
  }

  /** Infers the result types and compares them with the declared ones. */
  private checkResultTypes(
    statement: OpStatement,
    schema: OpSchema,
    operands: ReadonlyMap<string, OperandInput>,
    fail: StatementFail,
  ): void {
    const declared = statement.outputs.map((output) => output.type);
    const context = new InferenceContext(statement.op, operands, declared, this.opsetVersion, (failure) =>
      fail(failure.reason, failure),
    );
    let inferred: readonly TensorType[];
    try {
      inferred = schema.infer(context);
    } catch (error) {
      // A shape that depends on constant data held in a blob: trust the declaration.
      if (error instanceof UnknownAtCompileTime) return;
      throw error;
    }
    if (inferred.length !== statement.outputs.length) {
      fail(`declares ${statement.outputs.length} results, the op produces ${inferred.length}`, {
        code: 'output-count',
        expected: `${inferred.length} results`,
        found: `${statement.outputs.length}`,
      });
    }
    statement.outputs.forEach((output, i) => {
      const expected = inferred[i]!;
      if (!matchesInferred(output.type, expected)) {
        fail(`declared type of '${output.name}' does not match the op's result`, {
          code: 'type-mismatch',
          position: output.position,
          expected: formatInferred(expected),
          found: formatValueType(output.type),
        });
      }
    });
  }

  private resolve(item: RefArgument | Value, fail: StatementFail): ResolvedOperand {
    if (item.kind !== 'ref') {
      this.checkBlobs(item, fail);
      return { kind: 'literal', value: item, type: item.type };
    }
    const value = this.values.get(item.name);
    if (value === undefined) {
      const later = this.laterDefinitions.get(item.name);
      return fail(
        later === undefined
          ? `'${item.name}' is not defined`
          : `'${item.name}' is used before it is defined (at line ${later.line})`,
        {
          code: 'undefined-ref',
          position: item.position,
          expected: 'a parameter or an earlier result',
          found: item.name,
        },
      );
    }
    return { kind: 'ref', name: item.name, type: value.type, constant: value.constant };
  }

  private operandOf(resolved: ResolvedOperand): Operand {
    if (resolved.kind === 'literal') {
      const data = literalData(resolved.value);
      return data === undefined
        ? { type: resolved.type, constant: true }
        : { type: resolved.type, constant: true, data };
    }
    const info = this.values.get(resolved.name)!;
    return info.data === undefined
      ? { type: info.type, constant: info.constant }
      : { type: info.type, constant: info.constant, data: info.data };
  }

  private checkBlobs(value: Value, fail: StatementFail): void {
    if (value.kind !== 'blob' || this.options.weights === undefined) return;
    const bytes = this.options.weights.get(value.path);
    if (bytes === undefined) {
      fail(`weight blob '${value.path}' is not in the weights`, {
        code: 'missing-blob',
        position: value.position,
        expected: `a weights entry for ${value.path}`,
        found: this.options.weights.size === 0 ? 'no weights' : [...this.options.weights.keys()].join(', '),
      });
    }
    const { dtype } = value.type;
    const where = `${value.path} at offset ${value.offset}`;
    const deviations: BlobFieldDeviation[] = [];
    const record = readRecordOrFail(bytes, value, where, deviations, fail);
    for (const deviation of deviations) {
      this.warnings.push({
        code: 'foreign-blob-record',
        field: deviation.field,
        path: value.path,
        offset: value.offset,
        position: value.position,
        message: `BLOBFILE ${where}: ${describeBlobDeviation(deviation)}; ${FOREIGN_RECORD_NOTE}`,
      });
    }
    if (!isBlobDtype(dtype) || record.dtype !== dtype) {
      fail(`blob record in ${where} has another dtype than the declared ${formatValueType(value.type)}`, {
        code: 'bad-blob',
        position: value.position,
        expected: dtype,
        found: record.dtype,
      });
    }
    const elements = elementCountOf(value.type);
    const expectedBytes = blobPayloadBytes(dtype, elements);
    if (record.byteSize !== expectedBytes) {
      fail(`blob payload in ${where} does not hold ${formatValueType(value.type)}`, {
        code: 'bad-blob',
        position: value.position,
        expected: `${expectedBytes} bytes (${elements} x ${dtype})`,
        found: `${record.byteSize} bytes`,
      });
    }
    this.blobs.set(value, record);
  }
}

function readRecordOrFail(
  bytes: Uint8Array,
  value: BlobValue,
  where: string,
  deviations: BlobFieldDeviation[],
  fail: StatementFail,
): BlobRecord {
  try {
    const { dtype } = value.type;
    if (!isBlobDtype(dtype)) return readBlobRecord(bytes, value.offset);
    return readBlobRecordAs(
      bytes,
      value.offset,
      { dtype, elementCount: elementCountOf(value.type) },
      { deviations },
    );
  } catch (error) {
    if (!(error instanceof MilBlobError)) throw error;
    return fail(`bad blob record in ${where}: ${error.message}`, {
      code: 'bad-blob',
      position: value.position,
      expected: error.expected,
      found: error.found,
    });
  }
}

/**
 * A statement's parameters by name: from the argument list or, for `const`'s `val` and the
 * attribute-only constexpr ops, from the attribute block (every attribute but `name`).
 */
function givenParameters(
  statement: OpStatement,
  schema: OpSchema,
  fail: StatementFail,
): Map<string, Argument> {
  const given = new Map<string, Argument>();
  const paramNames = schema.params.map((p) => p.name);
  const add = (key: string, argument: Argument) => {
    if (!paramNames.includes(key)) {
      fail(`unknown parameter '${key}'`, {
        code: 'unknown-param',
        position: argument.position,
        expected: paramNames.length === 0 ? 'no parameters' : `one of ${paramNames.join(', ')}`,
        found: key,
      });
    }
    if (given.has(key)) {
      fail(`parameter '${key}' is given both as an argument and as an attribute`, {
        code: 'duplicate-param',
        position: argument.position,
      });
    }
    given.set(key, argument);
  };
  for (const [key, argument] of statement.args) add(key, argument);
  for (const [key, value] of statement.attributes) if (key !== 'name') add(key, value);
  const constValue = statement.op === 'const' ? given.get('val') : undefined;
  if (constValue !== undefined && !isValue(constValue)) {
    fail("'val' must be a literal such as int32(1)", { code: 'param-kind', position: constValue.position });
  }
  return given;
}

function isValue(argument: Argument): argument is Value {
  return argument.kind !== 'ref' && argument.kind !== 'tuple';
}

/** Elements a literal denotes (fp16 literals rounded to fp16), or undefined for a blob. */
export function literalData(value: Value): readonly ScalarData[] | undefined {
  const denote = (element: ScalarData) =>
    typeof element === 'number' ? literalNumber(value.type.dtype, element) : element;
  switch (value.kind) {
    case 'scalar':
      return [denote(value.value)];
    case 'tensor':
      return value.data.map(denote);
    case 'blob':
      return undefined;
  }
}

function matchesInferred(declared: ValueType, inferred: TensorType): boolean {
  if (declared.dtype !== inferred.dtype) return false;
  const shape = shapeOf(declared);
  return (
    shape.length === inferred.shape.length &&
    shape.every((dim, i) => inferred.shape[i] === UNKNOWN_DIM || inferred.shape[i] === dim)
  );
}

function formatInferred(type: TensorType): string {
  return type.shape.length === 0 ? type.dtype : `tensor<${type.dtype}, ${formatShape(type.shape)}>`;
}
