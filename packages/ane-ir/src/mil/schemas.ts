/**
 * Op schemas: for each MIL op, its parameters (required or optional, compile-time constant or not,
 * allowed dtypes) and a function that infers its result types from its operands. Parameter names,
 * defaults and shape rules follow coremltools' op definitions as summarized in
 * reference/mil-hardware-peers.md §1.4; `ane` records what reference/maderix-ane.md §2.3 and
 * reference/ane-quirks.md say about each op on the Neural Engine (the rule table decides what the
 * hardware accepts; this is evidence, not policy).
 */
import type { ScalarData } from './ast';
import { MilUnknownOpError, type MilValidationCode, MilValidationError } from './errors';
import {
  formatValueType,
  MIL_DTYPES,
  type MilDtype,
  shapeOf,
  type TensorType,
  tensorType,
  type ValueType,
} from './types';

/** A dimension whose size is not known at compile time (its operand is a runtime value). */
export const UNKNOWN_DIM = -1;

/** Far above any rank MIL uses (at most 5); bounds what a runtime `reshape` shape can claim. */
const MAX_RANK = 32;

export interface ParamSchema {
  readonly name: string;
  readonly required: boolean;
  /** Must be a compile-time constant: a literal, a `const` or a `constexpr_*` result. */
  readonly constant: boolean;
  /** A tuple of values, written `values=(a, b)`. */
  readonly tuple?: boolean;
  readonly dtypes: readonly MilDtype[];
  /** The default when omitted, as documentation (the inference functions apply it). */
  readonly defaultValue?: string;
}

/** How firmly the references say an op runs on the Neural Engine. */
export type AneEvidence =
  /** In programs maderix/ANE compiles and runs on M1–M5. */
  | 'hardware-proven'
  /** Reported working by a third party, or through another compile route. */
  | 'reported'
  /** Reports disagree (see the note). */
  | 'conflicting'
  /** No report either way. */
  | 'unverified';

export interface OpSchema {
  readonly name: string;
  readonly params: readonly ParamSchema[];
  /** First iOS opset that defines the op (16 for `ios16`); absent for the base opset. */
  readonly minOpset?: number;
  readonly ane: { readonly evidence: AneEvidence; readonly note: string };
  /** Result types, in output order. Dimensions may be `UNKNOWN_DIM`. Throws `MilValidationError`. */
  infer(context: InferenceContext): readonly TensorType[];
}

/** What an inference function knows about one operand. */
export interface Operand {
  readonly type: ValueType;
  /** Known at compile time (a literal, a `const` or a `constexpr_*` result). */
  readonly constant: boolean;
  /** The elements, row-major, when the value is a literal (not for blobs or computed values). */
  readonly data?: readonly ScalarData[];
}

/** A parameter's operand: one value, or a tuple of them. */
export type OperandInput = Operand | readonly Operand[];

/** Thrown inside inference when a constant a shape depends on has no literal data (e.g. a blob). */
export class UnknownAtCompileTime extends Error {
  override name = 'UnknownAtCompileTime';
}

export interface InferenceFailure {
  readonly code: MilValidationCode;
  readonly reason: string;
  readonly expected?: string;
  readonly found?: string;
}

/** The view of one op application that a schema's `infer` works on. */
export class InferenceContext {
  constructor(
    readonly op: string,
    private readonly inputs: ReadonlyMap<string, OperandInput>,
    /** Declared result types (used only where the text alone fixes them, e.g. split's count). */
    readonly declared: readonly ValueType[],
    /** iOS opset number (18 for `ios18`), when the function names one. */
    readonly opsetVersion: number | undefined,
    private readonly onFailure: (failure: InferenceFailure) => never,
  ) {}

  has(param: string): boolean {
    return this.inputs.has(param);
  }

  /** A non-tuple operand, or undefined when the parameter was not given. */
  optional(param: string): Operand | undefined {
    const input = this.inputs.get(param);
    if (input === undefined) return undefined;
    if (isTuple(input)) return this.fail('param-kind', `'${param}' must be a single value, not a tuple`);
    return input;
  }

  required(param: string): Operand {
    return this.optional(param) ?? this.fail('missing-param', `missing required parameter '${param}'`);
  }

  shape(param: string): readonly number[] {
    return shapeOf(this.required(param).type);
  }

  dtype(param: string): MilDtype {
    return this.required(param).type.dtype;
  }

  tuple(param: string): readonly Operand[] {
    const input = this.inputs.get(param);
    if (input === undefined) return this.fail('missing-param', `missing required parameter '${param}'`);
    if (!isTuple(input)) return this.fail('param-kind', `'${param}' must be a tuple such as (a, b)`);
    return input;
  }

  /** Elements of a constant operand; throws `UnknownAtCompileTime` when they are not literal. */
  private dataOf(param: string): readonly ScalarData[] | undefined {
    const operand = this.optional(param);
    if (operand === undefined) return undefined;
    if (operand.data === undefined) throw new UnknownAtCompileTime(param);
    return operand.data;
  }

  /** A rank-1 (or scalar) integer operand as numbers, or undefined when not given. */
  ints(param: string): readonly number[] | undefined {
    const operand = this.optional(param);
    if (operand === undefined) return undefined;
    if (shapeOf(operand.type).length > 1) {
      this.fail('shape', `'${param}' must be a 1-D tensor`, 'rank 1', formatValueType(operand.type));
    }
    return this.dataOf(param)!.map((element) => {
      if (typeof element !== 'number' || !Number.isInteger(element)) {
        return this.fail('invalid-value', `'${param}' must hold integers`, 'integers', String(element));
      }
      return element;
    });
  }

  /** Like `ints`, for a parameter the shape rule cannot do without even when it is a runtime value. */
  intsOrUnknown(param: string): readonly number[] | undefined {
    const operand = this.optional(param);
    if (operand === undefined || operand.data === undefined) return undefined;
    return this.ints(param);
  }

  private scalar(param: string): ScalarData | undefined {
    const operand = this.optional(param);
    if (operand === undefined) return undefined;
    const shape = shapeOf(operand.type);
    if (shape.length !== 0) {
      this.fail('shape', `'${param}' must be a scalar`, 'a scalar', formatValueType(operand.type));
    }
    return this.dataOf(param)![0];
  }

  int(param: string): number | undefined {
    const value = this.scalar(param);
    if (value === undefined) return undefined;
    if (typeof value !== 'number' || !Number.isInteger(value)) {
      return this.fail('invalid-value', `'${param}' must be an integer`, 'an integer', String(value));
    }
    return value;
  }

  bool(param: string): boolean | undefined {
    const value = this.scalar(param);
    if (value === undefined) return undefined;
    if (typeof value !== 'boolean')
      return this.fail('invalid-value', `'${param}' must be a bool`, 'a bool', String(value));
    return value;
  }

  string(param: string): string | undefined {
    const value = this.scalar(param);
    if (value === undefined) return undefined;
    if (typeof value !== 'string') {
      return this.fail('invalid-value', `'${param}' must be a string`, 'a string', String(value));
    }
    return value;
  }

  /** `axis` in [-rank, rank) as a non-negative index. */
  axis(param: string, value: number, rank: number): number {
    if (value < -rank || value >= rank) {
      this.fail(
        'invalid-value',
        `'${param}' is out of range for rank ${rank}`,
        `-${rank}..${rank - 1}`,
        String(value),
      );
    }
    return value < 0 ? value + rank : value;
  }

  fail(code: MilValidationCode, reason: string, expected?: string, found?: string): never {
    const failure: { -readonly [K in keyof InferenceFailure]: InferenceFailure[K] } = { code, reason };
    if (expected !== undefined) failure.expected = expected;
    if (found !== undefined) failure.found = found;
    return this.onFailure(failure);
  }
}

function isTuple(input: OperandInput): input is readonly Operand[] {
  return Array.isArray(input);
}

/** `[1, 64, 1, 32]` */
export function formatShape(shape: readonly number[]): string {
  return `[${shape.map((dim) => (dim === UNKNOWN_DIM ? '?' : String(dim))).join(', ')}]`;
}

/** NumPy broadcasting of two shapes, or undefined when they do not broadcast. */
export function broadcastShapes(a: readonly number[], b: readonly number[]): number[] | undefined {
  const rank = Math.max(a.length, b.length);
  const result: number[] = [];
  for (let i = 0; i < rank; i++) {
    const dimA = a[a.length - rank + i] ?? 1;
    const dimB = b[b.length - rank + i] ?? 1;
    if (dimA === UNKNOWN_DIM || dimB === UNKNOWN_DIM)
      result.push(dimA === 1 ? dimB : dimA === UNKNOWN_DIM ? dimB : dimA);
    else if (dimA === dimB || dimB === 1) result.push(dimA);
    else if (dimA === 1) result.push(dimB);
    else return undefined;
  }
  return result;
}

function broadcastOrFail(
  context: InferenceContext,
  shapes: readonly (readonly number[])[],
  params: string,
): number[] {
  let result: number[] = [];
  for (const shape of shapes) {
    const next = broadcastShapes(result, shape);
    if (next === undefined) {
      context.fail(
        'shape',
        `${params} do not broadcast`,
        'shapes equal or 1 on each axis (from the right)',
        shapes.map(formatShape).join(' vs '),
      );
    }
    result = next;
  }
  return result;
}

// ---- dtype sets ---------------------------------------------------------------------------------

const FLOAT: readonly MilDtype[] = ['fp16', 'fp32'];
const NUMERIC: readonly MilDtype[] = ['fp16', 'fp32', 'int32'];
const INDEX: readonly MilDtype[] = ['int32'];
const BOOL: readonly MilDtype[] = ['bool'];
const STRING: readonly MilDtype[] = ['string'];
const QUANTIZED: readonly MilDtype[] = ['int8', 'uint8'];
/** Data-movement ops move any of these (int8..uint16 from iOS17). */
const MOVABLE: readonly MilDtype[] = ['fp16', 'fp32', 'int32', 'bool', 'int8', 'uint8', 'int16', 'uint16'];
const ANY: readonly MilDtype[] = MIL_DTYPES;

function param(
  name: string,
  dtypes: readonly MilDtype[],
  options: { required?: boolean; constant?: boolean; tuple?: boolean; defaultValue?: string } = {},
): ParamSchema {
  const schema: { -readonly [K in keyof ParamSchema]: ParamSchema[K] } = {
    name,
    dtypes,
    required: options.required ?? options.defaultValue === undefined,
    constant: options.constant ?? false,
  };
  if (options.tuple) schema.tuple = true;
  if (options.defaultValue !== undefined) schema.defaultValue = options.defaultValue;
  return schema;
}

function constantParam(name: string, dtypes: readonly MilDtype[], defaultValue?: string): ParamSchema {
  return defaultValue === undefined
    ? param(name, dtypes, { constant: true })
    : param(name, dtypes, { constant: true, defaultValue });
}

const PROVEN = (note: string) => ({ evidence: 'hardware-proven' as const, note });
const REPORTED = (note: string) => ({ evidence: 'reported' as const, note });
const CONFLICTING = (note: string) => ({ evidence: 'conflicting' as const, note });
const UNVERIFIED = (note = 'not used by maderix/ANE; no report either way') => ({
  evidence: 'unverified' as const,
  note,
});

function sameAs(context: InferenceContext, param: string): TensorType[] {
  const operand = context.required(param);
  return [tensorType(operand.type.dtype, shapeOf(operand.type))];
}

function requireRank(
  context: InferenceContext,
  param: string,
  min: number,
  max = Number.POSITIVE_INFINITY,
): number {
  const shape = context.shape(param);
  if (shape.length < min || shape.length > max) {
    const wanted =
      max === min
        ? `rank ${min}`
        : max === Number.POSITIVE_INFINITY
          ? `rank >= ${min}`
          : `rank ${min}..${max}`;
    context.fail('shape', `'${param}' has the wrong rank`, wanted, formatShape(shape));
  }
  return shape.length;
}

function requireSameDtype(context: InferenceContext, a: string, b: string): MilDtype {
  const dtypeA = context.dtype(a);
  const dtypeB = context.dtype(b);
  if (dtypeA !== dtypeB) {
    context.fail('dtype', `'${a}' and '${b}' must have the same dtype`, dtypeA, dtypeB);
  }
  return dtypeA;
}

function requireLength(
  context: InferenceContext,
  param: string,
  values: readonly number[],
  length: number,
): void {
  if (values.length !== length) {
    context.fail('shape', `'${param}' must have ${length} entries`, `${length} entries`, `${values.length}`);
  }
}

function oneOf(context: InferenceContext, param: string, value: string, allowed: readonly string[]): void {
  if (!allowed.includes(value))
    context.fail('invalid-value', `'${param}' is not supported`, allowed.join(' | '), value);
}

// ---- op definitions -----------------------------------------------------------------------------

function elementwiseBinary(name: string, ane: OpSchema['ane'], resultDtype?: MilDtype): OpSchema {
  return {
    name,
    params: [param('x', NUMERIC), param('y', NUMERIC)],
    ane,
    infer(context) {
      const dtype = requireSameDtype(context, 'x', 'y');
      const shape = broadcastOrFail(context, [context.shape('x'), context.shape('y')], "'x' and 'y'");
      return [tensorType(resultDtype ?? dtype, shape)];
    },
  };
}

function elementwiseUnary(name: string, ane: OpSchema['ane'], extra: readonly ParamSchema[] = []): OpSchema {
  return { name, params: [param('x', FLOAT), ...extra], ane, infer: (context) => sameAs(context, 'x') };
}

function reduction(name: string, ane: OpSchema['ane']): OpSchema {
  return {
    name,
    params: [
      param('x', NUMERIC),
      constantParam('axes', INDEX, 'all axes'),
      constantParam('keep_dims', BOOL, 'false'),
    ],
    ane,
    infer(context) {
      const shape = context.shape('x');
      const axes =
        context.ints('axes')?.map((axis) => context.axis('axes', axis, shape.length)) ??
        shape.map((_, i) => i);
      if (new Set(axes).size !== axes.length)
        context.fail('invalid-value', "'axes' repeats an axis", 'distinct axes', axes.join(', '));
      const keepDims = context.bool('keep_dims') ?? false;
      const result: number[] = [];
      shape.forEach((dim, i) => {
        if (!axes.includes(i)) result.push(dim);
        else if (keepDims) result.push(1);
      });
      return [tensorType(context.dtype('x'), result)];
    },
  };
}

const constOp: OpSchema = {
  name: 'const',
  params: [param('val', ANY, { constant: true })],
  ane: PROVEN('every program; value in the attribute block as val=...'),
  infer: (context) => sameAs(context, 'val'),
};

const CAST_TARGETS = ['int32', 'fp16', 'fp32', 'bool', 'int8', 'uint8', 'int16', 'uint16'] as const;

const castOp: OpSchema = {
  name: 'cast',
  params: [param('x', MOVABLE), constantParam('dtype', STRING)],
  ane: PROVEN('fp32<->fp16 at kernel edges; reported not to compile on M1/M2'),
  infer(context) {
    const target = context.string('dtype')!;
    oneOf(context, 'dtype', target, CAST_TARGETS);
    return [tensorType(target as MilDtype, context.shape('x'))];
  },
};

const convOp: OpSchema = {
  name: 'conv',
  params: [
    param('x', FLOAT),
    param('weight', FLOAT),
    param('bias', FLOAT, { defaultValue: 'none' }),
    constantParam('strides', INDEX, '1 per spatial axis'),
    constantParam('pad_type', STRING, '"valid"'),
    constantParam('pad', INDEX, '0 per side'),
    constantParam('dilations', INDEX, '1 per spatial axis'),
    constantParam('groups', INDEX, '1'),
  ],
  ane: PROVEN('1x1 conv is the linear layer; weight must be constant on the ANE in-memory route'),
  infer(context) {
    const rank = requireRank(context, 'x', 3, 5);
    const x = context.shape('x');
    const weight = context.shape('weight');
    const spatial = rank - 2;
    if (weight.length !== rank) {
      context.fail('shape', "'weight' must have the rank of 'x'", `rank ${rank}`, formatShape(weight));
    }
    const groups = context.int('groups') ?? 1;
    if (groups < 1) context.fail('invalid-value', "'groups' must be positive", '>= 1', String(groups));
    const outChannels = weight[0]!;
    const inChannels = x[1]!;
    if (inChannels !== UNKNOWN_DIM && weight[1]! * groups !== inChannels) {
      context.fail(
        'shape',
        "'weight' input channels times groups must equal the channels of 'x'",
        `weight[1] * ${groups} = ${inChannels}`,
        `weight ${formatShape(weight)}`,
      );
    }
    if (outChannels % groups !== 0) {
      context.fail(
        'shape',
        "'weight' output channels must divide by groups",
        `a multiple of ${groups}`,
        String(outChannels),
      );
    }
    const bias = context.optional('bias');
    if (bias !== undefined) {
      const biasShape = shapeOf(bias.type);
      if (biasShape.length !== 1 || biasShape[0] !== outChannels) {
        context.fail('shape', "'bias' must be [C_out]", formatShape([outChannels]), formatShape(biasShape));
      }
    }
    const strides = context.ints('strides') ?? new Array<number>(spatial).fill(1);
    const dilations = context.ints('dilations') ?? new Array<number>(spatial).fill(1);
    const pad = context.ints('pad') ?? new Array<number>(2 * spatial).fill(0);
    requireLength(context, 'strides', strides, spatial);
    requireLength(context, 'dilations', dilations, spatial);
    requireLength(context, 'pad', pad, 2 * spatial);
    if (strides.some((s) => s < 1))
      context.fail('invalid-value', "'strides' must be positive", '>= 1', strides.join(', '));
    if (dilations.some((d) => d < 1))
      context.fail('invalid-value', "'dilations' must be positive", '>= 1', dilations.join(', '));
    if (pad.some((p) => p < 0))
      context.fail('invalid-value', "'pad' must be non-negative", '>= 0', pad.join(', '));
    const padType = context.string('pad_type') ?? 'valid';
    oneOf(context, 'pad_type', padType, ['valid', 'same', 'same_lower', 'custom']);
    const out: number[] = [x[0]!, outChannels];
    for (let i = 0; i < spatial; i++) {
      const size = x[i + 2]!;
      const effectiveKernel = (weight[i + 2]! - 1) * dilations[i]! + 1;
      if (size === UNKNOWN_DIM) {
        out.push(UNKNOWN_DIM);
        continue;
      }
      let padded = size;
      if (padType === 'same' || padType === 'same_lower') {
        out.push(Math.ceil(size / strides[i]!));
        continue;
      }
      if (padType === 'custom') padded += pad[2 * i]! + pad[2 * i + 1]!;
      if (padded < effectiveKernel) {
        context.fail(
          'shape',
          `spatial axis ${i} is smaller than the dilated kernel`,
          `at least ${effectiveKernel}`,
          `${padded} (padded)`,
        );
      }
      out.push(Math.floor((padded - effectiveKernel) / strides[i]!) + 1);
    }
    return [tensorType(context.dtype('x'), out)];
  },
};

const matmulOp: OpSchema = {
  name: 'matmul',
  params: [
    param('x', NUMERIC),
    param('y', NUMERIC),
    constantParam('transpose_x', BOOL, 'false'),
    constantParam('transpose_y', BOOL, 'false'),
  ],
  ane: PROVEN('runtime-weight linears and attention; transpose flags as named bool consts'),
  infer(context) {
    const x = context.required('x');
    const y = context.required('y');
    requireRank(context, 'x', 1);
    requireRank(context, 'y', 1);
    let dtype = x.type.dtype;
    if (x.type.dtype !== y.type.dtype) {
      // iOS17 allows mixed dtypes when one side is constant; the result follows the runtime side.
      const mixedAllowed = (context.opsetVersion ?? 0) >= 17 && x.constant !== y.constant;
      if (!mixedAllowed)
        context.fail('dtype', "'x' and 'y' must have the same dtype", x.type.dtype, y.type.dtype);
      dtype = x.constant ? y.type.dtype : x.type.dtype;
    }
    const xShape = [...shapeOf(x.type)];
    const yShape = [...shapeOf(y.type)];
    const xVector = xShape.length === 1;
    const yVector = yShape.length === 1;
    const xMatrix = xVector ? [1, xShape[0]!] : xShape;
    const yMatrix = yVector ? [yShape[0]!, 1] : yShape;
    if (!xVector && context.bool('transpose_x')) swapLastTwo(xMatrix);
    if (!yVector && context.bool('transpose_y')) swapLastTwo(yMatrix);
    const inner = xMatrix[xMatrix.length - 1]!;
    const yInner = yMatrix[yMatrix.length - 2]!;
    if (inner !== yInner && inner !== UNKNOWN_DIM && yInner !== UNKNOWN_DIM) {
      context.fail(
        'shape',
        "inner dimensions of 'x' and 'y' differ (after transposes)",
        `y[-2] = ${inner}`,
        `x ${formatShape(xMatrix)} @ y ${formatShape(yMatrix)}`,
      );
    }
    const batch = broadcastOrFail(
      context,
      [xMatrix.slice(0, -2), yMatrix.slice(0, -2)],
      "batch dimensions of 'x' and 'y'",
    );
    const out = [...batch];
    if (!xVector) out.push(xMatrix[xMatrix.length - 2]!);
    if (!yVector) out.push(yMatrix[yMatrix.length - 1]!);
    return [tensorType(dtype, out)];
  },
};

function swapLastTwo(shape: number[]): void {
  const last = shape.length - 1;
  [shape[last - 1], shape[last]] = [shape[last]!, shape[last - 1]!];
}

const linearOp: OpSchema = {
  name: 'linear',
  params: [
    param('x', NUMERIC),
    param('weight', NUMERIC, { constant: true }),
    param('bias', NUMERIC, { constant: true, defaultValue: 'zeros' }),
  ],
  ane: REPORTED('verified by maderix/ANE PR #40 with constant weights (E5/Core ML route)'),
  infer(context) {
    requireRank(context, 'x', 1, 3);
    requireRank(context, 'weight', 2, 2);
    const x = context.shape('x');
    const [outFeatures, inFeatures] = context.shape('weight') as [number, number];
    if (x[x.length - 1] !== inFeatures) {
      context.fail('shape', "last axis of 'x' must equal weight[1]", String(inFeatures), formatShape(x));
    }
    const bias = context.optional('bias');
    if (bias !== undefined && (shapeOf(bias.type).length !== 1 || shapeOf(bias.type)[0] !== outFeatures)) {
      context.fail(
        'shape',
        "'bias' must be [D_out]",
        formatShape([outFeatures]),
        formatShape(shapeOf(bias.type)),
      );
    }
    return [tensorType(context.dtype('x'), [...x.slice(0, -1), outFeatures])];
  },
};

const GELU_MODES = ['EXACT', 'TANH_APPROXIMATION', 'SIGMOID_APPROXIMATION'];

const geluOp: OpSchema = {
  name: 'gelu',
  params: [param('x', FLOAT), constantParam('mode', STRING, '"EXACT"')],
  ane: CONFLICTING('Orion: fails to compile; ANEForge: native with an explicit mode (ane-quirks emit.gelu)'),
  infer(context) {
    const mode = context.string('mode');
    if (mode !== undefined) oneOf(context, 'mode', mode, GELU_MODES);
    return sameAs(context, 'x');
  },
};

const softmaxOp: OpSchema = {
  name: 'softmax',
  params: [param('x', FLOAT), constantParam('axis', INDEX, '-1')],
  ane: PROVEN('axis -1 (attention rows) and 1 (vocabulary over channels)'),
  infer(context) {
    const axis = context.int('axis');
    if (axis !== undefined) context.axis('axis', axis, context.shape('x').length);
    return sameAs(context, 'x');
  },
};

const reshapeOp: OpSchema = {
  name: 'reshape',
  params: [param('x', MOVABLE), param('shape', ['int32', 'int16', 'int8'])],
  ane: PROVEN('rank-3/4 target shapes, heads split as [1,H,HD,S]'),
  infer(context) {
    const x = context.shape('x');
    const shapeOperand = shapeOf(context.required('shape').type);
    if (shapeOperand.length !== 1) {
      context.fail('shape', "'shape' must be a 1-D tensor", 'rank 1', formatShape(shapeOperand));
    }
    if (shapeOperand[0]! > MAX_RANK) {
      context.fail(
        'shape',
        `'shape' has more entries than any tensor has axes`,
        `at most ${MAX_RANK}`,
        String(shapeOperand[0]),
      );
    }
    const target = context.intsOrUnknown('shape');
    if (target === undefined) {
      return [tensorType(context.dtype('x'), new Array<number>(shapeOperand[0]!).fill(UNKNOWN_DIM))];
    }
    const total = x.includes(UNKNOWN_DIM) ? undefined : x.reduce((a, b) => a * b, 1);
    const out = target.map((dim, i) => {
      if (dim === 0) {
        if (target.length !== x.length) {
          context.fail(
            'invalid-value',
            "'shape' may use 0 (copy the axis) only when it keeps the rank",
            `${x.length} entries`,
            `${target.length}`,
          );
        }
        return x[i]!;
      }
      if (dim < -1)
        context.fail('invalid-value', "'shape' entries must be positive, 0 or -1", '>= -1', String(dim));
      return dim;
    });
    const inferred = out.filter((dim) => dim === -1).length;
    if (inferred > 1)
      context.fail('invalid-value', "'shape' may hold at most one -1", 'one -1', target.join(', '));
    const known = out.filter((dim) => dim !== -1).reduce((a, b) => a * b, 1);
    if (total === undefined) return [tensorType(context.dtype('x'), out)];
    if (inferred === 1) {
      if (known === 0 || total % known !== 0) {
        context.fail(
          'shape',
          `cannot reshape ${formatShape(x)} to ${formatShape(target)}`,
          `a divisor of ${total}`,
          String(known),
        );
      }
      out[out.indexOf(-1)] = total / known;
    } else if (known !== total) {
      context.fail(
        'shape',
        `cannot reshape ${formatShape(x)} to ${formatShape(target)}: element counts differ`,
        `${total} elements`,
        `${known}`,
      );
    }
    return [tensorType(context.dtype('x'), out)];
  },
};

const transposeOp: OpSchema = {
  name: 'transpose',
  params: [param('x', MOVABLE), constantParam('perm', INDEX)],
  ane: PROVEN('perm [0,1,3,2] (swap the last two axes) is the only one used'),
  infer(context) {
    const x = context.shape('x');
    const perm = context.ints('perm')!.map((axis) => context.axis('perm', axis, x.length));
    requireLength(context, 'perm', perm, x.length);
    if (new Set(perm).size !== perm.length) {
      context.fail(
        'invalid-value',
        "'perm' must be a permutation of the axes",
        `each of 0..${x.length - 1} once`,
        perm.join(', '),
      );
    }
    return [
      tensorType(
        context.dtype('x'),
        perm.map((axis) => x[axis]!),
      ),
    ];
  },
};

const sliceBySizeOp: OpSchema = {
  name: 'slice_by_size',
  params: [param('x', MOVABLE), param('begin', INDEX), param('size', INDEX)],
  ane: PROVEN('unpacks activations and weights packed along the spatial axis'),
  infer(context) {
    const x = context.shape('x');
    const begin = context.intsOrUnknown('begin');
    const size = context.intsOrUnknown('size');
    if (begin !== undefined) requireLength(context, 'begin', begin, x.length);
    if (size === undefined)
      return [
        tensorType(
          context.dtype('x'),
          x.map(() => UNKNOWN_DIM),
        ),
      ];
    requireLength(context, 'size', size, x.length);
    const out = x.map((dim, i) => {
      const extent = size[i]!;
      const rawStart = begin?.[i];
      const start = rawStart !== undefined && rawStart < 0 && dim !== UNKNOWN_DIM ? rawStart + dim : rawStart;
      if (extent < -1)
        context.fail('invalid-value', "'size' entries must be >= 0 or -1", '>= -1', String(extent));
      if (start === undefined || dim === UNKNOWN_DIM) return extent === -1 ? UNKNOWN_DIM : extent;
      if (start < 0 || start > dim) {
        context.fail('invalid-value', `'begin' is out of range on axis ${i}`, `0..${dim}`, String(rawStart));
      }
      const length = extent === -1 ? dim - start : extent;
      if (start + length > dim) {
        context.fail(
          'shape',
          `slice runs past the end of axis ${i}`,
          `begin + size <= ${dim}`,
          `${start} + ${length}`,
        );
      }
      return length;
    });
    return [tensorType(context.dtype('x'), out)];
  },
};

const sliceByIndexOp: OpSchema = {
  name: 'slice_by_index',
  params: [
    param('x', MOVABLE),
    param('begin', INDEX),
    param('end', INDEX),
    constantParam('stride', INDEX, '1 per axis'),
    constantParam('begin_mask', BOOL, 'all false'),
    constantParam('end_mask', BOOL, 'all false'),
    constantParam('squeeze_mask', BOOL, 'all false'),
  ],
  ane: REPORTED('verified by maderix/ANE PR #40 (E5/Core ML route)'),
  infer(context) {
    const x = context.shape('x');
    const rank = x.length;
    const begin = context.intsOrUnknown('begin');
    const end = context.intsOrUnknown('end');
    const stride = context.ints('stride') ?? new Array<number>(rank).fill(1);
    const masks = (name: string): readonly boolean[] => {
      const values =
        context.optional(name) === undefined ? new Array<boolean>(rank).fill(false) : boolsOf(context, name);
      if (values.length !== rank)
        context.fail('shape', `'${name}' must have ${rank} entries`, `${rank}`, `${values.length}`);
      return values;
    };
    const beginMask = masks('begin_mask');
    const endMask = masks('end_mask');
    const squeezeMask = masks('squeeze_mask');
    if (begin !== undefined) requireLength(context, 'begin', begin, rank);
    if (end !== undefined) requireLength(context, 'end', end, rank);
    requireLength(context, 'stride', stride, rank);
    const out: number[] = [];
    for (let i = 0; i < rank; i++) {
      const dim = x[i]!;
      const step = stride[i]!;
      if (step === 0) context.fail('invalid-value', "'stride' entries must be nonzero", 'nonzero', '0');
      let length: number;
      const first = beginMask[i] ? undefined : begin?.[i];
      const last = endMask[i] ? undefined : end?.[i];
      if (
        dim === UNKNOWN_DIM ||
        (!beginMask[i] && first === undefined) ||
        (!endMask[i] && last === undefined)
      ) {
        length = UNKNOWN_DIM;
      } else {
        length = sliceLength(dim, first, last, step);
      }
      if (squeezeMask[i]) {
        if (length !== 1 && length !== UNKNOWN_DIM) {
          context.fail(
            'shape',
            `squeeze_mask drops axis ${i}, which must then have length 1`,
            '1',
            String(length),
          );
        }
        continue;
      }
      out.push(length);
    }
    return [tensorType(context.dtype('x'), out)];
  },
};

function boolsOf(context: InferenceContext, name: string): readonly boolean[] {
  const operand = context.optional(name)!;
  if (operand.data === undefined) throw new UnknownAtCompileTime(name);
  return operand.data.map((value) => value === true);
}

/** Elements a Python-style slice `[first:last:step]` (undefined = open end) takes from an axis of `dim`. */
export function sliceLength(
  dim: number,
  first: number | undefined,
  last: number | undefined,
  step: number,
): number {
  const clamp = (value: number, low: number, high: number) => Math.min(Math.max(value, low), high);
  if (step > 0) {
    const start = first === undefined ? 0 : clamp(first < 0 ? first + dim : first, 0, dim);
    const stop = last === undefined ? dim : clamp(last < 0 ? last + dim : last, 0, dim);
    return Math.max(0, Math.ceil((stop - start) / step));
  }
  const start = first === undefined ? dim - 1 : clamp(first < 0 ? first + dim : first, -1, dim - 1);
  const stop = last === undefined ? -1 : clamp(last < 0 ? last + dim : last, -1, dim - 1);
  return Math.max(0, Math.ceil((start - stop) / -step));
}

const concatOp: OpSchema = {
  name: 'concat',
  params: [
    param('values', ANY, { tuple: true }),
    constantParam('axis', INDEX),
    constantParam('interleave', BOOL, 'false'),
  ],
  ane: CONFLICTING(
    'maderix/ANE and ANEForge concat 2-9 inputs with interleave=false (forward taps, RoPE); Orion reports a compile failure (ane-quirks emit.concat)',
  ),
  infer(context) {
    const values = context.tuple('values');
    const first = values[0];
    if (first === undefined)
      return context.fail('shape', "'values' must hold at least one tensor", '>= 1 value', '()');
    const shape = shapeOf(first.type);
    const axis = context.axis('axis', context.int('axis')!, shape.length);
    const interleave = context.bool('interleave') ?? false;
    const out = [...shape];
    values.forEach((value, index) => {
      if (index === 0) return;
      const other = shapeOf(value.type);
      if (value.type.dtype !== first.type.dtype) {
        context.fail('dtype', `'values' item ${index} has another dtype`, first.type.dtype, value.type.dtype);
      }
      const compatible =
        other.length === shape.length &&
        other.every((dim, i) => (interleave || i !== axis ? dim === shape[i] : true));
      if (!compatible) {
        context.fail(
          'shape',
          interleave
            ? `'values' item ${index} must have the shape of item 0 (interleave)`
            : `'values' item ${index} must match item 0 on every axis but ${axis}`,
          formatShape(shape),
          formatShape(other),
        );
      }
      out[axis] =
        out[axis] === UNKNOWN_DIM || other[axis] === UNKNOWN_DIM ? UNKNOWN_DIM : out[axis]! + other[axis]!;
    });
    return [tensorType(first.type.dtype, out)];
  },
};

const splitOp: OpSchema = {
  name: 'split',
  params: [
    param('x', MOVABLE),
    constantParam('num_splits', INDEX, 'the number of declared outputs'),
    constantParam('split_sizes', INDEX, 'equal parts'),
    constantParam('axis', INDEX),
  ],
  ane: UNVERIFIED('not used by maderix/ANE; multi-output programs are themselves unverified there'),
  infer(context) {
    const x = context.shape('x');
    const axis = context.axis('axis', context.int('axis')!, x.length);
    const dim = x[axis]!;
    const sizes = context.ints('split_sizes');
    const count = context.int('num_splits') ?? sizes?.length ?? context.declared.length;
    if (count < 1) context.fail('invalid-value', "'num_splits' must be positive", '>= 1', String(count));
    let parts: number[];
    if (sizes !== undefined) {
      if (sizes.length !== count) {
        context.fail(
          'invalid-value',
          "'num_splits' and 'split_sizes' disagree",
          `${count} sizes`,
          `${sizes.length}`,
        );
      }
      const sum = sizes.reduce((a, b) => a + b, 0);
      if (sizes.some((size) => size < 0) || (dim !== UNKNOWN_DIM && sum !== dim)) {
        context.fail(
          'shape',
          `'split_sizes' must sum to axis ${axis} of 'x'`,
          String(dim),
          `${sizes.join(' + ')} = ${sum}`,
        );
      }
      parts = [...sizes];
    } else {
      if (dim !== UNKNOWN_DIM && dim % count !== 0) {
        context.fail(
          'shape',
          `axis ${axis} of 'x' does not divide into ${count} equal parts`,
          `a multiple of ${count}`,
          String(dim),
        );
      }
      parts = new Array<number>(count).fill(dim === UNKNOWN_DIM ? UNKNOWN_DIM : dim / count);
    }
    return parts.map((part) => {
      const shape = [...x];
      shape[axis] = part;
      return tensorType(context.dtype('x'), shape);
    });
  },
};

const layerNormOp: OpSchema = {
  name: 'layer_norm',
  params: [
    param('x', FLOAT),
    constantParam('axes', INDEX, 'all axes'),
    constantParam('gamma', FLOAT, 'ones'),
    constantParam('beta', FLOAT, 'zeros'),
    constantParam('epsilon', FLOAT, '1e-5'),
  ],
  ane: CONFLICTING(
    'PR #40 reports it working; the mil-hwx-compiler harness sees every affine form rejected (ane-quirks op.layer-norm-affine)',
  ),
  infer(context) {
    const x = context.shape('x');
    const axes =
      context.ints('axes')?.map((axis) => context.axis('axes', axis, x.length)) ?? x.map((_, i) => i);
    const normalized = axes.map((axis) => x[axis]!);
    for (const name of ['gamma', 'beta']) {
      const operand = context.optional(name);
      if (operand === undefined) continue;
      const shape = shapeOf(operand.type);
      if (shape.length !== normalized.length || shape.some((dim, i) => dim !== normalized[i])) {
        context.fail(
          'shape',
          `'${name}' must have the shape of x on 'axes'`,
          formatShape(normalized),
          formatShape(shape),
        );
      }
    }
    return sameAs(context, 'x');
  },
};

const selectOp: OpSchema = {
  name: 'select',
  params: [param('cond', BOOL), param('a', [...NUMERIC, 'bool']), param('b', [...NUMERIC, 'bool'])],
  ane: REPORTED(
    'ANEForge: the consumer of comparison outputs, the one place a bool lives on the ANE (ane-quirks dtype.bool)',
  ),
  infer(context) {
    const dtype = requireSameDtype(context, 'a', 'b');
    const shape = broadcastOrFail(
      context,
      [context.shape('cond'), context.shape('a'), context.shape('b')],
      "'cond', 'a' and 'b'",
    );
    return [tensorType(dtype, shape)];
  },
};

const bandPartOp: OpSchema = {
  name: 'band_part',
  params: [
    param('x', [...NUMERIC, 'bool']),
    constantParam('lower', INDEX, '-1'),
    constantParam('upper', INDEX, '-1'),
  ],
  ane: UNVERIFIED(),
  infer(context) {
    requireRank(context, 'x', 2);
    context.int('lower');
    context.int('upper');
    return sameAs(context, 'x');
  },
};

/** Scale (and zero point) of a quantize-style op: a scalar, or 1-D along `axis`. */
function checkQuantizationParams(
  context: InferenceContext,
  dataParam: string,
  shape: readonly number[],
): void {
  const scale = shapeOf(context.required('scale').type);
  const axisValue = context.int('axis');
  if (scale.length > 1)
    context.fail('shape', "'scale' must be a scalar or 1-D", 'rank 0 or 1', formatShape(scale));
  if (scale.length === 1 && scale[0] !== 1) {
    if (axisValue === undefined) context.fail('missing-param', "a per-channel 'scale' needs 'axis'");
    const axis = context.axis('axis', axisValue, shape.length);
    if (scale[0] !== shape[axis]) {
      context.fail(
        'shape',
        `'scale' must have one entry per index of axis ${axis} of '${dataParam}'`,
        String(shape[axis]),
        String(scale[0]),
      );
    }
  } else if (axisValue !== undefined) {
    context.axis('axis', axisValue, shape.length);
  }
  const zeroPoint = context.optional('zero_point');
  if (zeroPoint !== undefined) {
    const zeroShape = shapeOf(zeroPoint.type);
    const scalarScale = scale.length === 0 || (scale.length === 1 && scale[0] === 1);
    const scalarZero = zeroShape.length === 0 || (zeroShape.length === 1 && zeroShape[0] === 1);
    if (!(scalarScale && scalarZero) && (zeroShape.length !== scale.length || zeroShape[0] !== scale[0])) {
      context.fail(
        'shape',
        "'zero_point' must have the shape of 'scale'",
        formatShape(scale),
        formatShape(zeroShape),
      );
    }
  }
}

const quantizeOp: OpSchema = {
  name: 'quantize',
  minOpset: 17,
  params: [
    param('input', FLOAT),
    constantParam('zero_point', QUANTIZED, 'none (0)'),
    constantParam('scale', FLOAT),
    constantParam('axis', INDEX, 'none (per-tensor)'),
    constantParam('output_dtype', STRING),
  ],
  ane: PROVEN('W8A8 benchmark: per-tensor fp16 scale, output_dtype "int8"'),
  infer(context) {
    const outputDtype = context.string('output_dtype')!;
    oneOf(context, 'output_dtype', outputDtype, ['int8', 'uint8']);
    const zeroPoint = context.optional('zero_point');
    if (zeroPoint !== undefined && zeroPoint.type.dtype !== outputDtype) {
      context.fail('dtype', "'zero_point' must have the output dtype", outputDtype, zeroPoint.type.dtype);
    }
    const shape = context.shape('input');
    checkQuantizationParams(context, 'input', shape);
    return [tensorType(outputDtype as MilDtype, shape)];
  },
};

const dequantizeOp: OpSchema = {
  name: 'dequantize',
  minOpset: 17,
  params: [
    param('input', QUANTIZED),
    constantParam('zero_point', QUANTIZED, 'none (0)'),
    constantParam('scale', FLOAT),
    constantParam('axis', INDEX, 'none (per-tensor)'),
  ],
  ane: PROVEN('W8A8 benchmark: per-tensor fp16 scale'),
  infer(context) {
    const zeroPoint = context.optional('zero_point');
    if (zeroPoint !== undefined) requireSameDtype(context, 'input', 'zero_point');
    const shape = context.shape('input');
    checkQuantizationParams(context, 'input', shape);
    return [tensorType(context.dtype('scale'), shape)];
  },
};

const constexprAffineDequantizeOp: OpSchema = {
  name: 'constexpr_affine_dequantize',
  minOpset: 16,
  params: [
    constantParam('quantized_data', QUANTIZED),
    constantParam('zero_point', ['int8', 'uint8', 'fp32']),
    constantParam('scale', FLOAT),
    constantParam('axis', INDEX),
  ],
  ane: PROVEN('int8 weights from a blob, all parameters in the attribute block; dequantized at compile time'),
  infer(context) {
    const shape = context.shape('quantized_data');
    const zeroPoint = context.required('zero_point');
    if (zeroPoint.type.dtype !== 'fp32' && zeroPoint.type.dtype !== context.dtype('quantized_data')) {
      context.fail(
        'dtype',
        "'zero_point' must have the dtype of 'quantized_data' (or fp32)",
        context.dtype('quantized_data'),
        zeroPoint.type.dtype,
      );
    }
    checkQuantizationParams(context, 'quantized_data', shape);
    return [tensorType(context.dtype('scale'), shape)];
  },
};

const scaledDotProductAttentionOp: OpSchema = {
  name: 'scaled_dot_product_attention',
  minOpset: 18,
  params: [
    param('query', FLOAT),
    param('key', FLOAT),
    param('value', FLOAT),
    param('attn_mask', [...FLOAT, 'bool'], { defaultValue: 'none' }),
  ],
  ane: REPORTED(
    'compiles in maderix/ANE tests, but the hardware ignores attn_mask; emit matmul + mask + softmax instead',
  ),
  infer(context) {
    const rank = requireRank(context, 'query', 3);
    const query = context.shape('query');
    const key = context.shape('key');
    const value = context.shape('value');
    const dtype = requireSameDtype(context, 'query', 'key');
    requireSameDtype(context, 'query', 'value');
    if (key.length !== rank || value.length !== rank) {
      context.fail(
        'shape',
        "'query', 'key' and 'value' must have the same rank",
        `rank ${rank}`,
        `${formatShape(key)}, ${formatShape(value)}`,
      );
    }
    const batch = query.slice(0, -2);
    const sameBatch = (shape: readonly number[]) => shape.slice(0, -2).every((dim, i) => dim === batch[i]);
    if (!sameBatch(key) || !sameBatch(value)) {
      context.fail(
        'shape',
        "'query', 'key' and 'value' must share their batch dimensions",
        formatShape(batch),
        `${formatShape(key)}, ${formatShape(value)}`,
      );
    }
    const embedding = query[rank - 1]!;
    if (key[rank - 1] !== embedding)
      context.fail(
        'shape',
        "'key' must have the embedding size of 'query'",
        String(embedding),
        formatShape(key),
      );
    if (value[rank - 2] !== key[rank - 2]) {
      context.fail(
        'shape',
        "'value' must have the sequence length of 'key'",
        String(key[rank - 2]),
        formatShape(value),
      );
    }
    const mask = context.optional('attn_mask');
    if (mask !== undefined) {
      const scores = [...batch, query[rank - 2]!, key[rank - 2]!];
      const broadcast = broadcastShapes(shapeOf(mask.type), scores);
      if (
        broadcast === undefined ||
        broadcast.length !== scores.length ||
        broadcast.some((dim, i) => dim !== scores[i])
      ) {
        context.fail(
          'shape',
          "'attn_mask' must broadcast to the score shape",
          formatShape(scores),
          formatShape(shapeOf(mask.type)),
        );
      }
    }
    return [tensorType(dtype, [...batch, query[rank - 2]!, value[rank - 1]!])];
  },
};

const identityOp: OpSchema = {
  name: 'identity',
  params: [param('x', MOVABLE)],
  ane: REPORTED('maderix/ANE PR #6 used identity(x=...) as the last op of an fp16-I/O program'),
  infer: (context) => sameAs(context, 'x'),
};

/** reference/mil-hardware-peers.md §2.5 (mil-hwx-compiler), ane-quirks `op.unsupported`. */
const MIN_MAX = REPORTED(
  'mil-hwx-compiler lowers max/min from textual MIL for H13/H14; peers build logical_* from min/max (ane-quirks op.unsupported)',
);
/** reference/ane-quirks.md `dtype.bool`. */
const COMPARISON = REPORTED(
  'ANEForge: a bool result exists only as a compute intermediate consumed by select, never as I/O (ane-quirks dtype.bool)',
);

const epsilonParam = (defaultValue: string) => constantParam('epsilon', FLOAT, defaultValue);

const SCHEMAS: readonly OpSchema[] = [
  constOp,
  castOp,
  convOp,
  matmulOp,
  linearOp,
  elementwiseBinary('add', PROVEN('NumPy broadcasting: scalars, [1,C,1,1] gains, [1,1,S,S] masks')),
  elementwiseBinary('sub', PROVEN('NumPy broadcasting, including an fp16 scalar x')),
  elementwiseBinary('mul', PROVEN('NumPy broadcasting: scalars, [1,C,1,1] gains, [1,1,S,HD] RoPE tables')),
  elementwiseBinary('real_div', REPORTED('verified by maderix/ANE PR #40 (E5/Core ML route)')),
  elementwiseBinary('pow', PROVEN('y = fp16 scalar -0.5 is how RMSNorm takes rsqrt')),
  elementwiseBinary('maximum', MIN_MAX),
  elementwiseBinary('minimum', MIN_MAX),
  elementwiseBinary('equal', COMPARISON, 'bool'),
  elementwiseBinary('not_equal', COMPARISON, 'bool'),
  elementwiseBinary('less', COMPARISON, 'bool'),
  elementwiseBinary('less_equal', COMPARISON, 'bool'),
  elementwiseBinary('greater', COMPARISON, 'bool'),
  elementwiseBinary('greater_equal', COMPARISON, 'bool'),
  elementwiseUnary('exp', UNVERIFIED()),
  elementwiseUnary(
    'log',
    UNVERIFIED('the ANE text path requires an explicit epsilon (ane-quirks emit.explicit-params)'),
    [epsilonParam('1e-45')],
  ),
  elementwiseUnary('sqrt', UNVERIFIED()),
  elementwiseUnary('rsqrt', UNVERIFIED('the default epsilon 1e-12 is 0 in fp16'), [epsilonParam('1e-12')]),
  elementwiseUnary('inverse', UNVERIFIED(), [epsilonParam('1e-4')]),
  elementwiseUnary('tanh', UNVERIFIED()),
  elementwiseUnary('sigmoid', PROVEN('SwiGLU gate: SiLU is mul(h, sigmoid(h))')),
  elementwiseUnary('silu', UNVERIFIED('maderix/ANE spells SiLU as mul(h, sigmoid(h))')),
  elementwiseUnary('relu', REPORTED('verified by maderix/ANE PR #40 (E5/Core ML route)')),
  geluOp,
  softmaxOp,
  reduction('reduce_sum', PROVEN('axes [1] (channels) or [-1], keep_dims true')),
  reduction('reduce_mean', UNVERIFIED('peers emit LayerNorm/RMSNorm with reduce_mean')),
  reduction('reduce_max', UNVERIFIED()),
  reshapeOp,
  transposeOp,
  sliceBySizeOp,
  sliceByIndexOp,
  concatOp,
  splitOp,
  layerNormOp,
  selectOp,
  bandPartOp,
  quantizeOp,
  dequantizeOp,
  constexprAffineDequantizeOp,
  scaledDotProductAttentionOp,
  identityOp,
];

const SCHEMAS_BY_NAME: ReadonlyMap<string, OpSchema> = new Map(
  SCHEMAS.map((schema) => [schema.name, schema]),
);

/** Every op with a schema, by name. */
export const OP_SCHEMAS: ReadonlyMap<string, OpSchema> = SCHEMAS_BY_NAME;

/** The schema of `op`; throws `MilUnknownOpError` for an op without one. */
export function getOpSchema(op: string): OpSchema {
  const schema = SCHEMAS_BY_NAME.get(op);
  if (schema === undefined) {
    throw new MilUnknownOpError(`unknown op '${op}'`, {
      code: 'unknown-op',
      op,
      expected: 'an op with a schema (see OP_SCHEMAS)',
      found: op,
    });
  }
  return schema;
}

/** iOS opset number of an opset tag (`ios18` -> 18), or undefined for another spelling. */
export function opsetVersionOf(opset: string): number | undefined {
  const match = /^ios(\d+)$/.exec(opset);
  return match === null ? undefined : Number(match[1]);
}

/**
 * Result types of `op` applied to `inputs`, without a program around it (for the graph IR and tests).
 * Returns undefined when a shape depends on constant data that is not literal (a blob). Throws
 * `MilValidationError` when the operands do not fit the op.
 */
export function inferOutputTypes(
  op: string,
  inputs: Readonly<Record<string, OperandInput>> | ReadonlyMap<string, OperandInput>,
  options: { opset?: string; declared?: readonly ValueType[] } = {},
): readonly TensorType[] | undefined {
  const schema = getOpSchema(op);
  const inputMap = inputs instanceof Map ? inputs : new Map(Object.entries(inputs));
  const context = new InferenceContext(
    op,
    inputMap,
    options.declared ?? [],
    options.opset === undefined ? undefined : opsetVersionOf(options.opset),
    (failure) => {
      throw new MilValidationError(failure.reason, { ...failure, op });
    },
  );
  try {
    return schema.infer(context);
  } catch (error) {
    if (error instanceof UnknownAtCompileTime) return undefined;
    throw error;
  }
}
