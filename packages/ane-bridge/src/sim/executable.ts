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
  ResolvedInput,
  ResolvedOperand,
  RuleViolation,
  ScalarData,
  SourcePosition,
  TensorSpec,
  ValidatedProgram,
  ValidatedStatement,
  ValueType,
} from 'ane-ir/mil';
import {
  bytesPerElement,
  DEFAULT_CHIP,
  formatValueType,
  MilError,
  MilSyntaxError,
  MilValidationError,
  type MilWarning,
  parseProgram,
  shapeOf,
  elementCount as specElementCount,
  validateProgram,
  withDefaultBuildInfo,
} from 'ane-ir/mil';
import { CompileError, DeviceError, KernelInputError } from '../errors';
import { fp16ToFp32Strided } from '../kernels';
import { nativeAddon } from '../native/loader';
import type { BehaviourSettings } from './behaviours';
import { behaviourSettingsFor } from './behaviours';
import type { GemmOperand, HalfInputs, MatrixView, PlannedValue } from './constants';
import { plannedConstant, simDtypeOf, UnsupportedError } from './constants';
import type { ElementwiseRecipe, PlannedStep, ReadWindow } from './fusion';
import { fuseElementwise, readsWhole } from './fusion';
import { readFp16Buffer, readFp32Buffer, writeFp16Buffer, writeFp32Buffer } from './io';
import type { ElementwiseDraft, OpNode, RunStep } from './op-planners';
import { NO_WORK, OP_PLANNERS } from './op-planners';
import type { FusedOperand } from './ops/fused';
import { type ConcatGeometry, planConcat } from './ops/movement';
import { checkRulesForChip } from './rule-gate';
import type { FloatTensor, SimData, SimTensor } from './tensor';
import { allocateTensor, isFloatDtype, shapeText } from './tensor';

export interface SimCompileOptions {
  /** Chip family whose compiler rules and hardware behaviours apply; default DEFAULT_CHIP (M4). */
  readonly chip?: ChipFamily;
  /**
   * reduce_sum accumulation: 'fp32' (default; the corpus convention, round once) or 'fp16' (round
   * the running sum after every add: the conservative reading of rule `num-accumulator-width`).
   */
  readonly reduceSumAccumulation?: 'fp32' | 'fp16';
  /**
   * Most bytes the planned tensors (parameters, intermediates, results) may take together; default
   * `SIM_MEMORY_LIMIT_BYTES` (4 GiB). A program past it is a CompileError naming the tensor.
   */
  readonly memoryLimitBytes?: number;
  /**
   * Read slices and transposes that feed `matmul` in place, and compute a transposed matmul product
   * directly (default: true, except with Apple's Accelerate GEMM, whose bits may depend on operand
   * layout): the GEMM takes the source with a stride instead of a copy, and the copy is not run when
   * nothing else reads it. The same bits either way; false plans every copy (the tests compare).
   */
  readonly inPlaceOperands?: boolean;
  /**
   * Compute each input of a concat straight into its block of the concat's result, when the blocks
   * are contiguous (every axis before the concat axis has size 1) and the input is a value the
   * program computes (default true): the concat then copies only the inputs that are parameters,
   * constants or views of other values, and none at all when every input was placed. A concat
   * whose inputs are all slices of one value, rows of one width (RoPE's swapped halves), is one
   * gather from that value, and the slices are not copied. The same bits either way; false plans
   * every copy (the tests compare).
   */
  readonly inPlaceConcat?: boolean;
  /**
   * Run chains of elementwise ops (binary arithmetic, exp, log, sqrt, rsqrt, inverse, tanh,
   * sigmoid, silu, relu) fused, block by block, storing only the values read after the chain
   * (default true): every op still computes and rounds as it does alone, so the results are the
   * same bits; false runs one op at a time (the tests compare).
   */
  readonly fuseElementwise?: boolean;
  /**
   * Let matmuls read operands that lie in an fp16 input straight from the input's fp16 bits,
   * widening them as the GEMM packs its panels, when nothing but such matmuls reads that input
   * (default: true where operands are read in place, see inPlaceOperands): the run then skips
   * decoding the input, which for a classifier's packed input is most of its time outside the
   * GEMM. fp16 -> fp32 is exact, so the same bits either way; false decodes every input.
   */
  readonly halfInputOperands?: boolean;
  /**
   * Time every op of every run (default false): `opProfile()` then says where a run's time went,
   * per MIL op, fused chains as `fused` (benchmarks use it; the timer costs about a microsecond
   * per op).
   */
  readonly profileOps?: boolean;
}

/** Time spent in one MIL op kind over the runs so far (see SimCompileOptions.profileOps). */
export interface OpTime {
  ms: number;
  calls: number;
}

/**
 * Whether the GEMM gives the same bits for an operand read in place (strided, transposed) as for a
 * dense copy: ours (and the TS twin) do, as each element is the same k-ordered sum whatever the
 * layout; Accelerate's choice of kernel may depend on it, so there operands are copied.
 */
function layoutInvariantGemm(): boolean {
  const addon = nativeAddon().addon;
  return addon?.capabilities?.().gemm !== 'accelerate';
}

/** Ops whose result is their input `x` in the same memory (their planners alias it). */
const PASS_ON_OPS: ReadonlySet<string> = new Set(['reshape', 'identity']);

/** Default for `SimCompileOptions.memoryLimitBytes`: 4 GiB of planned tensors. */
export const SIM_MEMORY_LIMIT_BYTES = 4 * 2 ** 30;

/** The element dtypes a Program's I/O may have (TensorSpec): dense little-endian fp16 or fp32. */
const IO_DTYPES: ReadonlySet<string> = new Set(['fp16', 'fp32']);

export interface SimExecutable {
  readonly chip: ChipFamily;
  /** Function parameters, in declaration order (the Program's specs). */
  readonly inputs: readonly TensorSpec[];
  /** Returned values, in return order. */
  readonly outputs: readonly TensorSpec[];
  /**
   * Warnings for this program on this chip: the validator's (weight blobs written by other tools,
   * under rule `blob-offset`) and the rule table's (performance, advice, unconfirmed claims).
   */
  readonly warnings: readonly RuleViolation[];
  /** The op steps a run executes (constants folded, dead statements and unread copies dropped). */
  readonly stepCount: number;
  /**
   * Per input: whether a run leaves it undecoded, because only matmuls read it and they read its
   * fp16 bits in place (SimCompileOptions.halfInputOperands), or nothing reads it. An input buffer
   * that is not 2-byte aligned is decoded all the same.
   */
  readonly inputsReadAsFp16: readonly boolean[];
  /**
   * Per input: how many of its elements a run decodes to fp32. Fewer than the input holds when
   * matmuls read part of it as fp16 bits and everything else reads it only through slices; 0 when
   * it is not decoded at all (an unaligned input buffer is decoded whole all the same).
   */
  readonly inputElementsDecoded: readonly number[];
  /**
   * With `profileOps`: time per MIL op kind over every run so far, plus `(io)` for reading the
   * inputs and writing the outputs; empty otherwise.
   */
  opProfile(): ReadonlyMap<string, OpTime>;
  /**
   * Runs the program. `inputs[i]` holds parameter i and `outputs[j]` receives returned value j, as
   * dense little-endian fp16/fp32 bytes of the spec's shape from byte 0; longer buffers are fine.
   */
  run(inputs: readonly Uint8Array[], outputs: readonly Uint8Array[]): void;
}

export function compileSimProgram(program: Program, options: SimCompileOptions = {}): SimExecutable {
  const chip = options.chip ?? DEFAULT_CHIP;
  // The ANE's parser needs a buildInfo line; a text without one gets the standard line.
  const mil = typeof program.mil === 'string' ? withDefaultBuildInfo(program.mil) : program.mil;
  const parsed = parse(mil);
  const validated = validate(parsed, program, mil);
  const warnings = [
    ...validated.warnings.map((warning) => validatorWarning(warning, chip)),
    ...checkRulesForChip(parsed, program, chip),
  ];
  checkSignature(validated, program);
  const settings = behaviourSettingsFor(chip, { narrowReduceSum: options.reduceSumAccumulation === 'fp16' });
  const memoryLimit = options.memoryLimitBytes ?? SIM_MEMORY_LIMIT_BYTES;
  const inPlace = options.inPlaceOperands ?? layoutInvariantGemm();
  const profile = options.profileOps === true ? new Map<string, OpTime>() : undefined;
  return new ProgramPlanner(
    validated,
    program,
    chip,
    settings,
    warnings,
    memoryLimit,
    inPlace,
    options.inPlaceConcat ?? true,
    options.fuseElementwise ?? true,
    inPlace && (options.halfInputOperands ?? true),
    profile,
  ).plan();
}

/** A validator warning (a weight blob another tool wrote) in the executable's warning list. */
function validatorWarning(warning: MilWarning, chip: ChipFamily): RuleViolation {
  return {
    ruleId: 'blob-offset',
    severity: 'warning',
    chip,
    subject: warning.path,
    position: warning.position,
    message: `${warning.message} [ANE rule blob-offset, ${chip}]`,
  };
}

function positionDetails(
  line: number | undefined,
  column: number | undefined,
): { line?: number; column?: number } {
  return { ...(line === undefined ? {} : { line }), ...(column === undefined ? {} : { column }) };
}

function parse(mil: string): MilProgram {
  if (typeof mil !== 'string') {
    throw new CompileError(
      `program.mil must be the MIL text (a string), got ${mil === null ? 'null' : typeof mil}`,
    );
  }
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
    if (error instanceof MilError)
      throw new CompileError(`MIL parse error: ${error.message}`, { cause: error });
    throw error;
  }
}

function validate(parsed: MilProgram, program: Program, mil: string): ValidatedProgram {
  try {
    return validateProgram(parsed, { weights: program.weights, source: mil });
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
  const unsupported = [
    ...main.params.map((p) => ['input', p] as const),
    ...main.outputs.map((o) => ['output', o] as const),
  ].find(([, value]) => !IO_DTYPES.has(value.type.dtype));
  if (unsupported !== undefined) {
    const [kind, value] = unsupported;
    const position = 'position' in value ? (value.position as SourcePosition) : undefined;
    throw new CompileError(
      `${kind} '${value.name}' is ${formatValueType(value.type)}: program I/O (TensorSpec) is dense fp16 or fp32, and the simulator has no ${value.type.dtype} buffers. ` +
        `Declare the ${kind} as fp16 (or fp32) and convert inside the program with cast.`,
      positionDetails(position?.line, position?.column),
    );
  }
}

/**
 * The statements needed to compute the returned values, and how many times each value is read by
 * them (a return counts as a read).
 */
function liveStatements(
  statements: readonly ValidatedStatement[],
  returns: readonly string[],
): { live: Set<ValidatedStatement>; reads: Map<string, number> } {
  const reads = new Map<string, number>();
  const read = (name: string) => reads.set(name, (reads.get(name) ?? 0) + 1);
  returns.forEach(read);
  const live = new Set<ValidatedStatement>();
  for (let i = statements.length - 1; i >= 0; i--) {
    const statement = statements[i]!;
    if (!statement.statement.outputs.some((output) => reads.has(output.name))) continue;
    live.add(statement);
    for (const input of statement.inputs.values()) {
      const items = input.kind === 'tuple' ? input.items : [input];
      for (const item of items) if (item.kind === 'ref') read(item.name);
    }
  }
  return { live, reads };
}

/**
 * The steps whose results are read: walking backwards from the returned values, a step is kept
 * when a kept step (or a result) reads a buffer it writes. A copy whose value every consumer reads
 * in place through a MatrixView (a slice or transpose feeding matmul) is dropped here.
 */
function stepsThatMatter(steps: readonly PlannedStep[], results: readonly SimData[]): PlannedStep[] {
  const needed = new Set<SimData>(results);
  const kept: PlannedStep[] = [];
  for (let i = steps.length - 1; i >= 0; i--) {
    const step = steps[i]!;
    if (!step.writes.some((data) => needed.has(data))) continue;
    if (step.run !== NO_WORK) kept.push(step);
    for (const data of step.reads) needed.add(data);
  }
  return kept.reverse();
}

/**
 * What a run decodes of each input (SimCompileOptions.halfInputOperands): GEMM steps read an fp16
 * input's elements in place as fp16 bits (their operands bound to `views`, set by each run), so a
 * run decodes only the windows the other steps read, when each of them reads the input in windows
 * (a slice, a transpose or fused operand through a slice's view); else the whole input. An input
 * a result shares is decoded whole, and one nothing reads not at all.
 */
function planInputs(
  steps: readonly PlannedStep[],
  parameters: readonly FloatTensor[],
  specs: readonly TensorSpec[],
  results: readonly FloatTensor[],
  views: HalfInputs,
): InputPlan[] {
  return parameters.map((parameter, input): InputPlan => {
    const data = parameter.data;
    if (specs[input]!.dtype !== 'fp16' || results.some((result) => result.data.buffer === data.buffer))
      return { bindsHalf: false, decode: 'all' };
    const readers = steps.filter((step) => step.reads.has(data));
    const decode: ReadWindow[] = [];
    for (const step of readers) {
      if (step.gemmOperands !== undefined) {
        for (const operand of step.gemmOperands) {
          if (operand.source !== data) continue;
          const offset = (operand.data.byteOffset - data.byteOffset) / Float32Array.BYTES_PER_ELEMENT;
          operand.inputHalf.binding = { views, input, offset };
        }
        continue;
      }
      const windows = step.readWindows?.get(data);
      if (windows === undefined) return { bindsHalf: bindsAny(readers, data), decode: 'all' };
      for (const window of windows)
        if (!decode.some((known) => sameWindow(known, window))) decode.push(window);
    }
    return { bindsHalf: bindsAny(readers, data), decode };
  });
}

function sameWindow(a: ReadWindow, b: ReadWindow): boolean {
  return a.offset === b.offset && a.rows === b.rows && a.cols === b.cols && a.rowStride === b.rowStride;
}

function bindsAny(readers: readonly PlannedStep[], data: SimData): boolean {
  return readers.some((step) => step.gemmOperands?.some((operand) => operand.source === data));
}

/** What a run does with an input: binds its fp16 bits for GEMM operands, decodes all or windows. */
interface InputPlan {
  readonly bindsHalf: boolean;
  readonly decode: 'all' | readonly ReadWindow[];
}

class ProgramPlanner {
  private readonly values = new Map<string, PlannedValue>();
  private readonly steps: PlannedStep[] = [];
  /** How many times each value is read (see liveStatements). */
  private readCounts = new Map<string, number>();

  constructor(
    private readonly validated: ValidatedProgram,
    private readonly program: Program,
    private readonly chip: ChipFamily,
    private readonly settings: BehaviourSettings,
    private readonly warnings: readonly RuleViolation[],
    private readonly memoryLimit: number,
    private readonly inPlace: boolean,
    private readonly inPlaceConcat: boolean,
    private readonly fuse: boolean,
    private readonly halfOperands: boolean,
    private readonly profile: Map<string, OpTime> | undefined,
  ) {}

  /** Bytes of the tensors planned so far. */
  private plannedBytes = 0;
  /** Values computed straight into a block of a concat's result (see placeConcatInputs). */
  private readonly concatPlaces = new Map<
    string,
    {
      readonly result: { name: string; type: ValueType; position: SourcePosition | undefined };
      offset: number;
    }
  >();
  /** The concats whose results hold placed blocks, and those results once allocated. */
  private readonly concatResultNames = new Set<string>();
  private readonly concatResults = new Map<string, SimTensor>();

  /**
   * A zeroed tensor for the value `name` of `type`, counted against the memory limit: a shape the
   * rules allow but this process cannot hold is a CompileError naming the tensor, never a RangeError.
   */
  private allocate(name: string, type: ValueType, position: SourcePosition | undefined): SimTensor {
    const slab = this.concatResults.get(name);
    if (slab !== undefined) return slab;
    const place = this.concatPlaces.get(name);
    if (place !== undefined) {
      // A block of the concat's result (allocated with the first block asked for).
      const result =
        this.concatResults.get(place.result.name) ??
        this.allocate(place.result.name, place.result.type, place.result.position);
      const shape = shapeOf(type);
      const count = specElementCount(shape);
      return {
        dtype: result.dtype,
        shape,
        data: result.data.subarray(place.offset, place.offset + count),
      } as SimTensor;
    }
    const tensor = this.allocateFresh(name, type, position);
    if (this.concatResultNames.has(name)) this.concatResults.set(name, tensor);
    return tensor;
  }

  private allocateFresh(name: string, type: ValueType, position: SourcePosition | undefined): SimTensor {
    const where = positionDetails(position?.line, position?.column);
    let dtype: ReturnType<typeof simDtypeOf>;
    try {
      dtype = simDtypeOf(type);
    } catch (error) {
      if (!(error instanceof UnsupportedError)) throw error;
      throw new CompileError(`simulator cannot hold tensor '${name}': ${error.message}`, {
        ...where,
        cause: error,
      });
    }
    const shape = shapeOf(type);
    const bytes = specElementCount(shape) * SIM_ELEMENT_BYTES[dtype];
    const fail = (why: string, cause?: unknown): never => {
      throw new CompileError(
        `simulator cannot allocate tensor '${name}' (${formatValueType(type)}, ${formatBytes(bytes)}): ${why}. ` +
          'Split the work into smaller programs (shorter sequences, fewer channels per kernel), or raise memoryLimitBytes if this machine has the memory.',
        { ...where, ...(cause === undefined ? {} : { cause }) },
      );
    };
    const over = this.overBudget(bytes);
    if (over !== undefined) fail(over);
    let tensor: SimTensor;
    try {
      tensor = allocateTensor(dtype, shape);
    } catch (error) {
      if (error instanceof RangeError)
        return fail(`this process cannot allocate it (${error.message})`, error);
      throw error;
    }
    this.plannedBytes += bytes;
    return tensor;
  }

  /** Why `bytes` more do not fit the memory limit, or undefined when they do. */
  private overBudget(bytes: number): string | undefined {
    if (this.plannedBytes + bytes <= this.memoryLimit) return undefined;
    return `with the ${formatBytes(this.plannedBytes)} already planned it passes the simulator's memory limit of ${formatBytes(this.memoryLimit)}`;
  }

  /** A zeroed Float32Array scratch of an op, counted against the memory limit. */
  private scratch(
    length: number,
    what: string,
    fail: (message: string, cause?: unknown) => never,
  ): Float32Array {
    const bytes = length * 4;
    const over = this.overBudget(bytes);
    if (over !== undefined) {
      fail(
        `its ${what} scratch (${formatBytes(bytes)}) ${over}. Split the work into smaller programs, or raise memoryLimitBytes`,
      );
    }
    let data: Float32Array;
    try {
      data = new Float32Array(length);
    } catch (error) {
      if (error instanceof RangeError)
        return fail(`this process cannot allocate its ${what} scratch of ${formatBytes(bytes)}`, error);
      throw error;
    }
    this.plannedBytes += bytes;
    return data;
  }

  /**
   * An elementwise op's recipe with, for each operand it reads whole and unbroadcast (element i at
   * i), the operand's in-place view (a slice or transpose) as a walk over the view's source.
   */
  private withViews(draft: ElementwiseDraft, value: (param: string) => PlannedValue): ElementwiseRecipe {
    const length = draft.out.data.length;
    const operands = draft.operands.map(({ param, walk }) => {
      const view = this.inPlace ? value(param).matrix : undefined;
      if (view === undefined || view.rows * view.cols !== length || !readsWhole(walk, length))
        return { walk };
      const rowOffsets = new Int32Array(view.rows);
      for (let row = 0; row < view.rows; row++) rowOffsets[row] = view.offset + row * view.rowStride;
      const inPlace: FusedOperand = {
        data: view.source,
        inner: view.cols,
        stride: view.colStride,
        rowOffsets,
      };
      return { walk, view: inPlace };
    });
    return { kind: draft.kind, op: draft.op, out: draft.out, epsilon: draft.epsilon, operands };
  }

  plan(): SimExecutable {
    const main = this.validated.main;
    const parameterBuffers = main.params.map((param) => {
      const tensor = this.allocate(param.name, param.type, param.position) as FloatTensor;
      this.values.set(param.name, { type: param.type, tensor, constant: false });
      return tensor;
    });
    const { live, reads } = liveStatements(
      main.statements,
      main.outputs.map((output) => output.name),
    );
    // A product is recomputed transposed only for its one reader.
    this.readCounts = reads;
    if (this.inPlaceConcat) this.placeConcatInputs(live);
    for (const statement of main.statements) {
      if (live.has(statement)) this.planStatement(statement);
    }
    const results = main.outputs.map((output) => this.values.get(output.name)!.tensor as FloatTensor);
    const profile = this.profile;
    const steps = this.fuse
      ? fuseElementwise(
          this.steps,
          results.map((tensor) => tensor.data),
          (run) => (profile === undefined ? run : timed(profile, 'fused', run)),
        )
      : this.steps;
    const kept = stepsThatMatter(
      steps,
      results.map((tensor) => tensor.data),
    );
    const views: HalfInputs = parameterBuffers.map(() => undefined);
    const inputPlans: InputPlan[] = this.halfOperands
      ? planInputs(kept, parameterBuffers, this.program.inputs, results, views)
      : parameterBuffers.map(() => ({ bindsHalf: false, decode: 'all' }));
    return createExecutable(
      this.chip,
      [...this.program.inputs],
      [...this.program.outputs],
      this.warnings,
      parameterBuffers,
      { plans: inputPlans, views },
      results,
      kept.map((step) => step.run),
      this.profile,
    );
  }

  /**
   * Decides which concat inputs are computed in place (SimCompileOptions.inPlaceConcat): for a
   * concat whose inputs are contiguous blocks of its result (not interleaved, every axis before the
   * concat axis of size 1), each input that a live statement computes (or reshapes), of the result's
   * dtype and listed once, is allocated as its block of the result. A value goes into one concat at
   * most.
   */
  private placeConcatInputs(live: ReadonlySet<ValidatedStatement>): void {
    const main = this.validated.main;
    const computed = new Set<string>();
    // What reshape and identity return shares their input's memory: a concat input made by them
    // is placed by placing the value they pass on.
    const passedOn = new Map<string, string>();
    for (const statement of main.statements) {
      if (!live.has(statement) || statement.statement.op === 'const') continue;
      const x = statement.inputs.get('x');
      const output = statement.statement.outputs[0];
      if (PASS_ON_OPS.has(statement.statement.op) && x?.kind === 'ref' && output !== undefined)
        passedOn.set(output.name, x.name);
      else for (const output of statement.statement.outputs) computed.add(output.name);
    }
    const rootOf = (name: string) => {
      let root = name;
      for (let next = passedOn.get(root); next !== undefined; next = passedOn.get(root)) root = next;
      return root;
    };
    const constantScalar = (input: ResolvedInput | undefined): ScalarData | undefined => {
      if (input === undefined || input.kind === 'tuple') return undefined;
      if (input.kind === 'ref') return main.values.get(input.name)?.data?.[0];
      const value = input.value;
      return value.kind === 'scalar' ? value.value : undefined;
    };
    for (const statement of main.statements) {
      if (!live.has(statement) || statement.statement.op !== 'concat') continue;
      const values = statement.inputs.get('values');
      const result = statement.statement.outputs[0];
      const interleave = constantScalar(statement.inputs.get('interleave')) ?? false;
      const axis = constantScalar(statement.inputs.get('axis'));
      if (
        values?.kind !== 'tuple' ||
        result === undefined ||
        interleave !== false ||
        typeof axis !== 'number'
      )
        continue;
      let geometry: ConcatGeometry;
      try {
        geometry = planConcat(
          values.items.map((item) => shapeOf(item.type)),
          axis,
          false,
        ).geometry;
      } catch {
        continue; // planning the concat itself reports it
      }
      if (geometry.outer !== 1) continue;
      const names = values.items.map((item) => (item.kind === 'ref' ? rootOf(item.name) : undefined));
      let offset = 0;
      values.items.forEach((item, k) => {
        const name = names[k];
        if (
          name !== undefined &&
          computed.has(name) &&
          !this.concatPlaces.has(name) &&
          names.indexOf(name) === names.lastIndexOf(name) &&
          item.type.dtype === result.type.dtype
        ) {
          this.concatPlaces.set(name, {
            result: { name: result.name, type: result.type, position: result.position },
            offset,
          });
          this.concatResultNames.add(result.name);
        }
        offset += geometry.extents[k]! * geometry.inner;
      });
    }
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
    // The buffers this op's step reads: every operand taken as a tensor, and the source of every
    // operand taken through its MatrixView.
    const reads = new Set<SimData>();
    // Where in each buffer the step reads: buffers some operand takes whole (by the operands that
    // do), and the windows of those taken through a view (see PlannedStep.readWindows).
    const wholeReads = new Map<SimData, Set<string>>();
    const windows = new Map<SimData, ReadWindow[]>();
    const readThrough = (view: MatrixView) => {
      const window = readWindowOf(view);
      if (window === undefined) wholeReads.set(view.source, new Set(['(view)']));
      else windows.set(view.source, [...(windows.get(view.source) ?? []), window]);
    };
    let label = statement.op;
    let elementwise: ElementwiseRecipe | undefined;
    let gemmOperands: GemmOperand[] | undefined;
    const tensorOf = (param: string, value: PlannedValue): SimTensor => {
      const tensor = value.tensor ?? fail(`'${param}' is not a tensor`);
      reads.add(tensor.data);
      wholeReads.set(tensor.data, (wholeReads.get(tensor.data) ?? new Set()).add(param));
      return tensor;
    };
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
      const name = statement.outputs[index]?.name ?? `result ${index}`;
      const tensor = this.allocate(name, type, statement.outputs[index]?.position ?? statement.position);
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
      scratch: (length, what) => this.scratch(length, what, fail),
      tupleMatrices: (param) => {
        const input = inputs.get(param);
        if (!this.inPlaceConcat || !Array.isArray(input)) return undefined;
        const items: { shape: readonly number[]; view: MatrixView }[] = [];
        for (const value of input) {
          const tensor = value.tensor;
          if (tensor === undefined || !isFloatDtype(tensor.dtype)) return undefined;
          items.push({ shape: tensor.shape, view: value.matrix ?? denseMatrix(tensor as FloatTensor) });
        }
        return items;
      },
      readsThrough: (view) => {
        reads.add(view.source);
        readThrough(view);
      },
      matrix: (param) => {
        if (!this.inPlace) return undefined;
        const value = single(param);
        const tensor = value.tensor;
        if (tensor === undefined || !isFloatDtype(tensor.dtype)) return undefined;
        const view = value.matrix ?? denseMatrix(tensor as FloatTensor);
        reads.add(view.source);
        readThrough(view);
        return view;
      },
      readsWithin: (param, view) => {
        const data = single(param).tensor?.data;
        if (data === undefined || view.source !== data) return;
        wholeReads.get(data)?.delete(param);
        readThrough(view);
      },
      profileAs: (name) => {
        label = name;
      },
      elementwise: (draft) => {
        elementwise = this.withViews(draft, single);
        // The operands a fused chain may read in place, through their slices' views.
        elementwise.operands.forEach((operand, k) => {
          const view = single(draft.operands[k]!.param).matrix;
          if (operand.view !== undefined && view !== undefined) readThrough(view);
        });
      },
      product: (param) => {
        if (!this.inPlace) return undefined;
        const operand = validated.inputs.get(param);
        if (operand?.kind !== 'ref' || this.readCounts.get(operand.name) !== 1) return undefined;
        const recipe = single(param).product;
        if (recipe !== undefined && 'geometry' in recipe) {
          reads.add(recipe.x);
          reads.add(recipe.y);
          wholeReads.set(recipe.x, new Set(['(product)']));
          wholeReads.set(recipe.y, new Set(['(product)']));
        } else if (recipe !== undefined) {
          reads.add(recipe.a.source);
          reads.add(recipe.b.source);
          readThrough(operandView(recipe.a, recipe.M, recipe.K));
          readThrough(operandView(recipe.b, recipe.K, recipe.N));
        }
        return recipe;
      },
      gemm: (a, b) => {
        gemmOperands = [a, b];
      },
      productOutput: (index, recipe) => {
        if (!this.inPlace) return;
        const output = outputs[index] ?? fail(`result ${index} must be planned before its product`);
        outputs[index] = { ...output, product: recipe };
      },
      viewOutput: (index, view) => {
        if (!this.inPlace) return;
        const output = outputs[index] ?? fail(`result ${index} must be planned before its view`);
        outputs[index] = { ...output, matrix: view };
      },
      alias: (index, value) => {
        const type = declaredType(index);
        const shape = shapeOf(type);
        const tensor =
          value.tensor === undefined
            ? undefined
            : { dtype: value.tensor.dtype, shape, data: value.tensor.data };
        // The same elements in the same order: a view survives when the rows stay the rows.
        const keepsView =
          value.matrix !== undefined && shape.length > 0 && shape[shape.length - 1] === value.matrix.cols;
        outputs[index] = {
          type,
          constant: value.constant,
          ...(tensor === undefined ? {} : { tensor }),
          ...(value.elements === undefined ? {} : { elements: value.elements }),
          ...(keepsView ? { matrix: value.matrix } : {}),
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
      else {
        const writes = outputs.flatMap((output) =>
          output?.tensor === undefined ? [] : [output.tensor.data],
        );
        const readWindows = new Map<SimData, readonly ReadWindow[]>();
        for (const [data, list] of windows)
          if (!(wholeReads.get(data)?.size ?? 0)) readWindows.set(data, list);
        this.steps.push({
          run: this.profile && step !== NO_WORK ? timed(this.profile, label, step) : step,
          reads,
          ...(readWindows.size === 0 ? {} : { readWindows }),
          writes,
          ...(elementwise === undefined ? {} : { elementwise }),
          ...(gemmOperands === undefined ? {} : { gemmOperands }),
        });
      }
    }
    statement.outputs.forEach((output, index) => {
      const value = outputs[index] ?? fail(`result '${output.name}' was not planned`);
      this.values.set(output.name, value);
    });
  }
}

/** `step`, adding its time to `profile[op]`. */
function timed(profile: Map<string, OpTime>, op: string, step: RunStep): RunStep {
  return () => {
    const started = performance.now();
    step();
    const entry = profile.get(op) ?? { ms: 0, calls: 0 };
    entry.ms += performance.now() - started;
    entry.calls++;
    profile.set(op, entry);
  };
}

/** What a caller passed instead of a Uint8Array, for messages: `Float32Array`, `null`, `number`. */
function describeBuffer(value: unknown): string {
  if (value === null || typeof value !== 'object') return value === null ? 'null' : typeof value;
  return (value as object).constructor?.name ?? 'object';
}

/** A dense tensor as a matrix over its own data: [product of the leading axes, last axis]. */
function denseMatrix(tensor: FloatTensor): MatrixView {
  const cols = tensor.shape.length === 0 ? 1 : tensor.shape[tensor.shape.length - 1]!;
  const rows = cols === 0 ? 0 : tensor.data.length / cols;
  return { source: tensor.data, offset: 0, rows, cols, rowStride: cols, colStride: 1 };
}

/** The elements a view covers as rows of contiguous elements, or undefined when they are not. */
function readWindowOf(view: MatrixView): ReadWindow | undefined {
  const { offset, rows, cols, rowStride, colStride } = view;
  if (colStride === 1 || cols <= 1) return { offset, rows, cols, rowStride };
  if (rowStride === 1 || rows <= 1) return { offset, rows: cols, cols: rows, rowStride: colStride };
  return undefined;
}

/** A GEMM operand op(operand) [rows, cols] as a view of its source. */
function operandView(operand: GemmOperand, rows: number, cols: number): MatrixView {
  const offset = (operand.data.byteOffset - operand.source.byteOffset) / Float32Array.BYTES_PER_ELEMENT;
  const [storedRows, storedCols] = operand.transposed ? [cols, rows] : [rows, cols];
  return {
    source: operand.source,
    offset,
    rows: storedRows,
    cols: storedCols,
    rowStride: operand.ld,
    colStride: 1,
  };
}

/** Bytes per element of each simulator dtype as stored (fp16 is held widened in a Float32Array). */
const SIM_ELEMENT_BYTES: Readonly<Record<ReturnType<typeof simDtypeOf>, number>> = {
  fp16: 4,
  fp32: 4,
  int8: 1,
  uint8: 1,
  int32: 4,
  bool: 1,
};

function formatBytes(bytes: number): string {
  if (bytes >= 2 ** 30) return `${(bytes / 2 ** 30).toFixed(1)} GiB`;
  if (bytes >= 2 ** 20) return `${(bytes / 2 ** 20).toFixed(1)} MiB`;
  if (bytes >= 2 ** 10) return `${(bytes / 2 ** 10).toFixed(1)} KiB`;
  return `${bytes} bytes`;
}

function createExecutable(
  chip: ChipFamily,
  inputs: readonly TensorSpec[],
  outputs: readonly TensorSpec[],
  warnings: readonly RuleViolation[],
  parameterBuffers: readonly FloatTensor[],
  halfInputs: { readonly plans: readonly InputPlan[]; readonly views: HalfInputs },
  results: readonly FloatTensor[],
  steps: readonly RunStep[],
  profile: Map<string, OpTime> | undefined,
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
      const needed = specElementCount(spec.shape) * bytesPerElement(spec.dtype);
      const buffer = buffers[i]!;
      if (!(buffer instanceof Uint8Array) || buffer.byteLength < needed) {
        throw new KernelInputError(
          `${kind} ${i} (${describeSpec(spec)}) needs ${needed} bytes of dense little-endian ${spec.dtype}, got ${buffer instanceof Uint8Array ? `${buffer.byteLength} bytes` : describeBuffer(buffer)}`,
        );
      }
    });
  };
  return {
    chip,
    inputs,
    outputs,
    warnings,
    stepCount: steps.length,
    inputsReadAsFp16: halfInputs.plans.map((plan) => plan.decode !== 'all' && plan.decode.length === 0),
    inputElementsDecoded: halfInputs.plans.map(({ decode }, i) =>
      decode === 'all'
        ? parameterBuffers[i]!.data.length
        : decode.reduce((sum, window) => sum + window.rows * window.cols, 0),
    ),
    opProfile: () => profile ?? new Map(),
    run(inputBuffers, outputBuffers) {
      checkBuffers('input', inputBuffers, inputs);
      checkBuffers('output', outputBuffers, outputs);
      const started = profile === undefined ? 0 : performance.now();
      parameterBuffers.forEach((tensor, i) => {
        const bytes = inputBuffers[i]!;
        const { bindsHalf, decode } = halfInputs.plans[i]!;
        // Bytes that are not 2-aligned are decoded whole, and GEMMs read them as fp32.
        if (inputs[i]!.dtype !== 'fp16') readFp32Buffer(bytes, tensor.data);
        else if (decode === 'all' || bytes.byteOffset % 2 !== 0) {
          if (bindsHalf && bytes.byteOffset % 2 === 0)
            halfInputs.views[i] = new Uint16Array(bytes.buffer, bytes.byteOffset, tensor.data.length);
          readFp16Buffer(bytes, tensor.data);
        } else {
          const bits = new Uint16Array(bytes.buffer, bytes.byteOffset, tensor.data.length);
          if (bindsHalf) halfInputs.views[i] = bits;
          for (const { offset, rows, cols, rowStride } of decode) {
            fp16ToFp32Strided(bits, tensor.data, {
              rows,
              cols,
              srcOffset: offset,
              srcRowStride: rowStride,
              dstOffset: offset,
              dstRowStride: rowStride,
            });
          }
        }
      });
      const ranFrom = profile === undefined ? 0 : performance.now();
      try {
        for (const step of steps) step();
      } catch (error) {
        throw new DeviceError(`simulator failed while running the program: ${(error as Error).message}`, {
          cause: error,
        });
      } finally {
        halfInputs.views.fill(undefined); // the caller's buffers are not held past the run
      }
      const ranMs = profile === undefined ? 0 : performance.now() - ranFrom;
      results.forEach((tensor, j) => {
        if (outputs[j]!.dtype === 'fp16') writeFp16Buffer(tensor.data, outputBuffers[j]!);
        else writeFp32Buffer(tensor.data, outputBuffers[j]!);
      });
      if (profile !== undefined) {
        const io = profile.get('(io)') ?? { ms: 0, calls: 0 };
        io.ms += performance.now() - started - ranMs;
        io.calls++;
        profile.set('(io)', io);
      }
    },
  };
}
