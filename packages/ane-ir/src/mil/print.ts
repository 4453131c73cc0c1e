/**
 * Printer: AST -> MIL text, deterministic, in the corpus spelling (4-space indent, one statement
 * per line, `key = value` with spaces, args before the attribute block). Numbers print in decimal
 * (shortest text that reads back as the same double), so `fp16(0x1p-3)` prints as `fp16(0.125)`.
 * For every AST `a`, `parseProgram(printProgram(a))` equals `a` apart from positions.
 */
import type { Argument, BuildInfo, Func, MilProgram, OpStatement, ScalarData, Value } from './ast';
import { formatValueType, isFloatDtype, type MilDtype } from './types';

const INDENT = '    ';

export function printProgram(program: MilProgram): string {
  const style: PrintStyle = { rankZeroScalars: program.version.startsWith('1.0') };
  const lines = [`program(${program.version})`];
  if (program.buildInfo !== undefined) lines.push(printBuildInfo(program.buildInfo));
  lines.push('{');
  for (const func of program.functions) lines.push(...printFunc(func, style));
  lines.push('}');
  return `${lines.join('\n')}\n`;
}

interface PrintStyle {
  /** program(1.0) spells the scalars inside BLOBFILE as `tensor<string, []>(...)`. */
  readonly rankZeroScalars: boolean;
}

function printBuildInfo(buildInfo: BuildInfo): string {
  const entries = buildInfo.entries.map((entry) => `{${quote(entry.key)}, ${quote(entry.value)}}`).join(', ');
  const dictType = `dict<${formatValueType(buildInfo.keyType)}, ${formatValueType(buildInfo.valueType)}>`;
  return `[buildInfo = ${dictType}({${entries}})]`;
}

function printFunc(func: Func, style: PrintStyle): string[] {
  const params = func.params.map((param) => `${formatValueType(param.type)} ${param.name}`).join(', ');
  const opset = func.opset === '' ? '' : `<${func.opset}>`;
  const lines = [`${INDENT}func ${func.name}${opset}(${params}) {`];
  for (const statement of func.body) lines.push(`${INDENT}${INDENT}${printStatement(statement, style)}`);
  lines.push(`${INDENT}} -> (${func.returns.map((ret) => ret.name).join(', ')});`);
  return lines;
}

/** One statement as a line of MIL, without indentation. */
export function printStatement(
  statement: OpStatement,
  style: PrintStyle = { rankZeroScalars: false },
): string {
  const outputs = statement.outputs
    .map((output) => `${formatValueType(output.type)} ${output.name}`)
    .join(', ');
  const args = [...statement.args].map(([key, arg]) => `${key} = ${printArgument(arg, style)}`).join(', ');
  let line = `${outputs} = ${statement.op}(${args})`;
  if (statement.attributes.size > 0) {
    const attributes = [...statement.attributes].map(
      ([key, value]) => `${key} = ${printValue(value, style)}`,
    );
    line += `[${attributes.join(', ')}]`;
  }
  return `${line};`;
}

function printArgument(arg: Argument, style: PrintStyle): string {
  switch (arg.kind) {
    case 'ref':
      return arg.name;
    case 'tuple':
      return `(${arg.items.map((item) => printArgument(item, style)).join(', ')})`;
    default:
      return printValue(arg, style);
  }
}

/** A literal as MIL text: `int32(1)`, `tensor<int32, [2]>([1, 1])`, `tensor<fp16, [..]>(BLOBFILE(...))`. */
export function printValue(value: Value, style: PrintStyle = { rankZeroScalars: false }): string {
  switch (value.kind) {
    case 'scalar': {
      const literal = printLiteral(value.type.dtype, value.value);
      return value.type.kind === 'scalar'
        ? `${value.type.dtype}(${literal})`
        : `${formatValueType(value.type)}(${literal})`;
    }
    case 'tensor': {
      const data = value.data.map((element) => printLiteral(value.type.dtype, element)).join(', ');
      return `${formatValueType(value.type)}([${data}])`;
    }
    case 'blob': {
      const path = style.rankZeroScalars
        ? `tensor<string, []>(${quote(value.path)})`
        : `string(${quote(value.path)})`;
      const offset = style.rankZeroScalars
        ? `tensor<uint64, []>(${value.offset})`
        : `uint64(${value.offset})`;
      return `${formatValueType(value.type)}(BLOBFILE(path = ${path}, offset = ${offset}))`;
    }
  }
}

function printLiteral(dtype: MilDtype, element: ScalarData): string {
  if (typeof element === 'string') return quote(element);
  if (typeof element === 'boolean') return element ? 'true' : 'false';
  if (isFloatDtype(dtype)) {
    if (Number.isNaN(element)) return 'nan';
    if (element === Number.POSITIVE_INFINITY) return 'inf';
    if (element === Number.NEGATIVE_INFINITY) return '-inf';
    if (Object.is(element, -0)) return '-0';
  }
  return String(element);
}

/** A double-quoted MIL string literal. */
function quote(text: string): string {
  let quoted = '"';
  for (const char of text) {
    const code = char.charCodeAt(0);
    if (char === '"') quoted += '\\"';
    else if (char === '\\') quoted += '\\\\';
    else if (char === '\n') quoted += '\\n';
    else if (char === '\t') quoted += '\\t';
    else if (char === '\r') quoted += '\\r';
    else if (code < 0x20 || code === 0x7f) quoted += `\\u${code.toString(16).padStart(4, '0')}`;
    else quoted += char;
  }
  return `${quoted}"`;
}
