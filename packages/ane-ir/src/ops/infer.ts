/**
 * Shape and dtype inference for graph nodes. Ops with a MIL counterpart ask that op's schema in
 * ane-ir/mil (one place per shape rule); the rest (gather, sources) are inferred here. Failures
 * become `ShapeError`s that name the op, the node and the operand shapes.
 */
import { type DType, isFloatDType } from '../graph/dtype';
import { ShapeError } from '../graph/errors';
import { type Op, opLabel, type Tensor } from '../graph/tensor';
import { MilValidationError } from '../mil/errors';
import { inferOutputTypes, type Operand, type OperandInput } from '../mil/schemas';
import { type MilDtype, scalarType, tensorType } from '../mil/types';
import { BINARY_MIL, COMPARE_MIL, UNARY_MIL } from './mil-names';

/** What inference needs of an input: its shape and dtype (a `Tensor`, or a node not built yet). */
type Typed = Pick<Tensor, 'shape' | 'dtype'>;

function runtime(operand: Typed): Operand {
  return {
    type: operand.shape.length === 0 ? scalarType(operand.dtype) : tensorType(operand.dtype, operand.shape),
    constant: false,
  };
}

function ints(values: readonly number[]): Operand {
  return { type: tensorType('int32', [values.length]), constant: true, data: values };
}

function scalar(dtype: MilDtype, value: number | boolean | string): Operand {
  return { type: scalarType(dtype), constant: true, data: [value] };
}

/** The MIL op and operands that compute the same shape as `op`. */
function milEquivalent(op: Op, inputs: readonly Typed[]): [string, Record<string, OperandInput>] {
  const at = (i: number) => runtime(inputs[i]!);
  switch (op.kind) {
    case 'unary':
      if (op.fn === 'log') {
        return [
          'log',
          { x: at(0), epsilon: scalar(inputs[0]!.dtype === 'fp32' ? 'fp32' : 'fp16', op.epsilon) },
        ];
      }
      return [UNARY_MIL[op.fn]!, { x: at(0) }];
    case 'binary':
      return [BINARY_MIL[op.fn]!, { x: at(0), y: at(1) }];
    case 'compare':
      return [COMPARE_MIL[op.fn]!, { x: at(0), y: at(1) }];
    case 'select':
      return ['select', { cond: at(0), a: at(1), b: at(2) }];
    case 'reduce':
      return [`reduce_${op.fn}`, { x: at(0), axes: ints(op.axes), keep_dims: scalar('bool', op.keepDims) }];
    case 'reshape':
      return ['reshape', { x: at(0), shape: ints(op.shape) }];
    case 'transpose':
      return ['transpose', { x: at(0), perm: ints(op.perm) }];
    case 'slice':
      return ['slice_by_size', { x: at(0), begin: ints(op.begin), size: ints(op.size) }];
    case 'concat':
      return [
        'concat',
        {
          values: inputs.map(runtime),
          axis: scalar('int32', op.axis),
          interleave: scalar('bool', false),
        },
      ];
    case 'matmul':
      return [
        'matmul',
        {
          x: at(0),
          y: at(1),
          transpose_x: scalar('bool', op.transposeX),
          transpose_y: scalar('bool', op.transposeY),
        },
      ];
    case 'conv':
      return [
        'conv',
        {
          x: at(0),
          weight: at(1),
          strides: ints(op.strides),
          pad_type: scalar('string', 'custom'),
          pad: ints(op.pad),
          dilations: ints(op.dilations),
          groups: scalar('int32', op.groups),
        },
      ];
    case 'softmax':
      return ['softmax', { x: at(0), axis: scalar('int32', op.axis) }];
    case 'cast':
      if (op.scale !== undefined && op.dtype === 'int8') {
        return [
          'quantize',
          { input: at(0), scale: scalar('fp16', op.scale), output_dtype: scalar('string', 'int8') },
        ];
      }
      if (op.scale !== undefined) {
        return ['dequantize', { input: at(0), scale: scalar(op.dtype as MilDtype, op.scale) }];
      }
      return ['cast', { x: at(0), dtype: scalar('string', op.dtype) }];
    default:
      throw new Error(`no MIL equivalent for ${op.kind}`);
  }
}

const INPUT_COUNT: Partial<Record<Op['kind'], number>> = {
  unary: 1,
  binary: 2,
  compare: 2,
  select: 3,
  reduce: 1,
  reshape: 1,
  transpose: 1,
  slice: 1,
  matmul: 2,
  conv: 2,
  softmax: 1,
  cast: 1,
  gather: 2,
};

/** Shape and dtype of `op` applied to `inputs`; throws `ShapeError`. */
export function inferNode(
  op: Op,
  inputs: readonly Typed[],
  name: string,
): { shape: readonly number[]; dtype: DType } {
  const label = opLabel(op);
  const shapes = inputs.map((input) => input.shape);
  const fail = (reason: string): never => {
    throw new ShapeError(label, name, shapes, reason);
  };
  const expected = INPUT_COUNT[op.kind];
  if (expected !== undefined && inputs.length !== expected) {
    fail(`takes ${expected} operand${expected === 1 ? '' : 's'}, got ${inputs.length}`);
  }
  switch (op.kind) {
    case 'input':
    case 'param':
    case 'constant':
      return fail('sources are created with Graph.input, Graph.param or Graph.constant');
    case 'concat':
      if (inputs.length === 0) fail('takes at least one operand');
      break;
    case 'reduce':
      if (op.axes.length === 0) fail('reduces no axis (pass the axes to reduce)');
      break;
    case 'cast':
      if (op.scale !== undefined && !(op.scale > 0 && Number.isFinite(op.scale))) {
        fail(`scale must be positive, got ${op.scale}`);
      }
      if (op.scale !== undefined && op.dtype !== 'int8' && inputs[0]!.dtype !== 'int8') {
        fail(
          `a scaled cast converts fp16 to int8 (quantize) or int8 to fp16 (dequantize), not ${inputs[0]!.dtype} to ${op.dtype}`,
        );
      }
      if (
        op.scale === undefined &&
        (op.dtype === 'int8' || inputs[0]!.dtype === 'int8') &&
        op.dtype !== inputs[0]!.dtype
      ) {
        fail('casts to or from int8 need a scale (quantize / dequantize)');
      }
      break;
    case 'gather':
      return inferGather(op.axis, inputs, fail);
    case 'unary':
      if (op.fn === 'log') {
        if (!isFloatDType(inputs[0]!.dtype)) fail(`log takes fp16 or fp32, found ${inputs[0]!.dtype}`);
        if (!(op.epsilon >= 0 && Number.isFinite(op.epsilon)))
          fail(`epsilon must be a finite number >= 0, got ${op.epsilon}`);
      }
      break;
    case 'compare':
      if (inputs.some((input) => input.dtype === 'bool')) {
        fail(
          `compares numbers, found ${inputs.map((i) => i.dtype).join(' and ')} (combine bool conditions with select)`,
        );
      }
      break;
    case 'select':
      if (inputs[0]!.dtype !== 'bool') {
        fail(
          `the condition (first operand) must be bool, found ${inputs[0]!.dtype} (build it with greater, less or equal)`,
        );
      }
      if (inputs[1]!.dtype !== inputs[2]!.dtype) {
        fail(`a and b must have one dtype, found ${inputs[1]!.dtype} and ${inputs[2]!.dtype}`);
      }
      break;
    default:
      break;
  }
  const [milOp, operands] = milEquivalent(op, inputs);
  let types: ReturnType<typeof inferOutputTypes>;
  try {
    types = inferOutputTypes(milOp, operands, { opset: 'ios18' });
  } catch (error) {
    if (!(error instanceof MilValidationError)) throw error;
    const detail =
      error.expected !== undefined || error.found !== undefined
        ? `${error.reason} (expected ${error.expected ?? '?'}, found ${error.found ?? '?'})`
        : error.reason;
    return fail(detail.replace(/'x' and 'y'/g, 'the operands'));
  }
  const type = types?.[0];
  if (type === undefined) return fail('the shape could not be inferred');
  return { shape: type.shape, dtype: type.dtype as DType };
}

function inferGather(
  axis: number,
  inputs: readonly Typed[],
  fail: (reason: string) => never,
): { shape: readonly number[]; dtype: DType } {
  const [table, indices] = inputs as [Typed, Typed];
  if (indices.dtype !== 'int32') fail(`indices must be int32, found ${indices.dtype}`);
  if (axis < 0 || axis >= table.shape.length)
    fail(`axis ${axis} is out of range for rank ${table.shape.length}`);
  return {
    shape: [...table.shape.slice(0, axis), ...indices.shape, ...table.shape.slice(axis + 1)],
    dtype: table.dtype,
  };
}
