import { describe, expect, it } from 'vitest';
import { GradientAccumulator } from './accumulate';
import { OptimizerConfigError, OptimizerInputError } from './errors';
import { SGD } from './optimizers/sgd';
import { zerosLike } from './tree';

describe('GradientAccumulator', () => {
  it('averages micro-batches into the target, then starts over', () => {
    const params = { w: new Float32Array([1, 1]), b: [new Float32Array([0])] };
    const accumulator = new GradientAccumulator(zerosLike(params), { steps: 4 });
    const micro = [
      [1, 2, 3],
      [3, 2, 1],
      [-1, 0, 1],
      [1, 0, 3],
    ];
    micro.forEach(([a, b, c], i) => {
      const ready = accumulator.accumulate({
        w: new Float32Array([a as number, b as number]),
        b: [new Float32Array([c as number])],
      });
      expect(ready).toBe(i === 3);
    });
    const mean = accumulator.finish();
    expect([...mean.w, ...(mean.b[0] as Float32Array)]).toEqual([1, 1, 2]);
    expect(accumulator.count).toBe(0);
    accumulator.accumulate({ w: new Float32Array([5, 5]), b: [new Float32Array([5])] }); // copied, not added
    expect([...accumulator.finish().w]).toEqual([5, 5]);
    new SGD({ learningRate: 0.5 }).update(params, mean);
    expect([...params.w]).toEqual([-1.5, -1.5]);
  });

  it("sums with reduction 'sum', and counts in-place accumulation (a flat arena's grads)", () => {
    const grads = new Float32Array([1, 2]);
    const accumulator = new GradientAccumulator(grads, { steps: 2, reduction: 'sum' });
    accumulator.accumulate(grads); // the caller's backward already added into grads
    grads[0] = (grads[0] as number) + 1;
    accumulator.accumulate(grads);
    expect([...accumulator.finish()]).toEqual([2, 2]);
    expect(accumulator.saveState()).toEqual({
      format: 'ane-optim/gradient-accumulator',
      version: 1,
      count: 0,
    });
  });

  it('checks shapes before adding anything, and its options', () => {
    const accumulator = new GradientAccumulator(
      { a: new Float32Array(2), b: new Float32Array(1) },
      { steps: 2 },
    );
    accumulator.accumulate({ a: new Float32Array([1, 1]), b: new Float32Array([1]) });
    expect(() => accumulator.accumulate({ a: new Float32Array([1, 1]), b: new Float32Array(3) })).toThrow(
      /'b' has 3 gradients, expected 1/,
    );
    expect(() => accumulator.accumulate({ a: new Float32Array(2) })).toThrow(OptimizerInputError);
    expect(accumulator.count).toBe(1);
    expect([...accumulator.target.a]).toEqual([1, 1]);
    expect(() => new GradientAccumulator(new Float32Array(1), { steps: 0 })).toThrow(OptimizerConfigError);
    expect(() => new GradientAccumulator(new Float32Array(1), { steps: 2 }).finish()).toThrow(/no gradients/);
    const restored = new GradientAccumulator(new Float32Array(1), { steps: 3 });
    restored.loadState({ format: 'ane-optim/gradient-accumulator', version: 1, count: 2 });
    expect(restored.count).toBe(2);
  });
});
