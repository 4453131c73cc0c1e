import { describe, expect, it } from 'vitest';
import { FlatArena } from './arena';
import { OptimizerConfigError, OptimizerInputError } from './errors';
import { zerosLike } from './tree';

describe('FlatArena', () => {
  it('lays tensors out back to back in one buffer per field, with named views', () => {
    const arena = new FlatArena([
      ['wte', [3, 2]],
      ['layers.0.wq', [2, 2]],
      ['norm', 2],
    ]);
    expect(arena.size).toBe(12);
    expect(arena.tensors.map((t) => [t.name, t.offset, t.length, t.shape])).toEqual([
      ['wte', 0, 6, [3, 2]],
      ['layers.0.wq', 6, 4, [2, 2]],
      ['norm', 10, 2, [2]],
    ]);
    arena.view('layers.0.wq').set([1, 2, 3, 4]);
    arena.view('norm', 'grads').fill(7);
    expect([...arena.params]).toEqual([0, 0, 0, 0, 0, 0, 1, 2, 3, 4, 0, 0]);
    expect([...arena.grads.subarray(10)]).toEqual([7, 7]);
    expect(arena.view('wte').buffer).toBe(arena.params.buffer);
    expect(Object.keys(arena.paramsTree())).toEqual(['wte', 'layers.0.wq', 'norm']);
    arena.zeroGrads();
    expect(arena.grads.every((g) => g === 0)).toBe(true);
  });

  it('creates optimizer fields on demand, zeroed, and can use shared memory for worker threads', () => {
    const arena = new FlatArena({ a: 2, b: [1, 3] }, { shared: true });
    expect(arena.hasField('m')).toBe(false);
    expect(arena.field('m')).toHaveLength(5);
    expect(arena.field('m').buffer).toBeInstanceOf(SharedArrayBuffer);
    expect(arena.fieldNames()).toEqual(['params', 'grads', 'm']);
    expect(() => arena.view('a', 'v')).toThrow(/field 'v' does not exist yet/);
  });

  it('copies a parameter tree in, named by path', () => {
    const tree = { layers: [{ w: new Float32Array([1, 2]) }], head: new Float32Array([3]) };
    const arena = FlatArena.fromTree(tree);
    expect(arena.tensors.map((t) => t.name)).toEqual(['layers.0.w', 'head']);
    expect([...arena.params]).toEqual([1, 2, 3]);
    const zeros = zerosLike(tree);
    expect(zeros.layers[0]?.w).toEqual(new Float32Array(2));
    expect(zeros.head.buffer).toBe(zeros.layers[0]?.w.buffer);
  });

  it('rejects bad layouts and unknown names with typed errors', () => {
    expect(() => new FlatArena([['a', [2, -1]]])).toThrow(OptimizerConfigError);
    expect(() => new FlatArena([['a', [2, 1.5]]])).toThrow(/dimensions must be non-negative integers/);
    expect(() => new FlatArena([['', 2]])).toThrow(/non-empty name/);
    expect(
      () =>
        new FlatArena([
          ['a', 1],
          ['a', 2],
        ]),
    ).toThrow(/'a' appears twice/);
    const arena = new FlatArena({ 'layers.0.wq': 4, 'layers.0.wk': 4 });
    expect(() => arena.view('wq')).toThrow(OptimizerInputError);
    expect(() => arena.view('wq')).toThrow(/no tensor named 'wq'; did you mean 'layers.0.wq'\?/);
  });
});
