import { describe, expect, it } from 'vitest';
import type { ScalarData } from './ast';
import { MilUnknownOpError, MilValidationError } from './errors';
import {
  broadcastShapes,
  getOpSchema,
  inferOutputTypes,
  OP_SCHEMAS,
  type Operand,
  type OperandInput,
  sliceLength,
  UNKNOWN_DIM,
} from './schemas';
import { type MilDtype, scalarType, tensorType } from './types';

/** A runtime tensor operand. */
function runtime(shape: number[], dtype: MilDtype = 'fp16'): Operand {
  return { type: tensorType(dtype, shape), constant: false };
}

/** A constant 1-D int32 operand holding `values`. */
function ints(values: number[]): Operand {
  return { type: tensorType('int32', [values.length]), constant: true, data: values };
}

/** A constant scalar operand. */
function scalar(
  value: ScalarData,
  dtype: MilDtype = typeof value === 'boolean' ? 'bool' : typeof value === 'string' ? 'string' : 'int32',
): Operand {
  return { type: scalarType(dtype), constant: true, data: [value] };
}

function shapes(op: string, inputs: Record<string, OperandInput>, opset = 'ios18'): (number[] | string)[] {
  const types = inferOutputTypes(op, inputs, { opset });
  if (types === undefined) throw new Error('inference needed data that was not literal');
  return types.map((type) => [...type.shape]);
}

function failure(op: string, inputs: Record<string, OperandInput>, opset = 'ios18'): MilValidationError {
  try {
    inferOutputTypes(op, inputs, { opset });
  } catch (error) {
    if (error instanceof MilValidationError) return error;
    throw error;
  }
  throw new Error(`expected ${op} to fail`);
}

describe('op schemas', () => {
  it('covers the required ops, each with its parameter names', () => {
    const names = [...OP_SCHEMAS.keys()];
    for (const op of [
      'const',
      'cast',
      'conv',
      'matmul',
      'linear',
      'add',
      'sub',
      'mul',
      'real_div',
      'pow',
      'maximum',
      'minimum',
      'exp',
      'log',
      'sqrt',
      'rsqrt',
      'tanh',
      'sigmoid',
      'silu',
      'gelu',
      'relu',
      'softmax',
      'reduce_sum',
      'reduce_mean',
      'reduce_max',
      'reshape',
      'transpose',
      'slice_by_size',
      'slice_by_index',
      'concat',
      'split',
      'layer_norm',
      'select',
      'band_part',
      'quantize',
      'dequantize',
      'constexpr_affine_dequantize',
      'scaled_dot_product_attention',
      'identity',
    ]) {
      expect(names).toContain(op);
    }
    const conv = getOpSchema('conv');
    expect(conv.params.map((p) => [p.name, p.required, p.constant])).toEqual([
      ['x', true, false],
      ['weight', true, false],
      ['bias', false, false],
      ['strides', false, true],
      ['pad_type', false, true],
      ['pad', false, true],
      ['dilations', false, true],
      ['groups', false, true],
    ]);
    expect(getOpSchema('concat').params[0]).toMatchObject({ name: 'values', tuple: true, required: true });
    expect(getOpSchema('constexpr_affine_dequantize').params.every((p) => p.constant && p.required)).toBe(
      true,
    );
    expect(getOpSchema('conv').ane.evidence).toBe('hardware-proven');
    expect(getOpSchema('silu').ane.evidence).toBe('unverified');
  });

  it('throws MilUnknownOpError for an op without a schema', () => {
    expect(() => getOpSchema('conv2d')).toThrow(MilUnknownOpError);
    expect(() => getOpSchema('conv2d')).toThrow("unknown op 'conv2d'");
  });
});

describe('shape inference', () => {
  describe('conv', () => {
    const x = runtime([1, 3, 32, 32]);
    const w3 = { type: tensorType('fp16', [8, 3, 3, 3]), constant: true };

    it('valid padding with strides: floor((32 - 3) / 2) + 1 = 15', () => {
      expect(shapes('conv', { x, weight: w3, strides: ints([2, 2]), pad_type: scalar('valid') })).toEqual([
        [1, 8, 15, 15],
      ]);
    });

    it('custom pads [top, bottom, left, right] = [1, 1, 2, 2]: H 32+2-3+1 = 32, W 32+4-3+1 = 34', () => {
      expect(shapes('conv', { x, weight: w3, pad_type: scalar('custom'), pad: ints([1, 1, 2, 2]) })).toEqual([
        [1, 8, 32, 34],
      ]);
    });

    it('dilation 2 makes a 3-tap kernel span 5: 32 - 5 + 1 = 28; with stride 3: floor(27 / 3) + 1 = 10', () => {
      expect(shapes('conv', { x, weight: w3, dilations: ints([2, 2]) })).toEqual([[1, 8, 28, 28]]);
      expect(shapes('conv', { x, weight: w3, dilations: ints([2, 1]), strides: ints([3, 1]) })).toEqual([
        [1, 8, 10, 30],
      ]);
    });

    it('same padding: ceil(31 / 2) = 16 whatever the kernel', () => {
      expect(
        shapes('conv', {
          x: runtime([1, 3, 31, 31]),
          weight: w3,
          strides: ints([2, 2]),
          pad_type: scalar('same'),
        }),
      ).toEqual([[1, 8, 16, 16]]);
    });

    it('groups: input channels = weight[1] * groups, output channels = weight[0]', () => {
      const grouped = { x: runtime([1, 4, 1, 10]), weight: runtime([8, 2, 1, 3]), groups: scalar(2) };
      expect(shapes('conv', grouped)).toEqual([[1, 8, 1, 8]]);
      const depthwise = { x: runtime([1, 4, 1, 10]), weight: runtime([4, 1, 1, 1]), groups: scalar(4) };
      expect(shapes('conv', depthwise)).toEqual([[1, 4, 1, 10]]);
      expect(failure('conv', { ...grouped, groups: scalar(4) }).code).toBe('shape');
      expect(
        failure('conv', { x: runtime([1, 6, 1, 10]), weight: runtime([8, 2, 1, 3]), groups: scalar(3) })
          .reason,
      ).toMatch(/output channels must divide by groups/);
    });

    it('1-D and 3-D convolutions', () => {
      expect(shapes('conv', { x: runtime([2, 4, 10]), weight: runtime([6, 4, 3]) })).toEqual([[2, 6, 8]]);
      expect(shapes('conv', { x: runtime([1, 2, 4, 5, 6]), weight: runtime([3, 2, 2, 2, 2]) })).toEqual([
        [1, 3, 3, 4, 5],
      ]);
    });

    it('rejects a kernel larger than the input, a bias of the wrong size and a bad pad_type', () => {
      expect(failure('conv', { x: runtime([1, 3, 2, 2]), weight: w3 }).reason).toMatch(
        /smaller than the dilated kernel/,
      );
      expect(failure('conv', { x, weight: w3, bias: runtime([7]) }).reason).toMatch(
        /'bias' must be \[C_out\]/,
      );
      expect(failure('conv', { x, weight: w3, pad_type: scalar('full') })).toMatchObject({
        code: 'invalid-value',
        expected: 'valid | same | same_lower | custom',
        found: 'full',
      });
      expect(failure('conv', { x, weight: w3, strides: ints([1, 1, 1]) }).code).toBe('shape');
    });
  });

  describe('matmul', () => {
    it('multiplies the last two axes: [2,3,4] @ [4,5] = [2,3,5]', () => {
      expect(shapes('matmul', { x: runtime([2, 3, 4]), y: runtime([4, 5]) })).toEqual([[2, 3, 5]]);
    });

    it('applies transpose_x and transpose_y', () => {
      expect(shapes('matmul', { x: runtime([4, 3]), y: runtime([4, 5]), transpose_x: scalar(true) })).toEqual(
        [[3, 5]],
      );
      // Case D: q [1,4,64,32] @ k^T [1,4,32,64] = scores [1,4,64,64]
      expect(
        shapes('matmul', {
          x: runtime([1, 4, 64, 32]),
          y: runtime([1, 4, 64, 32]),
          transpose_x: scalar(false),
          transpose_y: scalar(true),
        }),
      ).toEqual([[1, 4, 64, 64]]);
    });

    it('broadcasts batch axes: [2,1,3,4] @ [5,4,6] = [2,5,3,6]', () => {
      expect(shapes('matmul', { x: runtime([2, 1, 3, 4]), y: runtime([5, 4, 6]) })).toEqual([[2, 5, 3, 6]]);
      expect(failure('matmul', { x: runtime([2, 3, 4]), y: runtime([3, 4, 6]) }).reason).toMatch(
        /batch dimensions/,
      );
    });

    it('promotes vectors and drops the promoted axis: [4] @ [4,5] = [5], [2,3,4] @ [4] = [2,3]', () => {
      expect(shapes('matmul', { x: runtime([4]), y: runtime([4, 5]) })).toEqual([[5]]);
      expect(shapes('matmul', { x: runtime([2, 3, 4]), y: runtime([4]) })).toEqual([[2, 3]]);
      expect(shapes('matmul', { x: runtime([4]), y: runtime([4]) })).toEqual([[]]);
    });

    it('rejects mismatched inner axes and mixed dtypes before iOS17', () => {
      expect(failure('matmul', { x: runtime([3, 4]), y: runtime([5, 6]) })).toMatchObject({ code: 'shape' });
      const mixed = { x: runtime([3, 4]), y: { type: tensorType('fp32', [4, 2]), constant: true } };
      expect(failure('matmul', mixed, 'ios16').code).toBe('dtype');
      expect(inferOutputTypes('matmul', mixed, { opset: 'ios17' })).toEqual([tensorType('fp16', [3, 2])]);
    });
  });

  it('linear: x [2,3,8] with weight [5,8] gives [2,3,5]', () => {
    const weight = { type: tensorType('fp16', [5, 8]), constant: true };
    expect(shapes('linear', { x: runtime([2, 3, 8]), weight })).toEqual([[2, 3, 5]]);
    expect(failure('linear', { x: runtime([2, 3, 7]), weight }).code).toBe('shape');
  });

  it('binary ops broadcast like NumPy', () => {
    expect(broadcastShapes([1, 128, 1, 64], [1, 1, 1, 64])).toEqual([1, 128, 1, 64]);
    expect(broadcastShapes([1, 4, 64, 64], [1, 1, 64, 64])).toEqual([1, 4, 64, 64]);
    expect(broadcastShapes([3, 1], [4])).toEqual([3, 4]);
    expect(broadcastShapes([], [2, 3])).toEqual([2, 3]);
    expect(broadcastShapes([2, 3], [3, 2])).toBeUndefined();
    expect(shapes('add', { x: runtime([1, 128, 1, 64]), y: runtime([1, 128, 1, 1]) })).toEqual([
      [1, 128, 1, 64],
    ]);
    expect(
      shapes('pow', {
        x: runtime([1, 1, 1, 64]),
        y: { type: scalarType('fp16'), constant: true, data: [-0.5] },
      }),
    ).toEqual([[1, 1, 1, 64]]);
    expect(inferOutputTypes('less', { x: runtime([2, 1]), y: runtime([3]) })).toEqual([
      tensorType('bool', [2, 3]),
    ]);
    expect(failure('mul', { x: runtime([2, 3]), y: runtime([3, 2]) }).code).toBe('shape');
    expect(failure('sub', { x: runtime([2]), y: runtime([2], 'fp32') }).code).toBe('dtype');
  });

  describe('reductions', () => {
    const x = runtime([1, 128, 1, 64]);
    it('keep_dims keeps reduced axes as 1, otherwise they go', () => {
      expect(shapes('reduce_sum', { x, axes: ints([1]), keep_dims: scalar(true) })).toEqual([[1, 1, 1, 64]]);
      expect(shapes('reduce_sum', { x, axes: ints([1]), keep_dims: scalar(false) })).toEqual([[1, 1, 64]]);
      expect(shapes('reduce_mean', { x, axes: ints([-1, 0]) })).toEqual([[128, 1]]);
      expect(shapes('reduce_max', { x })).toEqual([[]]);
      expect(shapes('reduce_max', { x, keep_dims: scalar(true) })).toEqual([[1, 1, 1, 1]]);
    });
    it('rejects axes out of range or repeated', () => {
      expect(failure('reduce_sum', { x, axes: ints([4]) })).toMatchObject({
        code: 'invalid-value',
        expected: '-4..3',
        found: '4',
      });
      expect(failure('reduce_sum', { x, axes: ints([1, -3]) }).reason).toMatch(/repeats an axis/);
    });
  });

  describe('slicing', () => {
    it('slice_by_size with -1 running to the end (case B unpacking)', () => {
      const x = runtime([1, 64, 1, 128]);
      expect(shapes('slice_by_size', { x, begin: ints([0, 0, 0, 32]), size: ints([1, 64, 1, 96]) })).toEqual([
        [1, 64, 1, 96],
      ]);
      expect(
        shapes('slice_by_size', { x, begin: ints([0, 16, 0, 32]), size: ints([-1, 8, -1, -1]) }),
      ).toEqual([[1, 8, 1, 96]]);
      expect(
        failure('slice_by_size', { x, begin: ints([0, 0, 0, 64]), size: ints([1, 64, 1, 96]) }).reason,
      ).toMatch(/runs past the end of axis 3/);
    });

    it('slice_by_size with a runtime begin still knows the size', () => {
      expect(
        shapes('slice_by_size', { x: runtime([4, 10]), begin: runtime([2], 'int32'), size: ints([2, -1]) }),
      ).toEqual([[2, UNKNOWN_DIM]]);
    });

    it('slice_by_index: begin/end/stride per axis, Python style', () => {
      // axis 0: 1..3 -> 2; axis 1: 2..9 step 2 -> 2,4,6,8 -> 4
      expect(
        shapes('slice_by_index', {
          x: runtime([4, 10]),
          begin: ints([1, 2]),
          end: ints([3, -1]),
          stride: ints([1, 2]),
        }),
      ).toEqual([[2, 4]]);
      const masks = (values: boolean[]) => ({
        type: tensorType('bool', [values.length]),
        constant: true,
        data: values,
      });
      // begin_mask on axis 0 starts at 0; end_mask on axis 1 runs to 10: 2..10 -> 8
      expect(
        shapes('slice_by_index', {
          x: runtime([4, 10]),
          begin: ints([3, 2]),
          end: ints([3, 0]),
          begin_mask: masks([true, false]),
          end_mask: masks([false, true]),
        }),
      ).toEqual([[3, 8]]);
      // squeeze_mask drops a length-1 axis
      expect(
        shapes('slice_by_index', {
          x: runtime([4, 10]),
          begin: ints([2, 0]),
          end: ints([3, 10]),
          squeeze_mask: masks([true, false]),
        }),
      ).toEqual([[10]]);
      expect(
        failure('slice_by_index', {
          x: runtime([4, 10]),
          begin: ints([0, 0]),
          end: ints([2, 10]),
          squeeze_mask: masks([true, false]),
        }).reason,
      ).toMatch(/must then have length 1/);
    });

    it('sliceLength handles negative strides and clamping', () => {
      expect(sliceLength(10, 8, 2, -2)).toBe(3); // 8, 6, 4
      expect(sliceLength(10, undefined, undefined, -1)).toBe(10);
      expect(sliceLength(10, 9, undefined, -2)).toBe(5); // 9, 7, 5, 3, 1
      expect(sliceLength(10, -3, undefined, 1)).toBe(3);
      expect(sliceLength(10, 5, 100, 1)).toBe(5);
      expect(sliceLength(10, 6, 2, 1)).toBe(0);
    });
  });

  describe('concat and split', () => {
    it('concat sums the axis (case F: 64 + 128 + 128 = 320)', () => {
      const values = [runtime([1, 64, 1, 32]), runtime([1, 128, 1, 32]), runtime([1, 128, 1, 32])];
      expect(shapes('concat', { values, axis: scalar(1), interleave: scalar(false) })).toEqual([
        [1, 320, 1, 32],
      ]);
      expect(
        shapes('concat', { values: [runtime([1, 4, 1024, 1]), runtime([1, 4, 1024, 1])], axis: scalar(-1) }),
      ).toEqual([[1, 4, 1024, 2]]);
      expect(shapes('concat', { values: [runtime([2, 3])], axis: scalar(0) })).toEqual([[2, 3]]);
    });

    it('concat rejects mismatched axes, mixed dtypes, non-identical interleave and a non-tuple', () => {
      expect(
        failure('concat', { values: [runtime([1, 4]), runtime([2, 5])], axis: scalar(1) }),
      ).toMatchObject({
        code: 'shape',
        expected: '[1, 4]',
        found: '[2, 5]',
      });
      expect(
        failure('concat', { values: [runtime([1, 4]), runtime([1, 4], 'fp32')], axis: scalar(1) }).code,
      ).toBe('dtype');
      expect(
        failure('concat', {
          values: [runtime([1, 4]), runtime([1, 5])],
          axis: scalar(1),
          interleave: scalar(true),
        }).reason,
      ).toMatch(/interleave/);
      expect(failure('concat', { values: runtime([1, 4]), axis: scalar(1) }).code).toBe('param-kind');
    });

    it('split: even parts, explicit sizes, or the declared count', () => {
      const x = runtime([1, 10, 4]);
      expect(shapes('split', { x, num_splits: scalar(2), axis: scalar(1) })).toEqual([
        [1, 5, 4],
        [1, 5, 4],
      ]);
      expect(shapes('split', { x, split_sizes: ints([3, 7]), axis: scalar(-2) })).toEqual([
        [1, 3, 4],
        [1, 7, 4],
      ]);
      const declared = [tensorType('fp16', [1, 10, 2]), tensorType('fp16', [1, 10, 2])];
      expect(inferOutputTypes('split', { x, axis: scalar(2) }, { declared })).toEqual(declared);
      expect(failure('split', { x, num_splits: scalar(3), axis: scalar(1) }).reason).toMatch(
        /does not divide into 3/,
      );
      expect(failure('split', { x, split_sizes: ints([3, 6]), axis: scalar(1) }).reason).toMatch(
        /must sum to/,
      );
    });
  });

  it('transpose permutes axes (heads: [1,4,32,64] perm [0,1,3,2] -> [1,4,64,32])', () => {
    expect(shapes('transpose', { x: runtime([1, 4, 32, 64]), perm: ints([0, 1, 3, 2]) })).toEqual([
      [1, 4, 64, 32],
    ]);
    expect(shapes('transpose', { x: runtime([2, 3, 5]), perm: ints([2, 0, 1]) })).toEqual([[5, 2, 3]]);
    expect(failure('transpose', { x: runtime([2, 3, 5]), perm: ints([0, 0, 1]) }).reason).toMatch(
      /permutation/,
    );
    expect(failure('transpose', { x: runtime([2, 3, 5]), perm: ints([1, 0]) }).code).toBe('shape');
  });

  it('reshape with -1 and 0 (copy an axis)', () => {
    expect(shapes('reshape', { x: runtime([1, 64, 1, 32]), shape: ints([1, 1, 64, -1]) })).toEqual([
      [1, 1, 64, 32],
    ]);
    expect(shapes('reshape', { x: runtime([2, 3, 4]), shape: ints([0, 12, 1]) })).toEqual([[2, 12, 1]]);
    expect(shapes('reshape', { x: runtime([2, 3, 4]), shape: ints([-1]) })).toEqual([[24]]);
    expect(failure('reshape', { x: runtime([2, 3, 4]), shape: ints([5, -1]) }).code).toBe('shape');
    expect(failure('reshape', { x: runtime([2, 3, 4]), shape: ints([2, 3, 5]) })).toMatchObject({
      code: 'shape',
      expected: '24 elements',
      found: '30',
    });
    expect(failure('reshape', { x: runtime([2, 3, 4]), shape: ints([-1, -1, 2]) }).reason).toMatch(
      /at most one -1/,
    );
    expect(failure('reshape', { x: runtime([2, 3, 4]), shape: ints([0, -1]) }).reason).toMatch(
      /only when it keeps the rank/,
    );
    // A runtime shape fixes only the rank.
    expect(shapes('reshape', { x: runtime([2, 3, 4]), shape: runtime([2], 'int32') })).toEqual([
      [UNKNOWN_DIM, UNKNOWN_DIM],
    ]);
  });

  it('cast, softmax, gelu, layer_norm, select, band_part', () => {
    expect(inferOutputTypes('cast', { x: runtime([1, 4]), dtype: scalar('fp32') })).toEqual([
      tensorType('fp32', [1, 4]),
    ]);
    expect(failure('cast', { x: runtime([1, 4]), dtype: scalar('fp64') }).code).toBe('invalid-value');
    expect(shapes('softmax', { x: runtime([1, 4, 64, 64]), axis: scalar(-1) })).toEqual([[1, 4, 64, 64]]);
    expect(failure('softmax', { x: runtime([1, 4]), axis: scalar(2) }).code).toBe('invalid-value');
    expect(failure('gelu', { x: runtime([2]), mode: scalar('FAST') }).code).toBe('invalid-value');
    const gamma = { type: tensorType('fp16', [8]), constant: true };
    expect(shapes('layer_norm', { x: runtime([2, 5, 8]), axes: ints([-1]), gamma, beta: gamma })).toEqual([
      [2, 5, 8],
    ]);
    expect(failure('layer_norm', { x: runtime([2, 5, 8]), axes: ints([1]), gamma }).code).toBe('shape');
    expect(
      inferOutputTypes('select', {
        cond: runtime([1, 1, 4, 4], 'bool'),
        a: runtime([1, 2, 4, 4]),
        b: runtime([1]),
      }),
    ).toEqual([tensorType('fp16', [1, 2, 4, 4])]);
    expect(shapes('band_part', { x: runtime([4, 4]), lower: scalar(-1), upper: scalar(0) })).toEqual([
      [4, 4],
    ]);
    expect(failure('band_part', { x: runtime([4]) }).code).toBe('shape');
  });

  it('quantize, dequantize and constexpr_affine_dequantize', () => {
    const scale = { type: scalarType('fp16'), constant: true, data: [0.125] };
    expect(
      inferOutputTypes('quantize', { input: runtime([1, 64, 16, 16]), scale, output_dtype: scalar('int8') }),
    ).toEqual([tensorType('int8', [1, 64, 16, 16])]);
    expect(inferOutputTypes('dequantize', { input: runtime([1, 8], 'int8'), scale })).toEqual([
      tensorType('fp16', [1, 8]),
    ]);
    const perChannel = { type: tensorType('fp32', [8]), constant: true };
    expect(
      inferOutputTypes('dequantize', { input: runtime([1, 8], 'uint8'), scale: perChannel, axis: scalar(1) }),
    ).toEqual([tensorType('fp32', [1, 8])]);
    expect(failure('dequantize', { input: runtime([1, 8], 'int8'), scale: perChannel }).code).toBe(
      'missing-param',
    );
    expect(
      failure('dequantize', { input: runtime([1, 8], 'int8'), scale: perChannel, axis: scalar(0) }).code,
    ).toBe('shape');
    const quantizedData = { type: tensorType('int8', [64, 64, 1, 1]), constant: true };
    expect(
      inferOutputTypes('constexpr_affine_dequantize', {
        quantized_data: quantizedData,
        scale,
        zero_point: { type: scalarType('int8'), constant: true, data: [0] },
        axis: scalar(0),
      }),
    ).toEqual([tensorType('fp16', [64, 64, 1, 1])]);
    expect(
      failure('quantize', {
        input: runtime([4]),
        scale,
        output_dtype: scalar('int8'),
        zero_point: { type: scalarType('uint8'), constant: true, data: [0] },
      }).code,
    ).toBe('dtype');
  });

  it('scaled_dot_product_attention: [B,H,L,E], [B,H,S,E], [B,H,S,EV] -> [B,H,L,EV]', () => {
    const inputs = {
      query: runtime([1, 4, 16, 32]),
      key: runtime([1, 4, 24, 32]),
      value: runtime([1, 4, 24, 8]),
    };
    expect(shapes('scaled_dot_product_attention', inputs)).toEqual([[1, 4, 16, 8]]);
    expect(shapes('scaled_dot_product_attention', { ...inputs, attn_mask: runtime([1, 1, 16, 24]) })).toEqual(
      [[1, 4, 16, 8]],
    );
    expect(
      failure('scaled_dot_product_attention', { ...inputs, attn_mask: runtime([1, 1, 16, 16]) }).code,
    ).toBe('shape');
    expect(failure('scaled_dot_product_attention', { ...inputs, key: runtime([1, 4, 24, 16]) }).code).toBe(
      'shape',
    );
  });

  it('returns undefined when a shape depends on a constant whose data is in a blob', () => {
    const blobPerm = { type: tensorType('int32', [4]), constant: true };
    expect(inferOutputTypes('transpose', { x: runtime([1, 2, 3, 4]), perm: blobPerm })).toBeUndefined();
  });
});
