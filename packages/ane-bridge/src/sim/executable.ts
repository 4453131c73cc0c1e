/**
 * compileSimProgram: MIL text + weights -> an executable that runs on the CPU with the ANE's
 * numerics and the chip's hardware behaviours.
 *
 * Compile (once): parse and validate with ane-ir/mil, refuse what the rule table says the chip's
 * compiler refuses, check the Program's I/O specs against `main`, then plan: decode constants and
 * blobs (dequantizing constexprs), fold ops whose inputs are all constant, drop dead statements,
 * allocate every intermediate buffer and bind each op to a closure over those buffers.
 * Run (many times): decode inputs into the parameter buffers, call the closures in order, encode
 * the returned values. A run allocates nothing proportional to the tensors.
 */
import type {
  ChipFamily,
  MilProgram,
  Program,
  ResolvedOperand,
  RuleViolation,
  SourcePosition,
  TensorSpec,
  ValidatedProgram,
  ValidatedStatement,
  ValueType,
} from 'ane-ir/mil';
import {
  DEFAULT_CHIP,
  formatValueType,
  MilError,
  MilSyntaxError,
  MilValidationError,
  parseProgram,
  shapeOf,
  elementCount as specElementCount,
  validateProgram,
} from 'ane-ir/mil';
import { CompileError, DeviceError, KernelInputError } from '../errors';
import type { BehaviourSettings } from './behaviours';
import { behaviourSettingsFor } from './behaviours';
import type { PlannedValue } from './constants';
import { plannedConstant, simDtypeOf, UnsupportedError } from './constants';
import { readFp16Buffer, readFp32Buffer, writeFp16Buffer, writeFp32Buffer } from './io';
import type { OpNode, RunStep } from './op-planners';
import { OP_PLANNERS } from './op-planners';
import { checkRulesForChip } from './rule-gate';
import type { FloatTensor, SimTensor } from './tensor';
import { allocateTensor, isFloatDtype, shapeText } from './tensor';

export interface SimCompileOptions {
  /** Chip family whose compiler rules and hardware behaviours apply; default DEFAULT_CHIP (M4). */
  readonly chip?: ChipFamily;
  /**
   * reduce_sum accumulation: 'fp32' (default; the corpus convention, round once) or 'fp16' (round
   * the running sum after every add: the conservative reading of rule `num-accumulator-width`).
   */
  readonly reduceSumAccumulation?: 'fp32' | 'fp16';
}

export interface SimExecutable {
  readonly chip: ChipFamily;
  /** Function parameters, in declaration order (the Program's specs). */
  readonly inputs: readonly TensorSpec[];
  /** Returned values, in return order. */
  readonly outputs: readonly TensorSpec[];
  /** Rule-table warnings for this program on this chip (performance, advice, unconfirmed claims). */
  readonly warnings: readonly RuleViolation[];
  /**
   * Runs the program. `inputs[i]` holds parameter i and `outputs[j]` receives returned value j, as
   * dense little-endian fp16/fp32 bytes of the spec's shape from byte 0; longer buffers are fine.
   */
  run(inputs: readonly Uint8Array[], outputs: readonly Uint8Array[]): void;
}

export function compileSimProgram(program: Program, options: SimCompileOptions = {}): SimExecutable {
  const chip = options.chip ?? DEFAULT_CHIP;
  const parsed = parse(program.mil);
  const validated = validate(parsed, program);
  const warnings = checkRulesForChip(parsed, program, chip);
  checkSignature(validated, program);
  const settings = behaviourSettingsFor(chip, { narrowReduceSum: options.reduceSumAccumulation === 'fp16' });
  return new ProgramPlanner(validated, program, chip, settings, warnings).plan();
}

function positionDetails(
  line: number | undefined,
  column: number | undefined,
): { line?: number; column?: number } {
  return { ...(line === undefined ? {} : { line }), ...(column === undefined ? {} : { column }) };
}

function parse(mil: string): MilProgram {
  try {
    return parseProgram(mil);
  } catch (error) {
    if (error instanceof MilSyntaxError) {
      throw new CompileError(`MIL parse error: ${error.message}`, {
        line: error.line,
        column: error.column,
        cause: error,
      });
    }
    throw error;
  }
}

function validate(parsed: MilProgram, program: Program): ValidatedProgram {
  try {
    return validateProgram(parsed, { weights: program.weights, source: program.mil });
  } catch (error) {
    if (error instanceof MilValidationError) {
      throw new CompileError(`invalid MIL program: ${error.message}`, {
        ...positionDetails(error.line, error.column),
        cause: error,
      });
    }
    if (error instanceof MilError)
      throw new CompileError(`invalid MIL program: ${error.message}`, { cause: error });
    throw error;
  }
}

function describeSpec(spec: { name: string; dtype: string; shape: readonly number[] }): string {
  return `${spec.name}: ${spec.dtype} ${shapeText(spec.shape)}`;
}

/** program.inputs/outputs must be main's parameters/returns: same count, order, names, dtypes, shapes. */
function checkSignature(validated: ValidatedProgram, program: Program): void {
  const main = validated.main;
  const check = (
    kind: 'input' | 'output',
    specs: readonly TensorSpec[],
    declared: readonly { name: string; type: ValueType; position?: SourcePosition }[],
  ) => {
    const declaredText = declared
      .map((d) => describeSpec({ name: d.name, dtype: d.type.dtype, shape: shapeOf(d.type) }))
      .join(', ');
    const specText = specs.map(describeSpec).join(', ');
    const mismatch = (detail: string, position?: SourcePosition): never => {
      throw new CompileError(
        `program ${kind}s do not match func main (${detail}): the MIL declares (${declaredText}), the Program lists (${specText}). ` +
          `List program.${kind}s in ${kind === 'input' ? 'parameter declaration' : 'return'} order with the declared dtypes and shapes.`,
        positionDetails(position?.line, position?.column),
      );
    };
    if (specs.length !== declared.length) mismatch(`${declared.length} declared, ${specs.length} listed`);
    declared.forEach((d, i) => {
      const spec = specs[i]!;
      const shape = shapeOf(d.type);
      const sameShape = spec.shape.length === shape.length && spec.shape.every((dim, k) => dim === shape[k]);
      if (spec.name !== d.name || spec.dtype !== d.type.dtype || !sameShape) {
        mismatch(
          `${kind} ${i} is ${describeSpec({ name: d.name, dtype: d.type.dtype, shape })} in the MIL`,
          d.position,
        );
      }
    });
  };
  check('input', program.inputs, main.params);
  check('output', program.outputs, main.outputs);
}

/** Names of every statement output needed to compute the returned values. */
function liveStatements(
  statements: readonly ValidatedStatement[],
  returns: readonly string[],
): Set<ValidatedStatement> {
  const neededValues = new Set(returns);
  const live = new Set<ValidatedStatement>();
  for (let i = statements.length - 1; i >= 0; i--) {
    const statement = statements[i]!;
    if (!statement.statement.outputs.some((output) => neededValues.has(output.name))) continue;
    live.add(statement);
    for (const input of statement.inputs.values()) {
      const items = input.kind === 'tuple' ? input.items : [input];
      for (const item of items) if (item.kind === 'ref') neededValues.add(item.name);
    }
  }
  return live;
}

class ProgramPlanner {
  private readonly values = new Map<string, PlannedValue>();
  private readonly steps: RunStep[] = [];

  constructor(
    private readonly validated: ValidatedProgram,
    private readonly program: Program,
    private readonly chip: ChipFamily,
    private readonly settings: BehaviourSettings,
    private readonly warnings: readonly RuleViolation[],
  ) {}

  plan(): SimExecutable {
    const main = this.validated.main;
    const parameterBuffers = main.params.map((param) => {
      const tensor = allocateTensor(simDtypeOf(param.type), shapeOf(param.type)) as FloatTensor;
      this.values.set(param.name, { type: param.type, tensor, constant: false });
      return tensor;
    });
    const live = liveStatements(
      main.statements,
      main.outputs.map((output) => output.name),
    );
    for (const statement of main.statements) {
      if (live.has(statement)) this.planStatement(statement);
    }
    const results = main.outputs.map((output) => this.values.get(output.name)!.tensor as FloatTensor);
    return createExecutable(
      this.chip,
      [...this.program.inputs],
      [...this.program.outputs],
      this.warnings,
      parameterBuffers,
      results,
      this.steps,
    );
  }

  private planStatement(validated: ValidatedStatement): void {
    const { statement } = validated;
    const planner = OP_PLANNERS.get(statement.op);
    const where = `${statement.op} '${validated.name ?? statement.outputs[0]?.name ?? '?'}'`;
    const fail = (message: string, cause?: unknown): never => {
      throw new CompileError(`simulator cannot compile ${where}: ${message}`, {
        line: statement.position.line,
        column: statement.position.column,
        ...(cause === undefined ? {} : { cause }),
      });
    };
    if (planner === undefined) fail(`the simulator does not implement '${statement.op}'`);

    const resolve = (operand: ResolvedOperand): PlannedValue => {
      if (operand.kind === 'ref') return this.values.get(operand.name)!;
      try {
        return plannedConstant(operand.value, this.validated.blobs, this.program.weights);
      } catch (error) {
        if (error instanceof UnsupportedError) return fail(error.message, error);
        throw error;
      }
    };
    const inputs = new Map<string, PlannedValue | PlannedValue[]>();
    for (const [param, input] of validated.inputs) {
      inputs.set(param, input.kind === 'tuple' ? input.items.map(resolve) : resolve(input));
    }
    const allConstant = [...inputs.values()].every((input) =>
      (Array.isArray(input) ? input : [input]).every((v) => v.constant),
    );
    const outputs: (PlannedValue | undefined)[] = statement.outputs.map(() => undefined);

    const single = (param: string): PlannedValue => {
      const input = inputs.get(param);
      if (input === undefined) return fail(`missing '${param}'`);
      if (Array.isArray(input)) return fail(`'${param}' is a tuple`);
      return input;
    };
    const tensorOf = (param: string, value: PlannedValue): SimTensor =>
      value.tensor ?? fail(`'${param}' is not a tensor`);
    const floatOf = (param: string, value: PlannedValue): FloatTensor => {
      const tensor = tensorOf(param, value);
      if (!isFloatDtype(tensor.dtype))
        fail(`'${param}' is ${tensor.dtype}; the simulator computes this op on fp16/fp32 only`);
      return tensor as FloatTensor;
    };
    const declaredType = (index: number): ValueType => {
      const output = statement.outputs[index];
      if (output === undefined) return fail(`has no output ${index}`);
      return output.type;
    };
    const allocateOutput = (index: number, shape: readonly number[]): SimTensor => {
      const type = declaredType(index);
      const declaredShape = shapeOf(type);
      if (shape.length !== declaredShape.length || shape.some((dim, i) => dim !== declaredShape[i])) {
        fail(`result ${index} has shape ${shapeText(shape)}, declared ${formatValueType(type)}`);
      }
      const tensor = allocateTensor(simDtypeOf(type), declaredShape);
      outputs[index] = { type, tensor, constant: allConstant };
      return tensor;
    };

    const node: OpNode = {
      op: statement.op,
      settings: this.settings,
      outputCount: statement.outputs.length,
      has: (param) => inputs.has(param),
      value: single,
      tensor: (param) => tensorOf(param, single(param)),
      floatTensor: (param) => floatOf(param, single(param)),
      optionalFloatTensor: (param) => (inputs.has(param) ? floatOf(param, single(param)) : undefined),
      tuple: (param) => {
        const input = inputs.get(param);
        if (!Array.isArray(input)) return fail(`'${param}' must be a tuple`);
        return input.map((value) => tensorOf(param, value));
      },
      constant: (param) => {
        if (!inputs.has(param)) return undefined;
        const value = single(param);
        if (!value.constant) return fail(`the simulator needs '${param}' to be a compile-time constant`);
        if (value.elements !== undefined) return value.elements;
        return Array.from(tensorOf(param, value).data as ArrayLike<number>);
      },
      outputType: declaredType,
      output: allocateOutput,
      floatOutput: (index, shape) => {
        const tensor = allocateOutput(index, shape);
        if (!isFloatDtype(tensor.dtype))
          fail(`result ${index} is declared ${tensor.dtype}; expected fp16 or fp32`);
        return tensor as FloatTensor;
      },
      alias: (index, value) => {
        const type = declaredType(index);
        const shape = shapeOf(type);
        const tensor =
          value.tensor === undefined
            ? undefined
            : { dtype: value.tensor.dtype, shape, data: value.tensor.data };
        outputs[index] = {
          type,
          constant: value.constant,
          ...(tensor === undefined ? {} : { tensor }),
          ...(value.elements === undefined ? {} : { elements: value.elements }),
        };
      },
    };

    let step: RunStep | undefined;
    try {
      step = planner!(node);
    } catch (error) {
      if (error instanceof CompileError) throw error;
      if (error instanceof UnsupportedError || error instanceof RangeError) fail(error.message, error);
      throw error;
    }
    if (step !== undefined) {
      if (allConstant) step();
      else this.steps.push(step);
    }
    statement.outputs.forEach((output, index) => {
      const value = outputs[index] ?? fail(`result '${output.name}' was not planned`);
      this.values.set(output.name, value);
    });
  }
}

function createExecutable(
  chip: ChipFamily,
  inputs: readonly TensorSpec[],
  outputs: readonly TensorSpec[],
  warnings: readonly RuleViolation[],
  parameterBuffers: readonly FloatTensor[],
  results: readonly FloatTensor[],
  steps: readonly RunStep[],
): SimExecutable {
  const checkBuffers = (
    kind: 'input' | 'output',
    buffers: readonly Uint8Array[],
    specs: readonly TensorSpec[],
  ) => {
    if (buffers.length !== specs.length) {
      throw new KernelInputError(
        `expected ${specs.length} ${kind} buffer(s) (${specs.map(describeSpec).join(', ')}), got ${buffers.length}`,
      );
    }
    specs.forEach((spec, i) => {
      const needed = specElementCount(spec.shape) * (spec.dtype === 'fp16' ? 2 : 4);
      const buffer = buffers[i]!;
      if (!(buffer instanceof Uint8Array) || buffer.byteLength < needed) {
        throw new KernelInputError(
          `${kind} ${i} (${describeSpec(spec)}) needs ${needed} bytes of dense little-endian ${spec.dtype}, got ${buffer instanceof Uint8Array ? `${buffer.byteLength} bytes` : typeof buffer}`,
        );
      }
    });
  };
  return {
    chip,
    inputs,
    outputs,
    warnings,
    run(inputBuffers, outputBuffers) {
      checkBuffers('input', inputBuffers, inputs);
      checkBuffers('output', outputBuffers, outputs);
      parameterBuffers.forEach((tensor, i) => {
        if (inputs[i]!.dtype === 'fp16') readFp16Buffer(inputBuffers[i]!, tensor.data);
        else readFp32Buffer(inputBuffers[i]!, tensor.data);
      });
      try {
        for (const step of steps) step();
      } catch (error) {
        throw new DeviceError(`simulator failed while running the program: ${(error as Error).message}`, {
          cause: error,
        });
      }
      results.forEach((tensor, j) => {
        if (outputs[j]!.dtype === 'fp16') writeFp16Buffer(tensor.data, outputBuffers[j]!);
        else writeFp32Buffer(tensor.data, outputBuffers[j]!);
      });
    },
  };
}
