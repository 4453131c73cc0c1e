import { describe, expect, it } from 'vitest';
import { decodeFp16 } from '../mil/fp16';
import {
  add,
  cast,
  concat,
  conv2d,
  gather,
  matmul,
  reduceSum,
  reshape,
  slice,
  softmax,
  transpose,
} from '../ops/primitives';
import { IrError, ShapeError } from './errors';
import { Graph } from './graph';
import { opLabel } from './tensor';

function shapeError(build: () => unknown): ShapeError {
  try {
    build();
  } catch (error) {
    if (error instanceof ShapeError) return error;
    throw error;
  }
  throw new Error('expected a ShapeError');
}

describe('the graph builder', () => {
  it('infers shapes and dtypes as ops are created', () => {
    const g = new Graph();
    const x = g.input('x', [64, 32]);
    const w = g.param('w', [96, 64]);
    const y = matmul(w, x);
    expect(y.shape).toEqual([96, 32]);
    expect(y.dtype).toBe('fp16');
    expect(reduceSum(y, 0, { keepDims: true }).shape).toEqual([1, 32]);
    expect(reduceSum(y, [-1]).shape).toEqual([96]);
    expect(transpose(y).shape).toEqual([32, 96]);
    expect(reshape(y, [4, -1, 32]).shape).toEqual([4, 24, 32]);
    expect(slice(y, [0, 16], [-1, 8]).shape).toEqual([96, 8]);
    expect(concat([y, y], 0).shape).toEqual([192, 32]);
    expect(softmax(y, 0).shape).toEqual([96, 32]);
    expect(cast(y, 'fp32').dtype).toBe('fp32');
    expect(add(y, 1).shape).toEqual([96, 32]);
    const image = g.input('image', [1, 8, 16, 16]);
    const kernel = g.param('kernel', [4, 8, 3, 3], { trainable: false });
    expect(conv2d(image, kernel, { pad: [1, 1, 1, 1] }).shape).toEqual([1, 4, 16, 16]);
    const tokens = g.input('tokens', [32], { dtype: 'int32' });
    expect(gather(g.param('table', [100, 64]), tokens).shape).toEqual([32, 64]);
  });

  it('names nodes by scope, uniquely, and tags composite calls', () => {
    const g = new Graph();
    const x = g.input('x', [8, 4]);
    const [a, b] = g.scope('layers.0', () => [add(x, 1, { name: 'h' }), add(x, 2, { name: 'h' })]);
    expect(a!.name).toBe('layers.0.h');
    expect(b!.name).toBe('layers.0.h_1');
    expect(a!.localName).toBe('h');
    const inner = g.composite('norm', 'attn_norm', () => add(x, 3, { name: 'out' }));
    expect(inner.name).toBe('attn_norm.out');
    expect(inner.composites).toEqual([{ kind: 'norm', id: 0, name: 'attn_norm', result: inner }]);
    // A call's operands and attributes are recorded when given.
    const scaled = g.composite('scale', 'scale', () => add(x, 4), { x, by: 4 });
    expect(scaled.composites[0]).toMatchObject({ kind: 'scale', args: { x, by: 4 }, result: scaled });
    expect(inner.label).toBe('attn_norm');
    expect(g.node('layers.0.h')).toBe(a);
  });

  it('stores constant data in its dtype (fp16 as exact bit patterns)', () => {
    const g = new Graph();
    const bits = Uint16Array.of(0x3c00, 0xfbff);
    const c = g.constant(bits, [2]);
    expect(c.op.kind === 'constant' && c.op.data.values).toEqual(bits);
    const rounded = g.constant([0.176777], [1]);
    expect(rounded.op.kind === 'constant' && decodeFp16(rounded.op.data.values as Uint16Array)[0]).toBe(
      0.1767578125,
    );
    const q = g.constant([-128, 127], [2], { dtype: 'int8' });
    expect(q.op.kind === 'constant' && q.op.data.values).toEqual(Int8Array.of(-128, 127));
    expect(() => g.constant([200], [1], { dtype: 'int8' })).toThrow(
      "constant 'const': value 200 at index 0 is not an integer in [-128, 127]",
    );
    expect(() => g.param('w', [2, 2], { data: [1, 2, 3] })).toThrow(
      "param 'w': expected 4 values for its shape, got 3",
    );
  });

  it('refuses misuse with an IrError that says what to do', () => {
    const g = new Graph();
    g.input('x', [4]);
    expect(() => g.input('x', [4])).toThrow(new IrError("input 'x': the name is already used"));
    expect(() => g.input('y', [0, 4])).toThrow('shape must be a list of positive integers');
    const other = new Graph().input('z', [4]);
    expect(() => add(g.node('x'), other)).toThrow("tensor 'z' belongs to another graph");
    expect(() => g.output('x', other)).toThrow('belongs to another graph');
  });
});

describe('ShapeError names the op, the node and the operand shapes', () => {
  it('for a matmul whose inner dimensions differ', () => {
    const g = new Graph();
    const q = g.input('q', [4, 64, 32]);
    const k = g.input('k', [4, 16, 64]);
    const error = shapeError(() => matmul(q, k, { name: 'scores' }));
    expect(error.op).toBe('matmul');
    expect(error.node).toBe('scores');
    expect(error.shapes).toEqual([
      [4, 64, 32],
      [4, 16, 64],
    ]);
    expect(error.message).toBe(
      "matmul 'scores': inner dimensions of the operands differ (after transposes) (expected y[-2] = 32, found x [4, 64, 32] @ y [4, 16, 64]) (operand shapes: [4, 64, 32], [4, 16, 64])",
    );
  });

  it('for operands that do not broadcast, or mix dtypes', () => {
    const g = new Graph();
    const x = g.input('x', [64, 32]);
    const error = shapeError(() => add(x, g.input('g', [16])));
    expect(error.message).toContain("add 'add': ");
    expect(error.message).toContain('do not broadcast');
    expect(error.message).toContain('(operand shapes: [64, 32], [16])');
    const mixed = shapeError(() => add(x, g.input('h', [64, 32], { dtype: 'fp32' })));
    expect(mixed.message).toContain('fp16');
    expect(mixed.message).toContain('fp32');
  });

  it('for bad reshapes, axes, slices, casts and gathers', () => {
    const g = new Graph();
    const x = g.input('x', [64, 32]);
    expect(shapeError(() => reshape(x, [3, -1])).message).toContain(
      'cannot reshape 2048 elements to [3, -1]',
    );
    expect(shapeError(() => reshape(x, [100, 2])).message).toContain('element counts differ');
    expect(shapeError(() => softmax(x, 2)).message).toContain('axis 2 is out of range for rank 2');
    expect(shapeError(() => slice(x, [0, 30], [64, 4])).message).toContain(
      'slice runs past the end of axis 1',
    );
    expect(shapeError(() => cast(x, 'int8')).message).toContain('casts to or from int8 need a scale');
    expect(shapeError(() => gather(x, g.input('i', [4]))).message).toContain('indices must be int32');
    expect(shapeError(() => concat([x, g.input('y', [64, 16])], 0)).message).toContain(
      "'values' item 1 must match item 0",
    );
    expect(opLabel({ kind: 'cast', dtype: 'int8', scale: 0.5 })).toBe('quantize');
  });
});
