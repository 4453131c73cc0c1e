import { describe, expect, it } from 'vitest';
import { causalSelfAttention, linear } from '../composites';
import { IrError } from '../graph/errors';
import { Graph } from '../graph/graph';
import { readBlobTensor } from '../mil/blob';
import { fp16BitsFromNumber } from '../mil/fp16';
import { parseProgram } from '../mil/parse';
import { checkProgramRules } from '../mil/rule-checks';
import { add, dequantize, div, matmul, mul, reduceSum, reshape, transpose } from '../ops/primitives';
import { lowerGraph } from './kernel';
import { type KernelGraph, rewriteGraph } from './rewrite';

function ops(mil: string): string[] {
  return parseProgram(mil).functions[0]!.body.map((s) => s.op);
}

describe('the lowering rewrites', () => {
  it('linear-to-conv: a linear layer with a frozen weight becomes a 1x1 conv on [1, C, 1, S]', () => {
    const g = new Graph();
    const x = g.input('x', [64, 32]);
    g.output('y', linear(x, g.param('w', [128, 64], { trainable: false })));
    const kernel = lowerGraph(g);
    expect(kernel.rewrites.get('linear-to-conv')).toBe(1);
    expect(ops(kernel.program.mil).filter((op) => op !== 'const')).toEqual(['conv']);
    expect(kernel.program.mil).toContain('tensor<fp16, [128, 64, 1, 1]> w = const()');
    expect(kernel.program.inputs[0]!.shape).toEqual([1, 64, 1, 32]);
  });

  it('runtime-linear: a trainable weight travels packed and multiplies in the proven order', () => {
    const g = new Graph();
    const x = g.input('x', [64, 32]);
    g.output('y', linear(x, g.param('w', [96, 64])));
    const kernel = lowerGraph(g);
    expect(kernel.rewrites.get('pack-weights-into-input')).toBe(2);
    expect(kernel.rewrites.get('runtime-linear')).toBe(1);
    // slice x | slice Wᵀ, x -> [1,1,S,C] by reshape + transpose, matmul, transpose back, reshape to [1,OC,1,S].
    expect(ops(kernel.program.mil).filter((op) => op !== 'const')).toEqual([
      'slice_by_size',
      'reshape',
      'transpose',
      'slice_by_size',
      'reshape',
      'matmul',
      'transpose',
      'reshape',
    ]);
  });

  it('transpose-into-matmul: attention scores use transpose_y, never a separate transpose of K', () => {
    const g = new Graph();
    const q = g.input('q', [4, 16, 8]);
    const k = g.input('k', [4, 16, 8]);
    g.output('s', matmul(q, transpose(k, [0, 2, 1])));
    const kernel = lowerGraph(g, { io: 'separate' });
    expect(kernel.rewrites.get('transpose-into-matmul')).toBe(1);
    expect(kernel.program.mil).toMatch(/matmul\(transpose_x = bF, transpose_y = bT, x = q, y = k\)/);
  });

  it('cancel-transposes and merge-reshapes remove movement that undoes itself', () => {
    const g = new Graph();
    const x = g.input('x', [4, 8, 16]);
    const back = transpose(transpose(x, [0, 2, 1]), [0, 2, 1]);
    const flat = reshape(reshape(back, [32, 16]), [4, 128]);
    g.output('y', add(flat, 1));
    const kernel = lowerGraph(g);
    expect(kernel.rewrites.get('cancel-transposes')).toBeGreaterThan(0);
    expect(kernel.rewrites.get('merge-reshapes')).toBeGreaterThan(0);
    expect(ops(kernel.program.mil).filter((op) => op !== 'const')).toEqual(['reshape', 'add']);
  });

  it('zeros-without-mul: mul(x, 0) after a reduction becomes sub(x, x)', () => {
    const g = new Graph();
    const x = g.input('x', [64, 32], { maxAbs: 1 });
    g.output('y', mul(reduceSum(x, 0, { keepDims: true }), 0));
    const kernel = lowerGraph(g);
    expect(kernel.rewrites.get('zeros-without-mul')).toBe(1);
    expect(ops(kernel.program.mil)).toContain('sub');
    expect(ops(kernel.program.mil)).not.toContain('mul');
    const ast = parseProgram(kernel.program.mil);
    expect(checkProgramRules(ast).filter((v) => v.ruleId === 'emit-mul-reduce-zero')).toEqual([]);
  });

  it('div-by-constant: division by a constant is a multiplication by its reciprocal', () => {
    const g = new Graph();
    const x = g.input('x', [64, 32]);
    g.output('y', div(x, 4));
    const kernel = lowerGraph(g);
    expect(kernel.rewrites.get('div-by-constant')).toBe(1);
    expect(kernel.program.mil).toContain('fp16(0.25)');
    expect(ops(kernel.program.mil)).not.toContain('real_div');
  });

  it('dequantize-constant: int8 weights become constexpr_affine_dequantize of an int8 blob', () => {
    const g = new Graph();
    const x = g.input('x', [1, 4, 1, 32]);
    const q = g.constant([1, -2, 3, -4, 5, -6, 7, -8], [2, 4, 1, 1], { dtype: 'int8', name: 'wq8' });
    g.output('y', matmul(reshape(dequantize(q, 0.125), [2, 4]), reshape(x, [4, 32])));
    const kernel = lowerGraph(g);
    expect(kernel.rewrites.get('dequantize-constant')).toBe(1);
    expect(kernel.program.mil).toContain(
      'constexpr_affine_dequantize()[axis = int32(0), name = string("wq8")',
    );
    const blob = kernel.program.weights.get('@model_path/weights/wq8.bin')!;
    expect(Array.from(readBlobTensor(blob, 64, { dtype: 'int8', elementCount: 8 }))).toEqual([
      1, -2, 3, -4, 5, -6, 7, -8,
    ]);
  });

  it('finite-constants: -inf in an fp16 constant (a mask) becomes -65504', () => {
    const g = new Graph();
    const x = g.input('x', [4, 32, 32]);
    const mask = g.constant(
      Array.from({ length: 32 * 32 }, (_, i) => (i % 32 > Math.floor(i / 32) ? Number.NEGATIVE_INFINITY : 0)),
      [32, 32],
      { name: 'mask' },
    );
    g.output('y', add(x, mask));
    const kernel = lowerGraph(g);
    expect(kernel.rewrites.get('finite-constants')).toBe(1);
    const bits = readBlobTensor(kernel.program.weights.get('@model_path/weights/mask.bin')!, 64, {
      dtype: 'fp16',
      elementCount: 1024,
    });
    expect(bits[1]).toBe(fp16BitsFromNumber(-65504));
    expect(bits.includes(0xfc00)).toBe(false);
  });

  it('fold-constant-movement: a transposed frozen weight is stored transposed', () => {
    const g = new Graph();
    const x = g.input('x', [2, 32]);
    const w = g.param('w', [2, 3], { trainable: false, data: [1, 2, 3, 4, 5, 6] });
    g.output('y', linear(x, transpose(w)));
    const kernel = lowerGraph(g);
    expect(kernel.rewrites.get('fold-constant-movement')).toBeGreaterThan(0);
    const blob = kernel.program.weights.get('@model_path/weights/w.bin')!;
    const bits = readBlobTensor(blob, 64, { dtype: 'fp16', elementCount: 6 });
    expect(Array.from(bits)).toEqual([1, 4, 2, 5, 3, 6].map(fp16BitsFromNumber));
  });

  it('never emits the SDPA op: attention is matmul, scale, additive mask and softmax', () => {
    const g = new Graph();
    const x = g.input('x', [32, 32]);
    const w = (name: string) => g.param(name, [32, 32]);
    g.output(
      'y',
      causalSelfAttention(x, { wq: w('wq'), wk: w('wk'), wv: w('wv'), wo: w('wo') }, { heads: 2 }),
    );
    const body = ops(lowerGraph(g).program.mil);
    expect(body).not.toContain('scaled_dot_product_attention');
    for (const op of ['matmul', 'mul', 'add', 'softmax']) expect(body).toContain(op);
  });
});

describe('the rewrite engine', () => {
  function tiny(): KernelGraph {
    const g = new Graph();
    const x = g.input('x', [4]);
    return { graph: g, outputs: [add(x, 1)] };
  }

  it('refuses a rule that changes a shape', () => {
    const bad = {
      name: 'bad',
      apply: (node: { op: { kind: string }; inputs: readonly unknown[] }, context: { graph: Graph }) =>
        node.op.kind === 'binary' ? context.graph.input('other', [5]) : null,
    };
    expect(() => rewriteGraph(tiny(), [bad as never])).toThrow(IrError);
  });

  it('stops a rule that keeps firing', () => {
    const loop = {
      name: 'loop',
      apply: (node: { op: { kind: string } }, context: { graph: Graph }) =>
        node.op.kind === 'input'
          ? context.graph.add({ kind: 'input' }, [], { name: 'x' }, { shape: [4], dtype: 'fp16' })
          : null,
    };
    expect(() => rewriteGraph(tiny(), [loop as never])).toThrow('lowering rewrites did not settle');
  });
});
