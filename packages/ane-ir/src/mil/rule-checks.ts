/**
 * Static checks of a parsed MIL program against the ANE rule table: one check per rule whose
 * enforcement is 'mil-check', registered in `RULE_CHECKS` under the rule's id. A check reports
 * findings (what is wrong, where); `checkProgramRules` turns them into violations whose message
 * also says what the hardware does and how to fix it, from the rule's own data.
 */
import type { Argument, BlobValue, Func, MilProgram, OpStatement, SourcePosition, Value } from './ast';
import { statementName } from './ast';
import {
  BLOB_HEADER_BYTES,
  type BlobRecord,
  blobPayloadBytes,
  isBlobDtype,
  MilBlobError,
  readBlobRecordAs,
} from './blob';
import { defaultBuildInfoLine } from './build-info';
import { roundToFp16 } from './fp16';
import {
  ANE_RULES,
  ANE_UNSUPPORTED_OPS,
  type AneRule,
  type ChipFamily,
  chipAtLeast,
  DEFAULT_CHIP,
  getRule,
  M1_SOFTWARE_RESIZE_OPS,
  OP_FAMILY_FLOORS,
  REQUIRED_EXPLICIT_PARAMS,
  type RuleSeverity,
  ruleAppliesTo,
  ruleLimit,
  ruleSeverity,
} from './rules';
import { byteWidthOf, type MilDtype, shapeOf, type ValueType } from './types';

export interface RuleViolation {
  readonly ruleId: string;
  readonly severity: RuleSeverity;
  readonly chip: ChipFamily;
  /** The op type (`conv`) when the violation is about a statement. */
  readonly op?: string;
  /** The statement's `name` attribute (else its first output), or the parameter or value concerned. */
  readonly subject?: string;
  readonly position: SourcePosition;
  /** What is wrong and where, what the hardware does, and the fix. */
  readonly message: string;
}

export interface RuleCheckOptions {
  /** Chip family to check for; `DEFAULT_CHIP` when omitted. */
  readonly chip?: ChipFamily;
  /** The program's weights dictionary; blob checks run only when it is given. */
  readonly weights?: ReadonlyMap<string, Uint8Array>;
}

/** What a check found: the specific problem, and the statement or named value it is about. */
export interface RuleFinding {
  readonly detail: string;
  readonly position: SourcePosition;
  readonly statement?: OpStatement;
  readonly subject?: string;
}

/** One function with its def-use tables, built once per check run. */
export interface FunctionGraph {
  readonly func: Func;
  /** Declared type of every parameter and statement output. */
  readonly types: ReadonlyMap<string, ValueType>;
  readonly producers: ReadonlyMap<string, OpStatement>;
  readonly consumers: ReadonlyMap<string, readonly OpStatement[]>;
  readonly params: ReadonlySet<string>;
}

export interface RuleCheckContext {
  readonly program: MilProgram;
  readonly functions: readonly FunctionGraph[];
  readonly chip: ChipFamily;
  readonly rule: AneRule;
  readonly weights: ReadonlyMap<string, Uint8Array> | undefined;
}

export type RuleCheck = (context: RuleCheckContext) => RuleFinding[];

// ---- graph and value helpers ----

function refNames(argument: Argument): string[] {
  if (argument.kind === 'ref') return [argument.name];
  if (argument.kind === 'tuple')
    return argument.items.flatMap((item) => (item.kind === 'ref' ? [item.name] : []));
  return [];
}

function buildGraph(func: Func): FunctionGraph {
  const types = new Map<string, ValueType>();
  const producers = new Map<string, OpStatement>();
  const consumers = new Map<string, OpStatement[]>();
  for (const param of func.params) types.set(param.name, param.type);
  for (const statement of func.body) {
    for (const argument of statement.args.values()) {
      for (const name of refNames(argument)) {
        const list = consumers.get(name) ?? [];
        list.push(statement);
        consumers.set(name, list);
      }
    }
    for (const output of statement.outputs) {
      types.set(output.name, output.type);
      producers.set(output.name, statement);
    }
  }
  return { func, types, producers, consumers, params: new Set(func.params.map((p) => p.name)) };
}

/** A parameter from the call arguments or, for attribute-form ops (`constexpr_*`), the attribute block. */
function parameter(statement: OpStatement, name: string): Argument | undefined {
  return statement.args.get(name) ?? (name === 'name' ? undefined : statement.attributes.get(name));
}

function hasParameter(statement: OpStatement, name: string): boolean {
  return parameter(statement, name) !== undefined;
}

/** The literal an argument denotes: inline, or the `val` of the `const` it refers to. */
function constantValue(graph: FunctionGraph, argument: Argument | undefined): Value | undefined {
  if (argument === undefined || argument.kind === 'tuple') return undefined;
  if (argument.kind !== 'ref') return argument;
  const producer = graph.producers.get(argument.name);
  return producer?.op === 'const' ? producer.attributes.get('val') : undefined;
}

/** Whether an argument is fixed at compile time: a literal, a `const` or a `constexpr_*` output. */
function isCompileTimeConstant(graph: FunctionGraph, argument: Argument | undefined): boolean {
  if (argument === undefined || argument.kind === 'tuple') return false;
  if (argument.kind !== 'ref') return true;
  const producer = graph.producers.get(argument.name);
  return producer !== undefined && (producer.op === 'const' || producer.op.startsWith('constexpr_'));
}

function argumentType(graph: FunctionGraph, argument: Argument | undefined): ValueType | undefined {
  if (argument === undefined || argument.kind === 'tuple') return undefined;
  return argument.kind === 'ref' ? graph.types.get(argument.name) : argument.type;
}

function numbersOf(value: Value | undefined): number[] | undefined {
  if (value === undefined || value.kind === 'blob') return undefined;
  const data = value.kind === 'scalar' ? [value.value] : value.data;
  return data.every((d) => typeof d === 'number') ? (data as number[]) : undefined;
}

function stringOf(value: Value | undefined): string | undefined {
  return value?.kind === 'scalar' && typeof value.value === 'string' ? value.value : undefined;
}

function booleanOf(value: Value | undefined): boolean | undefined {
  return value?.kind === 'scalar' && typeof value.value === 'boolean' ? value.value : undefined;
}

function label(statement: OpStatement): string {
  return statementName(statement) ?? statement.outputs[0]?.name ?? statement.op;
}

function at(statement: OpStatement, detail: string): RuleFinding {
  return { detail, position: statement.position, statement };
}

function* statementsOf(context: RuleCheckContext): Generator<[OpStatement, FunctionGraph]> {
  for (const graph of context.functions) for (const statement of graph.func.body) yield [statement, graph];
}

/** Every named value with its declared type and where it is declared. */
function* typedValuesOf(
  context: RuleCheckContext,
): Generator<{ name: string; type: ValueType; position: SourcePosition; statement?: OpStatement }> {
  for (const graph of context.functions) {
    for (const param of graph.func.params)
      yield { name: param.name, type: param.type, position: param.position };
    for (const statement of graph.func.body) {
      for (const output of statement.outputs) {
        yield { name: output.name, type: output.type, position: output.position, statement };
      }
    }
  }
}

/** Function inputs and returned values, with their types. */
function* ioValuesOf(
  context: RuleCheckContext,
): Generator<{ name: string; type: ValueType; position: SourcePosition; role: 'input' | 'output' }> {
  for (const graph of context.functions) {
    for (const param of graph.func.params) {
      yield { name: param.name, type: param.type, position: param.position, role: 'input' };
    }
    for (const returned of graph.func.returns) {
      const type = graph.types.get(returned.name);
      if (type !== undefined)
        yield { name: returned.name, type, position: returned.position, role: 'output' };
    }
  }
}

/** Every literal in a statement: call arguments (and tuple items) and attributes other than `name`. */
function* literalsOf(statement: OpStatement): Generator<[string, Value]> {
  for (const [param, argument] of statement.args) {
    if (argument.kind === 'tuple') {
      for (const item of argument.items) if (item.kind !== 'ref') yield [param, item];
    } else if (argument.kind !== 'ref') {
      yield [param, argument];
    }
  }
  for (const [attribute, value] of statement.attributes) if (attribute !== 'name') yield [attribute, value];
}

function* blobValuesOf(context: RuleCheckContext): Generator<[BlobValue, OpStatement]> {
  for (const [statement] of statementsOf(context)) {
    for (const [, value] of literalsOf(statement)) if (value.kind === 'blob') yield [value, statement];
  }
}

function opNamed(ops: readonly string[], detail: (op: string) => string): RuleCheck {
  const set = new Set(ops);
  return (context) => {
    const findings: RuleFinding[] = [];
    for (const [statement] of statementsOf(context)) {
      if (set.has(statement.op)) findings.push(at(statement, detail(statement.op)));
    }
    return findings;
  };
}

function limitOf(context: RuleCheckContext): number {
  const limit = ruleLimit(context.rule, context.chip);
  if (limit === undefined) throw new Error(`rule ${context.rule.id} has no limit for ${context.chip}`);
  return limit;
}

function byteSizeOf(type: ValueType): number {
  let elements = 1;
  for (const dim of shapeOf(type)) elements *= dim;
  return isBlobDtype(type.dtype)
    ? blobPayloadBytes(type.dtype, elements)
    : elements * (byteWidthOf(type.dtype) ?? 1);
}

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_@]*$/;
const BINARY_ELEMENTWISE_OPS = [
  'add',
  'sub',
  'mul',
  'real_div',
  'pow',
  'maximum',
  'minimum',
  'equal',
  'not_equal',
  'less',
  'less_equal',
  'greater',
  'greater_equal',
];
const NONLINEAR_OPS = new Set([
  'relu',
  'relu6',
  'sigmoid',
  'sigmoid_hard',
  'tanh',
  'gelu',
  'silu',
  'softplus',
  'softsign',
  'elu',
  'leaky_relu',
  'clamped_relu',
  'thresholded_relu',
  'prelu',
  'scaled_tanh',
  'exp',
  'exp2',
  'log',
  'sqrt',
  'rsqrt',
  'inverse',
  'erf',
  'softmax',
]);
const NON_FP16_COMPUTE_DTYPES: ReadonlySet<MilDtype> = new Set(['fp32', 'fp64', 'bf16', 'int32', 'int64']);
const ANE_IO_DTYPES: ReadonlySet<MilDtype> = new Set([
  'fp16',
  'fp32',
  'int8',
  'uint8',
  'int16',
  'uint16',
  'bool',
]);
const MODEL_PATH_PREFIX = '@model_path/';

/**
 * Why `path` (a BLOBFILE path, which is also its weights-dictionary key) cannot be staged in the
 * model directory, or undefined when it can: it must be `@model_path/` followed by a relative path
 * whose components are not empty, `.` or `..` (rule `io-in-memory-api`). `@model_path/weights/w.bin`
 * (maderix), `@model_path/layer0/wq.bin` and `@model_path/embed.bin` (Orion) all qualify.
 */
export function weightPathProblem(path: string): string | undefined {
  if (!path.startsWith(MODEL_PATH_PREFIX)) return `does not start with ${MODEL_PATH_PREFIX}`;
  const relative = path.slice(MODEL_PATH_PREFIX.length);
  if (relative.length === 0) return `names no file after ${MODEL_PATH_PREFIX}`;
  if (relative.startsWith('/')) return `is absolute after ${MODEL_PATH_PREFIX}`;
  if (relative.includes('\0')) return 'contains a NUL character';
  const components = relative.split('/');
  if (components.includes('..')) return "has a '..' component, which would leave the model directory";
  if (components.includes('')) return 'has an empty component (a doubled or trailing /)';
  if (components.includes('.')) return "has a '.' component";
  return undefined;
}

function isFp16Zero(value: number): boolean {
  return roundToFp16(value) === 0;
}

/** Letters renamed in order of first appearance: `nchw,nwhu->nchu` -> `abcd,adce->abce`. */
function canonicalEinsum(equation: string): string {
  const names = new Map<string, string>();
  return equation.replace(/\s+/g, '').replace(/[A-Za-z]/g, (letter) => {
    if (!names.has(letter)) names.set(letter, String.fromCharCode(97 + names.size));
    return names.get(letter)!;
  });
}

const ANE_EINSUM_FORMS = new Set(['nchw,nwhu->nchu', 'chw,whr->chr'].map(canonicalEinsum));

/** Whether a slice's begin is nonzero on the last axis of its input. */
function isWidthOffsetSlice(graph: FunctionGraph, statement: OpStatement | undefined): boolean {
  if (statement === undefined || (statement.op !== 'slice_by_size' && statement.op !== 'slice_by_index'))
    return false;
  const begin = numbersOf(constantValue(graph, parameter(statement, 'begin')));
  const last = begin?.[begin.length - 1];
  return last !== undefined && last !== 0;
}

// ---- the checks, keyed by rule id ----

/** The two dialects: the program version each function's opset must go with. */
const DIALECT_OPSETS: Readonly<Record<string, string>> = { '1.3': 'ios18', '1.0': 'ios16' };

const checks: Record<string, RuleCheck> = {
  'emit-program-skeleton': ({ program, functions }) => {
    const findings: RuleFinding[] = [];
    const where = program.position;
    // program(1.3)/<ios18> is the default; program(1.0)/<ios16> is the fallback dialect the
    // reference keeps for older chips (rule emit-scalar-syntax).
    const opset = DIALECT_OPSETS[program.version];
    if (opset === undefined)
      findings.push({ detail: `program version is ${program.version}, not 1.3 (or 1.0)`, position: where });
    if (program.buildInfo === undefined)
      findings.push({
        detail: `program has no buildInfo line (devices add the standard one; to write it yourself, put ${defaultBuildInfoLine(program.version)} on the line after program(${program.version}))`,
        position: where,
      });
    if (functions.length !== 1) {
      findings.push({
        detail: `program declares ${functions.length} functions, not exactly one`,
        position: where,
      });
    }
    for (const { func } of functions) {
      if (func.name !== 'main')
        findings.push({
          detail: `function is named '${func.name}', not 'main'`,
          position: func.position,
          subject: func.name,
        });
      if (opset !== undefined && func.opset !== opset) {
        findings.push({
          detail: `function '${func.name}' has opset <${func.opset}>, not <${opset}> (program(${program.version}))`,
          position: func.position,
          subject: func.name,
        });
      }
      const seen = new Set<string>();
      for (const statement of func.body) {
        const name = statementName(statement);
        if (name === undefined)
          findings.push(at(statement, `${statement.op} statement has no name attribute`));
        else if (seen.has(name)) findings.push(at(statement, `op name '${name}' is used twice`));
        else seen.add(name);
      }
    }
    return findings;
  },

  'emit-explicit-params': (context) => {
    const findings: RuleFinding[] = [];
    for (const [statement] of statementsOf(context)) {
      if (!Object.hasOwn(REQUIRED_EXPLICIT_PARAMS, statement.op)) continue;
      const missing = REQUIRED_EXPLICIT_PARAMS[statement.op]!.filter((p) => !hasParameter(statement, p));
      if (missing.length > 0)
        findings.push(at(statement, `${statement.op} leaves ${missing.join(', ')} unspecified`));
    }
    return findings;
  },

  'emit-gelu': (context) => {
    const findings: RuleFinding[] = [];
    for (const [statement] of statementsOf(context)) {
      if (statement.op === 'gelu' && !hasParameter(statement, 'mode'))
        findings.push(at(statement, 'gelu has no mode'));
    }
    return findings;
  },

  'emit-concat': (context) => {
    const findings: RuleFinding[] = [];
    for (const [statement, graph] of statementsOf(context)) {
      if (statement.op !== 'concat') continue;
      const missing = ['axis', 'interleave'].filter((p) => !hasParameter(statement, p));
      if (missing.length > 0) findings.push(at(statement, `concat leaves ${missing.join(', ')} unspecified`));
      if (booleanOf(constantValue(graph, parameter(statement, 'interleave'))) === true) {
        findings.push(at(statement, 'concat passes interleave=true'));
      }
    }
    return findings;
  },

  'emit-bool-const-args': (context) => {
    const findings: RuleFinding[] = [];
    for (const [statement] of statementsOf(context)) {
      if (statement.op === 'const' || statement.op.startsWith('constexpr_')) continue;
      for (const [param, argument] of statement.args) {
        const items = argument.kind === 'tuple' ? argument.items : [argument];
        for (const item of items) {
          if (item.kind === 'ref' || item.kind === 'blob') continue;
          const dtype = item.type.dtype;
          if (dtype === 'bool' || dtype === 'string' || dtype.startsWith('int') || dtype.startsWith('uint')) {
            findings.push(at(statement, `${statement.op} passes ${param} as an inline ${dtype} literal`));
          }
        }
      }
    }
    return findings;
  },

  'emit-conv-bias': (context) => {
    const findings: RuleFinding[] = [];
    for (const [statement] of statementsOf(context)) {
      if (statement.op === 'conv' && hasParameter(statement, 'bias'))
        findings.push(at(statement, 'conv takes a bias'));
    }
    return findings;
  },

  'emit-live-outputs': ({ functions }) => {
    const findings: RuleFinding[] = [];
    for (const graph of functions) {
      for (const returned of graph.func.returns) {
        if (graph.producers.has(returned.name)) continue;
        const detail = graph.params.has(returned.name)
          ? `returns parameter '${returned.name}' directly instead of a value computed in the body`
          : `returns '${returned.name}', which no statement defines`;
        findings.push({ detail, position: returned.position, subject: returned.name });
      }
    }
    return findings;
  },

  'emit-identifiers': (context) => {
    const findings: RuleFinding[] = [];
    for (const graph of context.functions) {
      const seen = new Set<string>();
      const declared = [
        ...graph.func.params.map((p) => ({ name: p.name, position: p.position })),
        ...graph.func.body.flatMap((s) => s.outputs.map((o) => ({ name: o.name, position: o.position }))),
      ];
      for (const { name, position } of declared) {
        if (!IDENTIFIER.test(name)) {
          findings.push({
            detail: `'${name}' is not a valid identifier ([A-Za-z_][A-Za-z0-9_@]*)`,
            position,
            subject: name,
          });
        }
        if (seen.has(name)) findings.push({ detail: `'${name}' is declared twice`, position, subject: name });
        seen.add(name);
      }
    }
    return findings;
  },

  'emit-binary-dtype': (context) => {
    const binary = new Set(BINARY_ELEMENTWISE_OPS);
    const findings: RuleFinding[] = [];
    for (const [statement, graph] of statementsOf(context)) {
      if (!binary.has(statement.op)) continue;
      const x = argumentType(graph, parameter(statement, 'x'));
      const y = argumentType(graph, parameter(statement, 'y'));
      if (x !== undefined && y !== undefined && x.dtype !== y.dtype) {
        findings.push(at(statement, `${statement.op} mixes a ${x.dtype} x with a ${y.dtype} y`));
      }
    }
    return findings;
  },

  'emit-constexpr-params': (context) => {
    const findings: RuleFinding[] = [];
    for (const [statement] of statementsOf(context)) {
      if (statement.op.startsWith('constexpr_') && statement.args.size > 0) {
        const names = [...statement.args.keys()].join(', ');
        findings.push(
          at(statement, `${statement.op} passes ${names} inside the parentheses, not in the attribute block`),
        );
      }
    }
    return findings;
  },

  'emit-linear-const-weight': (context) => {
    const findings: RuleFinding[] = [];
    for (const [statement, graph] of statementsOf(context)) {
      if (statement.op !== 'linear' && statement.op !== 'conv_transpose') continue;
      const weight = parameter(statement, 'weight');
      if (weight !== undefined && !isCompileTimeConstant(graph, weight)) {
        findings.push(at(statement, `${statement.op} weight is not a const`));
      }
    }
    return findings;
  },

  'emit-pow-const-base2': (context) => {
    const findings: RuleFinding[] = [];
    for (const [statement, graph] of statementsOf(context)) {
      if (statement.op !== 'pow') continue;
      const base = numbersOf(constantValue(graph, parameter(statement, 'x')));
      if (base !== undefined && base.length > 0 && base.every((b) => b === 2)) {
        findings.push(at(statement, 'pow has a constant base of 2'));
      }
    }
    return findings;
  },

  'emit-square-opcode': (context) => {
    const findings: RuleFinding[] = [];
    for (const [statement, graph] of statementsOf(context)) {
      if (statement.op !== 'square') continue;
      const output = statement.outputs[0];
      const width = output === undefined ? undefined : shapeOf(output.type).at(-1);
      if (width === undefined || width % 128 <= 64) continue;
      const nonlinear = (graph.consumers.get(output!.name) ?? []).find((c) => NONLINEAR_OPS.has(c.op));
      if (nonlinear !== undefined) {
        findings.push(
          at(statement, `square of last-axis width ${width} (${width} % 128 > 64) feeds ${nonlinear.op}`),
        );
      }
    }
    return findings;
  },

  'emit-mul-reduce-zero': (context) => {
    const findings: RuleFinding[] = [];
    for (const [statement, graph] of statementsOf(context)) {
      if (statement.op !== 'mul') continue;
      for (const [reduced, factor] of [
        ['x', 'y'],
        ['y', 'x'],
      ] as const) {
        const reducedArgument = parameter(statement, reduced);
        const producer =
          reducedArgument?.kind === 'ref' ? graph.producers.get(reducedArgument.name) : undefined;
        if (producer?.op !== 'reduce_sum' && producer?.op !== 'reduce_mean') continue;
        const numbers = numbersOf(constantValue(graph, parameter(statement, factor)));
        if (numbers !== undefined && numbers.length > 0 && numbers.every(isFp16Zero)) {
          findings.push(
            at(
              statement,
              `mul multiplies the ${producer.op} output '${label(producer)}' by a constant that is 0 in fp16`,
            ),
          );
        }
      }
    }
    return findings;
  },

  'emit-constexpr-routing': (context) => {
    const findings: RuleFinding[] = [];
    const weightOperands: Record<string, readonly string[]> = {
      conv: ['weight'],
      linear: ['weight'],
      matmul: ['x', 'y'],
    };
    for (const [statement, graph] of statementsOf(context)) {
      if (statement.op === 'reshape') {
        const x = parameter(statement, 'x');
        const producer = x?.kind === 'ref' ? graph.producers.get(x.name) : undefined;
        if (producer?.op.startsWith('constexpr_')) {
          findings.push(at(statement, `reshape of the ${producer.op} output '${label(producer)}'`));
        }
      }
      for (const param of weightOperands[statement.op] ?? []) {
        const operand = parameter(statement, param);
        const producer = operand?.kind === 'ref' ? graph.producers.get(operand.name) : undefined;
        if (producer?.op === 'constexpr_blockwise_shift_scale') {
          findings.push(
            at(
              statement,
              `${statement.op} ${param} is the constexpr_blockwise_shift_scale output '${label(producer)}'`,
            ),
          );
        }
      }
    }
    return findings;
  },

  'dim-rank': (context) => {
    const limit = limitOf(context);
    const findings: RuleFinding[] = [];
    for (const value of typedValuesOf(context)) {
      const rank = shapeOf(value.type).length;
      if (rank > limit) {
        findings.push({
          detail: `'${value.name}' has rank ${rank}`,
          position: value.position,
          subject: value.name,
          ...(value.statement ? { statement: value.statement } : {}),
        });
      }
    }
    for (const [statement, graph] of statementsOf(context)) {
      if (statement.op !== 'reshape') continue;
      const shape = numbersOf(constantValue(graph, parameter(statement, 'shape')));
      if (shape !== undefined && shape.length > limit)
        findings.push(at(statement, `reshape shape has ${shape.length} entries`));
    }
    return findings;
  },

  'dim-transpose-matmul-rank': (context) => {
    const limit = limitOf(context);
    const findings: RuleFinding[] = [];
    for (const [statement, graph] of statementsOf(context)) {
      if (statement.op !== 'matmul') continue;
      for (const param of ['x', 'y']) {
        const operand = parameter(statement, param);
        const producer = operand?.kind === 'ref' ? graph.producers.get(operand.name) : undefined;
        const rank = producer?.op === 'transpose' ? shapeOf(producer.outputs[0]!.type).length : 0;
        if (rank > limit)
          findings.push(at(statement, `matmul ${param} is a rank-${rank} transpose ('${label(producer!)}')`));
      }
    }
    return findings;
  },

  'dim-axis-range': (context) => {
    const limit = limitOf(context);
    const findings: RuleFinding[] = [];
    for (const value of typedValuesOf(context)) {
      const shape = shapeOf(value.type);
      const zeroAxis = shape.findIndex((d) => d < 1);
      const statement = value.statement ? { statement: value.statement } : {};
      if (zeroAxis >= 0) {
        findings.push({
          detail: `'${value.name}' has a zero-size axis ${zeroAxis}`,
          position: value.position,
          subject: value.name,
          ...statement,
        });
      } else if (shape.length === 4 && shape[0]! > limit) {
        findings.push({
          detail: `'${value.name}' has batch extent ${shape[0]} > ${limit}`,
          position: value.position,
          subject: value.name,
          ...statement,
        });
      }
    }
    return findings;
  },

  'dim-spatial': (context) => {
    const cap = limitOf(context);
    const findings: RuleFinding[] = [];
    for (const value of typedValuesOf(context)) {
      const shape = shapeOf(value.type);
      const axes = shape.length === 4 ? [2, 3] : shape.map((_, i) => i);
      const axis = axes.find((i) => shape[i]! > cap);
      if (axis !== undefined) {
        findings.push({
          detail: `'${value.name}' has extent ${shape[axis]} on axis ${axis}, over the ${context.chip} cap of ${cap}`,
          position: value.position,
          subject: value.name,
          ...(value.statement ? { statement: value.statement } : {}),
        });
      }
    }
    return findings;
  },

  'dim-channel': (context) => {
    const limit = limitOf(context);
    const findings: RuleFinding[] = [];
    for (const value of typedValuesOf(context)) {
      const shape = shapeOf(value.type);
      if (shape.length === 4 && shape[1]! > limit) {
        findings.push({
          detail: `'${value.name}' has ${shape[1]} channels`,
          position: value.position,
          subject: value.name,
          ...(value.statement ? { statement: value.statement } : {}),
        });
      }
    }
    return findings;
  },

  'dim-transpose-extent': (context) => {
    const cap = limitOf(context);
    const genericCap = ruleLimit(getRule('dim-axis-range'), context.chip) ?? cap;
    const findings: RuleFinding[] = [];
    for (const [statement, graph] of statementsOf(context)) {
      if (statement.op !== 'transpose') continue;
      const perm = numbersOf(constantValue(graph, parameter(statement, 'perm')));
      const shape = statement.outputs[0] ? shapeOf(statement.outputs[0].type) : [];
      if (perm === undefined || perm.length !== shape.length) continue;
      // dim-spatial already caps every axis except the batch and channel axes of rank-4 tensors at
      // this value, so only a transpose between those two positions adds information here.
      const isUncappedPosition = (axis: number) => shape.length === 4 && axis < 2;
      perm.forEach((from, to) => {
        const extent = shape[to]!;
        const source = from < 0 ? from + shape.length : from;
        if (source === to || !isUncappedPosition(to) || !isUncappedPosition(source)) return;
        if (extent > cap && extent <= genericCap) {
          findings.push(
            at(
              statement,
              `transpose moves an axis of extent ${extent} (axis ${source} to ${to}), over the ${context.chip} cap of ${cap}`,
            ),
          );
        }
      });
    }
    return findings;
  },

  'dim-conv-kernel-width': (context) => {
    const limit = limitOf(context);
    const findings: RuleFinding[] = [];
    for (const [statement, graph] of statementsOf(context)) {
      if (statement.op !== 'conv' && statement.op !== 'conv_transpose') continue;
      const weight = argumentType(graph, parameter(statement, 'weight'));
      const width = weight === undefined ? undefined : shapeOf(weight).at(-1);
      if (weight !== undefined && shapeOf(weight).length >= 3 && width !== undefined && width > limit) {
        findings.push(
          at(statement, `${statement.op} kernel is ${width} wide; ${context.chip} allows at most ${limit}`),
        );
      }
    }
    return findings;
  },

  'dim-pool-window': (context) => {
    const limit = limitOf(context);
    const pools = new Set(['avg_pool', 'max_pool', 'l2_pool']);
    const findings: RuleFinding[] = [];
    for (const [statement, graph] of statementsOf(context)) {
      if (!pools.has(statement.op)) continue;
      const kernel = numbersOf(constantValue(graph, parameter(statement, 'kernel_sizes')));
      if (kernel?.some((k) => k > limit)) {
        findings.push(
          at(statement, `${statement.op} window [${kernel.join(', ')}] exceeds ${limit} on ${context.chip}`),
        );
      }
    }
    return findings;
  },

  'dim-conv-32000-cin': (context) => {
    const limit = limitOf(context);
    const findings: RuleFinding[] = [];
    for (const [statement, graph] of statementsOf(context)) {
      if (statement.op !== 'conv') continue;
      const x = argumentType(graph, parameter(statement, 'x'));
      const channels = x === undefined ? undefined : shapeOf(x)[1];
      if (channels !== undefined && channels > limit)
        findings.push(at(statement, `conv has ${channels} input channels`));
    }
    return findings;
  },

  'dtype-compute': (context) => {
    const findings: RuleFinding[] = [];
    for (const [statement] of statementsOf(context)) {
      if (statement.op === 'const' || statement.op === 'cast' || statement.op.startsWith('constexpr_'))
        continue;
      const output = statement.outputs.find((o) => NON_FP16_COMPUTE_DTYPES.has(o.type.dtype));
      if (output !== undefined) {
        findings.push(at(statement, `${statement.op} computes ${output.type.dtype} ('${output.name}')`));
      }
    }
    return findings;
  },

  'dtype-io': (context) => {
    const findings: RuleFinding[] = [];
    for (const io of ioValuesOf(context)) {
      if (!ANE_IO_DTYPES.has(io.type.dtype)) {
        findings.push({
          detail: `${io.role} '${io.name}' has dtype ${io.type.dtype}`,
          position: io.position,
          subject: io.name,
        });
      }
    }
    return findings;
  },

  'dtype-fp32-io-in-memory': (context) => {
    const findings: RuleFinding[] = [];
    for (const io of ioValuesOf(context)) {
      if (io.type.dtype === 'fp32') {
        findings.push({ detail: `${io.role} '${io.name}' is fp32`, position: io.position, subject: io.name });
      }
    }
    return findings;
  },

  'dtype-cast-int32': (context) => {
    const findings: RuleFinding[] = [];
    for (const [statement, graph] of statementsOf(context)) {
      if (
        statement.op === 'cast' &&
        stringOf(constantValue(graph, parameter(statement, 'dtype'))) === 'int32'
      ) {
        findings.push(at(statement, 'cast to int32'));
      }
    }
    return findings;
  },

  'dtype-bool': (context) => {
    const findings: RuleFinding[] = [];
    for (const io of ioValuesOf(context)) {
      if (io.type.dtype === 'bool') {
        findings.push({ detail: `${io.role} '${io.name}' is bool`, position: io.position, subject: io.name });
      }
    }
    return findings;
  },

  'op-family-floors': (context) => {
    const findings: RuleFinding[] = [];
    for (const [statement] of statementsOf(context)) {
      if (!Object.hasOwn(OP_FAMILY_FLOORS, statement.op)) continue;
      const floor = OP_FAMILY_FLOORS[statement.op]!;
      if (!chipAtLeast(context.chip, floor)) {
        findings.push(at(statement, `${statement.op} needs ${floor} or later, not ${context.chip}`));
      }
    }
    return findings;
  },

  'op-unsupported': opNamed(ANE_UNSUPPORTED_OPS, (op) => `${op} has no ANE implementation`),
  'op-gather': opNamed(['gather', 'gather_along_axis'], (op) => `${op} is not reliably native on the ANE`),
  'op-cumsum': opNamed(['cumsum'], () => 'cumsum is not reliably native on the ANE'),
  'op-reduce-prod': opNamed(['reduce_prod'], () => 'reduce_prod has no ANE implementation'),
  'op-resize-m1': opNamed(M1_SOFTWARE_RESIZE_OPS, (op) => `${op} runs in software on M1`),
  'op-range-1d': opNamed(['range_1d'], () => 'range_1d is rejected by M1 codegen'),

  'op-runtime-weight-conv': (context) => {
    const findings: RuleFinding[] = [];
    for (const [statement, graph] of statementsOf(context)) {
      if (statement.op !== 'conv') continue;
      const weight = parameter(statement, 'weight');
      if (weight === undefined || isCompileTimeConstant(graph, weight)) continue;
      const origin =
        weight.kind === 'ref'
          ? graph.params.has(weight.name)
            ? `'${weight.name}' is a function input`
            : `'${weight.name}' is computed by ${graph.producers.get(weight.name)?.op ?? 'an unknown op'}`
          : 'it is not a const';
      findings.push(at(statement, `conv weight must be constant on the ANE; ${origin}`));
    }
    return findings;
  },

  'op-einsum': (context) => {
    const findings: RuleFinding[] = [];
    for (const [statement, graph] of statementsOf(context)) {
      if (statement.op !== 'einsum') continue;
      const equation = stringOf(constantValue(graph, parameter(statement, 'equation')));
      if (equation !== undefined && !ANE_EINSUM_FORMS.has(canonicalEinsum(equation))) {
        findings.push(at(statement, `einsum equation '${equation}' is not an ANE form`));
      }
      const values = parameter(statement, 'values');
      const second = values?.kind === 'tuple' ? values.items[1] : undefined;
      if (second !== undefined && !isCompileTimeConstant(graph, second)) {
        findings.push(at(statement, 'einsum second operand is not a const'));
      }
    }
    return findings;
  },

  'op-tile-factors': (context) => {
    const findings: RuleFinding[] = [];
    const allowed = new Set([2, 3, 4, 8]);
    for (const [statement, graph] of statementsOf(context)) {
      if (statement.op === 'tile') {
        const reps = numbersOf(constantValue(graph, parameter(statement, 'reps')));
        if (reps?.some((r) => r !== 1 && !allowed.has(r)))
          findings.push(at(statement, `tile reps [${reps.join(', ')}]`));
      } else if (statement.op === 'space_to_batch') {
        const block = numbersOf(constantValue(graph, parameter(statement, 'block_shape')));
        if (block?.some((b) => !allowed.has(b))) {
          findings.push(at(statement, `space_to_batch block shape [${block.join(', ')}]`));
        }
      }
    }
    return findings;
  },

  'op-pad-modes': (context) => {
    const findings: RuleFinding[] = [];
    for (const [statement, graph] of statementsOf(context)) {
      if (statement.op !== 'pad') continue;
      const mode = stringOf(constantValue(graph, parameter(statement, 'mode')));
      if (mode === 'reflect' || mode === 'symmetric')
        findings.push(at(statement, `pad mode '${mode}' on M1`));
    }
    return findings;
  },

  'op-layer-norm-affine': (context) => {
    const findings: RuleFinding[] = [];
    for (const [statement] of statementsOf(context)) {
      if (statement.op !== 'layer_norm') continue;
      const affine = ['gamma', 'beta'].filter((p) => hasParameter(statement, p));
      if (affine.length > 0) findings.push(at(statement, `layer_norm with ${affine.join(' and ')}`));
    }
    return findings;
  },

  'num-width-slice-concat': (context) => {
    const findings: RuleFinding[] = [];
    for (const [statement, graph] of statementsOf(context)) {
      if (statement.op !== 'concat') continue;
      const values = parameter(statement, 'values');
      if (values === undefined) continue;
      const slices = refNames(values)
        .map((name) => graph.producers.get(name))
        .filter((producer) => isWidthOffsetSlice(graph, producer));
      if (slices.length >= 2) {
        const names = slices.map((s) => `'${label(s!)}'`).join(', ');
        findings.push(
          at(statement, `concat joins ${slices.length} slices with a nonzero last-axis begin (${names})`),
        );
      }
    }
    return findings;
  },

  'num-eps-underflow': (context) => {
    const findings: RuleFinding[] = [];
    for (const [statement] of statementsOf(context)) {
      for (const [param, value] of literalsOf(statement)) {
        if (value.type.dtype !== 'fp16') continue;
        const tiny = numbersOf(value)?.find((n) => n !== 0 && isFp16Zero(n));
        if (tiny !== undefined) findings.push(at(statement, `fp16 constant ${tiny} (${param}) rounds to 0`));
      }
    }
    return findings;
  },

  'num-mask-value': (context) => {
    const findings: RuleFinding[] = [];
    for (const [statement] of statementsOf(context)) {
      for (const [, value] of literalsOf(statement)) {
        if (value.type.dtype !== 'fp16' && value.type.dtype !== 'fp32') continue;
        if (value.kind === 'blob') {
          if (value.type.dtype === 'fp16' && blobHoldsInfinity(context, value)) {
            findings.push(at(statement, `constant '${label(statement)}' (${value.path}) holds ±inf`));
          }
        } else if (
          numbersOf(value)?.some((n) => n === Number.POSITIVE_INFINITY || n === Number.NEGATIVE_INFINITY)
        ) {
          findings.push(at(statement, `constant '${label(statement)}' holds ±inf`));
        }
      }
    }
    return findings;
  },

  'io-binding-order': ({ functions }) => {
    const findings: RuleFinding[] = [];
    for (const { func } of functions) {
      for (const [role, names, position] of [
        ['inputs', func.params.map((p) => p.name), func.params[0]?.position],
        ['outputs', func.returns.map((r) => r.name), func.returns[0]?.position],
      ] as const) {
        const sorted = [...names].sort();
        if (position !== undefined && names.some((n, i) => n !== sorted[i])) {
          findings.push({ detail: `${role} (${names.join(', ')}) are not in alphabetical order`, position });
        }
      }
    }
    return findings;
  },

  'io-alignment': (context) => {
    const alignment = limitOf(context);
    const findings: RuleFinding[] = [];
    for (const io of ioValuesOf(context)) {
      const shape = shapeOf(io.type);
      const last = shape.at(-1) ?? 1;
      const bytes = last * (byteWidthOf(io.type.dtype) ?? 1);
      if (bytes % alignment !== 0) {
        findings.push({
          detail: `${io.role} '${io.name}' has a last axis of ${bytes} bytes`,
          position: io.position,
          subject: io.name,
        });
      }
    }
    return findings;
  },

  'io-in-memory-api': (context) => {
    const findings: RuleFinding[] = [];
    for (const [blob, statement] of blobValuesOf(context)) {
      const problem = weightPathProblem(blob.path);
      if (problem !== undefined) {
        findings.push(at(statement, `BLOBFILE path '${blob.path}' ${problem}`));
      } else if (context.weights !== undefined && !context.weights.has(blob.path)) {
        findings.push(at(statement, `BLOBFILE path '${blob.path}' has no entry in the weights dictionary`));
      }
    }
    return findings;
  },

  'blob-offset': (context) => {
    const findings: RuleFinding[] = [];
    for (const [blob, statement] of blobValuesOf(context)) {
      const bytes = context.weights?.get(blob.path);
      if (bytes === undefined) continue;
      const problem = blobProblem(bytes, blob);
      if (problem !== undefined)
        findings.push(at(statement, `BLOBFILE ${blob.path} offset ${blob.offset}: ${problem}`));
    }
    return findings;
  },

  'blob-multi-tensor-file': (context) => {
    const findings: RuleFinding[] = [];
    const reported = new Set<string>();
    for (const [blob, statement] of blobValuesOf(context)) {
      if (reported.has(blob.path)) continue;
      const bytes = context.weights?.get(blob.path);
      const tensorCount =
        bytes !== undefined && bytes.byteLength >= 4
          ? new DataView(bytes.buffer, bytes.byteOffset).getUint32(0, true)
          : 1;
      if (blob.offset !== BLOB_HEADER_BYTES || tensorCount > 1) {
        reported.add(blob.path);
        findings.push(
          at(
            statement,
            `weight file ${blob.path} holds several tensors (offset ${blob.offset}, ${tensorCount} in the header)`,
          ),
        );
      }
    }
    return findings;
  },

  'perf-sram': (context) => {
    const limit = limitOf(context);
    const findings: RuleFinding[] = [];
    for (const value of typedValuesOf(context)) {
      const bytes = byteSizeOf(value.type);
      if (bytes > limit) {
        findings.push({
          detail: `'${value.name}' takes ${(bytes / 2 ** 20).toFixed(1)} MiB`,
          position: value.position,
          subject: value.name,
          ...(value.statement ? { statement: value.statement } : {}),
        });
      }
    }
    return findings;
  },

  'perf-rmsnorm-reduction': (context) => {
    const limit = limitOf(context);
    const findings: RuleFinding[] = [];
    for (const [statement, graph] of statementsOf(context)) {
      if (statement.op !== 'reduce_sum' && statement.op !== 'reduce_mean') continue;
      const x = argumentType(graph, parameter(statement, 'x'));
      const axes = numbersOf(constantValue(graph, parameter(statement, 'axes')));
      const shape = x === undefined ? [] : shapeOf(x);
      if (shape.length === 4 && shape[0]! > limit && axes?.some((a) => a === 1 || a === -3)) {
        findings.push(at(statement, `${statement.op} over channels of ${shape[0]} rows`));
      }
    }
    return findings;
  },
};

/**
 * The record a BLOBFILE reads, as the validator reads it: a record written by another tool (its
 * payload-offset field is not record + 64) is read as the program declares it; the validator warns
 * about it, this rule does not refuse it (M3 to M5 do not check those fields).
 */
function declaredRecord(bytes: Uint8Array, blob: BlobValue, elements: number): BlobRecord {
  const dtype = blob.type.dtype;
  if (!isBlobDtype(dtype)) throw new TypeError(`${dtype} has no MILBlob dtype code`);
  return readBlobRecordAs(bytes, blob.offset, { dtype, elementCount: elements }, { deviations: [] });
}

function blobProblem(bytes: Uint8Array, blob: BlobValue): string | undefined {
  if (!isBlobDtype(blob.type.dtype)) return `${blob.type.dtype} has no MILBlob dtype code`;
  try {
    let elements = 1;
    for (const dim of blob.type.shape) elements *= dim;
    const record = declaredRecord(bytes, blob, elements);
    const expectedBytes = blobPayloadBytes(blob.type.dtype, elements);
    if (record.dtype !== blob.type.dtype || record.byteSize !== expectedBytes) {
      return `the record holds ${record.dtype} with ${record.byteSize} bytes, the program declares ${blob.type.dtype} × ${elements} (${expectedBytes} bytes)`;
    }
    return undefined;
  } catch (error) {
    if (error instanceof MilBlobError) return error.message;
    throw error;
  }
}

function blobHoldsInfinity(context: RuleCheckContext, blob: BlobValue): boolean {
  const bytes = context.weights?.get(blob.path);
  if (bytes === undefined || blobProblem(bytes, blob) !== undefined) return false;
  let elements = 1;
  for (const dim of blob.type.shape) elements *= dim;
  const record = declaredRecord(bytes, blob, elements);
  const view = new DataView(bytes.buffer, bytes.byteOffset + record.payloadOffset, record.byteSize);
  for (let i = 0; i + 1 < record.byteSize; i += 2) {
    const bits = view.getUint16(i, true);
    if ((bits & 0x7fff) === 0x7c00) return true;
  }
  return false;
}

/** Registered static checks, keyed by rule id (every one names a 'mil-check' rule of `ANE_RULES`). */
export const RULE_CHECKS: ReadonlyMap<string, RuleCheck> = new Map(Object.entries(checks));

function sentenceStart(text: string): string {
  return /^[A-Z][a-z]/.test(text) ? text[0]!.toLowerCase() + text.slice(1) : text;
}

function violationFrom(rule: AneRule, chip: ChipFamily, finding: RuleFinding): RuleViolation {
  const { statement } = finding;
  const subject = statement === undefined ? finding.subject : label(statement);
  // Findings about a parameter or returned value already name it in their detail.
  const where =
    statement !== undefined
      ? ` (op '${subject}')`
      : subject === undefined || finding.detail.includes(`'${subject}'`)
        ? ''
        : ` ('${subject}')`;
  const message = `${finding.detail}${where}: ${sentenceStart(rule.symptom)} Fix: ${rule.fix} [ANE rule ${rule.id}, ${chip}]`;
  return {
    ruleId: rule.id,
    severity: ruleSeverity(rule),
    chip,
    ...(statement !== undefined ? { op: statement.op } : {}),
    ...(subject !== undefined ? { subject } : {}),
    position: finding.position,
    message,
  };
}

/**
 * Runs every registered check whose rule applies to `options.chip` and returns the violations in
 * rule-table order. Errors mean the ANE would reject or silently mis-execute the program; warnings
 * are performance, advice and unconfirmed claims.
 */
export function checkProgramRules(program: MilProgram, options: RuleCheckOptions = {}): RuleViolation[] {
  const chip = options.chip ?? DEFAULT_CHIP;
  const functions = program.functions.map(buildGraph);
  const violations: RuleViolation[] = [];
  for (const rule of ANE_RULES) {
    const check = RULE_CHECKS.get(rule.id);
    if (check === undefined || !ruleAppliesTo(rule, chip)) continue;
    const findings = check({ program, functions, chip, rule, weights: options.weights });
    for (const finding of findings) violations.push(violationFrom(rule, chip, finding));
  }
  return violations;
}
