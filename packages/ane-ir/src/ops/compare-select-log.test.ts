/**
 * The comparison, select and log primitives (and relu, maximum, minimum, which the VJPs of issue 12
 * build on): shape and dtype rules, ShapeErrors, and the reference interpreter against values
 * computed by hand.
 */
import { describe, expect, it } from 'vitest';
import { computeBounds } from '../check/bounds';
import { ConstraintError, ShapeError } from '../graph/errors';
import { evaluate } from '../graph/evaluate';
import { Graph } from '../graph/graph';
import { opLabel } from '../graph/tensor';
import { lowerGraph } from '../lower/kernel';
import { roundToFp16 } from '../mil/fp16';
import { cast, equal, greater, less, log, maximum, minimum, relu, select } from './primitives';

function values(result: Float64Array): number[] {
  return Array.from(result);
}

describe('greater, less, equal', () => {
  it('give bool results of the broadcast shape', () => {
    const g = new Graph();
    const x = g.input('x', [2, 1]);
    const y = g.input('y', [3]);
    const gt = greater(x, y);
    expect(gt.dtype).toBe('bool');
    expect(gt.shape).toEqual([2, 3]);
    expect(gt.op).toEqual({ kind: 'compare', fn: 'greater' });
    expect(opLabel(gt.op)).toBe('greater');
    expect(less(x, 0).shape).toEqual([2, 1]);
    expect(equal(1, y).dtype).toBe('bool');
  });

  it('compare elementwise with broadcasting (hand-computed)', () => {
    const g = new Graph();
    const x = g.input('x', [2, 1]);
    const y = g.input('y', [3]);
    const feeds = { x: [1, -2], y: [0, 1, -2] };
    const [gt, lt, eq, gtScalar] = evaluate([greater(x, y), less(x, y), equal(x, y), greater(y, 0)], feeds);
    // rows: x = 1 against [0, 1, -2]; x = -2 against [0, 1, -2]
    expect(values(gt!)).toEqual([1, 0, 1, 0, 0, 0]);
    expect(values(lt!)).toEqual([0, 0, 0, 1, 1, 0]);
    expect(values(eq!)).toEqual([0, 1, 0, 0, 0, 1]);
    expect(values(gtScalar!)).toEqual([0, 1, 0]);
  });

  it('are false for NaN operands', () => {
    const g = new Graph();
    const x = g.input('x', [2]);
    const [gt, lt, eq] = evaluate([greater(x, 0), less(x, 0), equal(x, x)], { x: [Number.NaN, 1] });
    expect(values(gt!)).toEqual([0, 1]);
    expect(values(lt!)).toEqual([0, 0]);
    expect(values(eq!)).toEqual([0, 1]);
  });

  it('refuse bool operands, mixed dtypes and shapes that do not broadcast (ShapeError)', () => {
    const g = new Graph();
    const x = g.input('x', [2, 3]);
    const mask = greater(x, 0);
    expect(() => greater(mask, mask)).toThrow(ShapeError);
    expect(() => greater(mask, mask)).toThrow(/compares numbers, found bool and bool/);
    const wide = g.input('w', [2, 3], { dtype: 'fp32' });
    expect(() => less(x, wide)).toThrow(/same dtype \(expected fp16, found fp32\)/);
    expect(() => equal(x, g.input('z', [4]))).toThrow(ShapeError);
  });
});

describe('select', () => {
  it('picks a where the condition holds and b elsewhere, all three broadcast (hand-computed)', () => {
    const g = new Graph();
    const x = g.input('x', [2, 3]);
    const a = g.input('a', [3]);
    const b = g.input('b', [2, 1]);
    const picked = select(greater(x, 0), a, b);
    expect(picked.shape).toEqual([2, 3]);
    expect(picked.dtype).toBe('fp16');
    const [out] = evaluate([picked], { x: [1, -1, 0, -3, 2, 5], a: [10, 20, 30], b: [-1, -2] });
    expect(values(out!)).toEqual([10, -1, -1, -2, 20, 30]);
  });

  it('takes plain numbers for a and b (of the other operand dtype, or fp16)', () => {
    const g = new Graph();
    const x = g.input('x', [4], { dtype: 'fp32' });
    const mask = less(x, 0);
    const zeroed = select(mask, 0, x);
    expect(zeroed.dtype).toBe('fp32');
    expect(zeroed.inputs[1]!.dtype).toBe('fp32');
    const indicator = select(mask, 1, 0);
    expect(indicator.dtype).toBe('fp16');
    expect(indicator.shape).toEqual([4]);
    const [z, i] = evaluate([zeroed, indicator], { x: [-1.5, 2, 0, -0.25] });
    expect(values(z!)).toEqual([0, 2, 0, 0]);
    expect(values(i!)).toEqual([1, 0, 0, 1]);
  });

  it('refuses a condition that is not bool, a and b of two dtypes, and shapes that do not broadcast', () => {
    const g = new Graph();
    const x = g.input('x', [2, 3]);
    expect(() => select(x, x, x)).toThrow(ShapeError);
    expect(() => select(x, x, x)).toThrow(/condition \(first operand\) must be bool, found fp16/);
    const mask = greater(x, 0);
    expect(() => select(mask, x, cast(x, 'fp32'))).toThrow(
      /a and b must have one dtype, found fp16 and fp32/,
    );
    expect(() => select(mask, x, g.input('y', [4, 1, 1]))).not.toThrow();
    expect(() => select(mask, x, g.input('z', [5]))).toThrow(ShapeError);
  });

  it('a bool condition converts to an fp16 0/1 mask', () => {
    const g = new Graph();
    const x = g.input('x', [3]);
    const [mask] = evaluate([select(equal(x, 2), 1, 0)], { x: [2, 3, 2] });
    expect(values(mask!)).toEqual([1, 0, 1]);
  });
});

describe('log', () => {
  it('is log(x + epsilon), epsilon 0 by default (hand-computed)', () => {
    const g = new Graph();
    const x = g.input('x', [4], { dtype: 'fp32' });
    const plain = log(x);
    expect(plain.op).toEqual({ kind: 'unary', fn: 'log', epsilon: 0 });
    expect(plain.shape).toEqual([4]);
    expect(plain.dtype).toBe('fp32');
    const [out] = evaluate([plain], { x: [1, Math.E, Math.E ** -2, 0] });
    expect(out![0]).toBe(0);
    expect(out![1]).toBeCloseTo(1, 15);
    expect(out![2]).toBeCloseTo(-2, 15);
    expect(out![3]).toBe(Number.NEGATIVE_INFINITY);
  });

  it('adds the epsilon as the ANE stores it: an fp16 constant for fp16 tensors, exact for fp32', () => {
    const g = new Graph();
    const x16 = g.input('x16', [1]);
    const x32 = g.input('x32', [1], { dtype: 'fp32' });
    // 1e-3 is 0.0010004043579101562 in fp16 (1049 / 2^20)
    expect(roundToFp16(1e-3)).toBe(1049 / 2 ** 20);
    const [a, b] = evaluate([log(x16, { epsilon: 1e-3 }), log(x32, { epsilon: 1e-3 })], {
      x16: [0],
      x32: [0],
    });
    expect(a![0]).toBe(Math.log(1049 / 2 ** 20));
    expect(b![0]).toBe(Math.log(1e-3));
  });

  it('refuses integer tensors and a negative or non-finite epsilon (ShapeError)', () => {
    const g = new Graph();
    const tokens = g.input('t', [4], { dtype: 'int32' });
    expect(() => log(tokens)).toThrow(/log takes fp16 or fp32, found int32/);
    const x = g.input('x', [4]);
    expect(() => log(x, { epsilon: -1e-3 })).toThrow(ShapeError);
    expect(() => log(x, { epsilon: Number.NaN })).toThrow(/epsilon must be a finite number >= 0, got NaN/);
  });
});

describe('relu, maximum, minimum (primitives: MIL has relu, maximum and minimum)', () => {
  it('compute max(x, 0), max(a, b) and min(a, b) with broadcasting (hand-computed)', () => {
    const g = new Graph();
    const x = g.input('x', [2, 2]);
    const r = g.input('r', [2]);
    const [rl, mx, mn] = evaluate([relu(x), maximum(x, r), minimum(x, 0.5)], {
      x: [-1, 2, 0.25, -0.5],
      r: [0, 1],
    });
    expect(values(rl!)).toEqual([0, 2, 0.25, 0]);
    expect(values(mx!)).toEqual([0, 2, 0.25, 1]);
    expect(values(mn!)).toEqual([-1, 0.5, 0.25, -0.5]);
  });

  it('relu equals select(greater(x, 0), x, 0), the form its VJP masks with', () => {
    const g = new Graph();
    const x = g.input('x', [5]);
    const feeds = { x: [-2, -0.5, 0, 0.5, 3] };
    const [direct, composed] = evaluate([relu(x), select(greater(x, 0), x, 0)], feeds);
    expect(values(direct!)).toEqual(values(composed!));
  });
});

describe('log on the ANE: its epsilon is an fp16 constant', () => {
  it('warns (num-eps-underflow) when the epsilon vanishes in fp16, and refuses it when strict', () => {
    const g = new Graph();
    const x = g.input('x', [32, 32]);
    g.output('y', log(x, { epsilon: 1e-8, name: 'logx' }));
    const kernel = lowerGraph(g);
    const warning = kernel.warnings.find((w) => w.ruleId === 'num-eps-underflow');
    expect(warning).toMatchObject({ op: 'log', node: 'logx' });
    expect(warning!.message).toMatch(/log's epsilon 1e-8 rounds to 0 in fp16/);
    expect(() => lowerGraph(g, { strict: true })).toThrow(ConstraintError);
  });

  it('does not warn for epsilon 0 (the exact logarithm) or one fp16 can hold', () => {
    for (const epsilon of [0, 1e-7, 1e-4]) {
      const g = new Graph();
      g.output('y', log(g.input('x', [32, 32]), { epsilon }));
      expect(lowerGraph(g).warnings.filter((w) => w.ruleId === 'num-eps-underflow')).toEqual([]);
    }
  });
});

describe('magnitude bounds through comparisons and selects', () => {
  it('a select is bounded by the larger of a and b, a comparison by 1, a log by nothing', () => {
    const g = new Graph();
    const x = g.input('x', [4], { maxAbs: 3 });
    const y = g.input('y', [4], { maxAbs: 5 });
    const free = g.input('z', [4]);
    const mask = greater(x, y);
    const picked = select(mask, x, y);
    const zeroed = select(mask, x, 0);
    const unbounded = select(mask, free, x);
    const bounds = computeBounds([x, y, free, mask, picked, zeroed, unbounded, log(x)]);
    expect(bounds.get(mask)).toBe(1);
    expect(bounds.get(picked)).toBe(5);
    expect(bounds.get(zeroed)).toBe(3);
    expect(bounds.get(unbounded)).toBeUndefined();
  });
});
