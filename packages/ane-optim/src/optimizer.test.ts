import { describe, expect, it } from 'vitest';
import { FlatArena } from './arena';
import { OptimizerConfigError, OptimizerInputError, OptimizerStateError } from './errors';
import { Optimizer, type Resolved, type TensorState } from './optimizer';
import { Adam, AdamW } from './optimizers/adam';
import { Lion } from './optimizers/lion';
import { SGD } from './optimizers/sgd';
import { constant, cosineDecay } from './schedules';

const f = Math.fround;
const arr = (...values: number[]) => new Float32Array(values);

describe('single steps (hand-computed)', () => {
  it('SGD: p -= lr * g; momentum starts at g, then blends', () => {
    const params = { w: arr(1, -2) };
    new SGD({ learningRate: 0.1 }).update(params, { w: arr(0.5, -1) });
    expect([...params.w]).toEqual([f(1 - f(0.1) * 0.5), f(-2 + f(0.1) * 1)]);

    const p = { w: arr(1) };
    const sgd = new SGD({ learningRate: 0.5, momentum: 0.5 });
    sgd.update(p, { w: arr(2) }); // buf = 2; p = 1 - 0.5*2 = 0
    sgd.update(p, { w: arr(4) }); // buf = 0.5*2 + 4 = 5; p = 0 - 2.5
    expect([...p.w]).toEqual([-2.5]);
    expect([...(sgd.state.get('w')?.momentum ?? [])]).toEqual([5]);
  });

  it('Adam: the first bias-corrected step is lr * g / (|g| + eps); without correction it is smaller', () => {
    const p = { w: arr(1, 1) };
    new Adam({ learningRate: 0.01 }).update(p, { w: arr(0.5, -0.25) });
    expect(p.w[0]).toBeCloseTo(1 - 0.01 * (0.5 / (0.5 + 1e-8)), 7);
    expect(p.w[1]).toBeCloseTo(1 + 0.01 * (0.25 / (0.25 + 1e-8)), 7);

    const q = { w: arr(1) };
    new Adam({ learningRate: 0.01, biasCorrection: false }).update(q, { w: arr(0.5) });
    // m = 0.1*0.5 = 0.05, v = 0.001*0.25 = 0.00025: 0.01 * 0.05 / sqrt(0.00025)
    expect(q.w[0]).toBeCloseTo(1 - (0.01 * 0.05) / Math.sqrt(0.00025), 6);
  });

  it('Adam adds weight decay to the gradient; AdamW decays the weight itself', () => {
    // zero gradient: Adam sees g = wd*p, so moves by ~lr; AdamW only shrinks p by lr*wd.
    const adam = { w: arr(2) };
    new Adam({ learningRate: 0.01, weightDecay: 0.1 }).update(adam, { w: arr(0) });
    expect(adam.w[0]).toBeCloseTo(2 - 0.01, 6);
    const adamw = { w: arr(2) };
    new AdamW({ learningRate: 0.01, weightDecay: 0.1 }).update(adamw, { w: arr(0) });
    expect(adamw.w[0]).toBeCloseTo(2 * (1 - 0.01 * 0.1), 7);
  });

  it('Lion: p -= lr * sign(beta1*m + (1 - beta1)*g); m = beta2*m + (1 - beta2)*g', () => {
    const p = { w: arr(1, 1, 1) };
    const lion = new Lion({ learningRate: 0.1 });
    lion.update(p, { w: arr(-0.3, 0, 2) });
    expect([...p.w]).toEqual([f(1 + f(0.1)), 1, f(1 - f(0.1))]);
    expect(lion.state.get('w')?.m?.[0]).toBeCloseTo(0.01 * -0.3, 9);
  });

  it('defaults are PyTorch’s (Adam and AdamW bias-corrected), stated by the hyper-parameters', () => {
    expect(new Adam().hyperParametersOf('x')).toEqual({
      learningRate: 1e-3,
      betas: [0.9, 0.999],
      eps: 1e-8,
      weightDecay: 0,
      biasCorrection: true,
    });
    expect(new AdamW().hyperParametersOf('x').weightDecay).toBe(0.01);
    expect(new AdamW().hyperParametersOf('x').biasCorrection).toBe(true);
    expect(new Lion().hyperParametersOf('x')).toEqual({
      learningRate: 1e-4,
      betas: [0.9, 0.99],
      weightDecay: 0,
    });
    expect(new SGD({ learningRate: 0.1 }).hyperParametersOf('x')).toEqual({
      learningRate: 0.1,
      momentum: 0,
      dampening: 0,
      nesterov: false,
      weightDecay: 0,
    });
  });
});

describe('parameter groups', () => {
  const model = () => ({
    layers: [{ wq: arr(1, 1), norm: arr(1), bias: arr(1) }],
    head: arr(1),
  });
  const zeros = () => ({ layers: [{ wq: arr(0, 0), norm: arr(0), bias: arr(0) }], head: arr(0) });

  it('a group without weight decay on norms and biases; the rest decays', () => {
    const params = model();
    const optimizer = new AdamW({
      learningRate: 0.1,
      weightDecay: 0.5,
      groups: [{ params: (path) => /(norm|bias)$/.test(path), weightDecay: 0, name: 'no-decay' }],
    });
    optimizer.update(params, zeros()); // zero gradients: only the decay moves weights
    const decayed = f(1 * f(1 - 0.1 * 0.5));
    expect([...params.layers[0]!.wq, ...params.head]).toEqual([decayed, decayed, decayed]);
    expect([...params.layers[0]!.norm, ...params.layers[0]!.bias]).toEqual([1, 1]);
    expect(optimizer.groupNameOf('layers.0.norm')).toBe('no-decay');
    expect(optimizer.groupNameOf('head')).toBe('default');
  });

  it('groups match by RegExp or a list of paths; the first match wins; groups may set their own rate', () => {
    const optimizer = new SGD({
      learningRate: 1,
      groups: [
        { params: ['head'], learningRate: 0 },
        { params: /^layers\.0\./, learningRate: cosineDecay(0.5, 10) },
        { params: () => true, learningRate: 99 },
      ],
    });
    const params = model();
    const grads = { layers: [{ wq: arr(1, 1), norm: arr(1), bias: arr(1) }], head: arr(1) };
    optimizer.update(params, grads);
    expect([...params.head]).toEqual([1]); // lr 0: frozen
    expect([...params.layers[0]!.wq]).toEqual([0.5, 0.5]);
    optimizer.learningRate = 7; // replaces the default's rate only
    expect(optimizer.hyperParametersOf('head').learningRate).toBe(0);
    expect(optimizer.learningRate).toBe(7);
  });

  it('rejects bad groups and hyper-parameters, naming the option', () => {
    const attempt = (make: () => unknown) => {
      try {
        make();
      } catch (error) {
        expect(error).toBeInstanceOf(OptimizerConfigError);
        return `${(error as OptimizerConfigError).option}: ${(error as Error).message}`;
      }
      throw new Error('expected an OptimizerConfigError');
    };
    expect(attempt(() => new AdamW({ betas: [0.9, 1] }))).toMatch(
      /^betas\[1\]: AdamW: betas\[1\] must be in \[0, 1\)/,
    );
    expect(attempt(() => new Adam({ learningRate: -1 }))).toMatch(/^learningRate: /);
    expect(attempt(() => new SGD({ learningRate: 0.1, nesterov: true }))).toMatch(
      /^nesterov: .*momentum > 0/,
    );
    expect(attempt(() => new SGD({ learningRate: 0.1, groups: [{ params: ['a'], momentum: -1 }] }))).toMatch(
      /^groups\[0\]\.momentum: /,
    );
    expect(attempt(() => new Lion({ groups: [{ params: ['a'], eps: 1 } as never] }))).toMatch(
      /^groups\[0\]\.eps: Lion: unknown option 'groups\[0\]\.eps' \(Lion takes params, name, learningRate, betas, weightDecay\)/,
    );
    expect(attempt(() => new Lion({ groups: [{ params: 'a' } as never] }))).toMatch(/must be a function/);
    expect(attempt(() => new SGD({} as never))).toMatch(
      /^learningRate: SGD: learningRate must be a finite number/,
    );
  });
});

describe('update over trees', () => {
  it('skips parameters without a gradient; their step does not advance (PyTorch grad=None)', () => {
    const params = { a: arr(1), b: arr(1) };
    const optimizer = new Adam({ learningRate: 0.1 });
    optimizer.update(params, { a: arr(1) });
    optimizer.update(params, { a: arr(1), b: arr(1) });
    expect(optimizer.state.get('a')?.step).toBe(2);
    expect(optimizer.state.get('b')?.step).toBe(1);
    expect(optimizer.step).toBe(2);
    // b's first update was bias-corrected as a first step: a full lr-sized move.
    expect(params.b[0]).toBeCloseTo(0.9, 6);
  });

  it('validates everything before changing anything', () => {
    const params = { a: arr(1, 2), b: arr(3) };
    const optimizer = new AdamW({ learningRate: 0.1 });
    expect(() => optimizer.update(params, { a: arr(1, 1), b: arr(1, 1) })).toThrow(OptimizerInputError);
    expect(() => optimizer.update(params, { a: arr(1, 1), c: arr(1) })).toThrow(
      /grads has 'c' but params has no tensor there/,
    );
    expect(() => optimizer.update(params, { a: arr(1, 1), b: [1] as never })).toThrow(
      /'b.0' is 1, expected a Float32Array/,
    );
    expect([...params.a, ...params.b]).toEqual([1, 2, 3]);
    expect(optimizer.state.size).toBe(0);
    expect(optimizer.step).toBe(0);

    const broken = new SGD({ learningRate: (step) => (step < 1 ? 0.1 : Number.NaN) });
    broken.update(params, { a: arr(1, 1), b: arr(1) });
    const before = [...params.a, ...params.b];
    expect(() => broken.update(params, { a: arr(1, 1), b: arr(1) })).toThrow(
      /schedule returned NaN at step 1/,
    );
    expect([...params.a, ...params.b]).toEqual(before);
    expect(broken.step).toBe(1);
  });

  it('refuses state whose shape no longer fits the parameter', () => {
    const optimizer = new Adam();
    optimizer.update({ w: arr(1, 2) }, { w: arr(1, 1) });
    expect(() => optimizer.update({ w: arr(1, 2, 3) }, { w: arr(1, 1, 1) })).toThrow(OptimizerStateError);
    expect(() => optimizer.update({ w: arr(1, 2, 3) }, { w: arr(1, 1, 1) })).toThrow(
      /state of 'w' is for 2 elements/,
    );
  });
});

describe('the flat arena path', () => {
  class CountingAdamW extends AdamW {
    calls: number[] = [];
    override applySingle(
      grad: Float32Array,
      param: Float32Array,
      state: TensorState<'m' | 'v'>,
      hyper: Resolved<Parameters<AdamW['applySingle']>[3]>,
      fp16Out?: Uint16Array,
    ): void {
      this.calls.push(param.length);
      super.applySingle(grad, param, state, hyper, fp16Out);
    }
  }
  const noDecay = [{ params: /norm$/, weightDecay: 0 }];

  it('makes one kernel call per run of neighbouring tensors in the same group', () => {
    const interleaved = new FlatArena([
      ['l0.w', [2, 3]],
      ['l0.norm', 3],
      ['l1.w', [2, 3]],
      ['l1.norm', 3],
    ]);
    const byGroup = new FlatArena([
      ['l0.w', [2, 3]],
      ['l1.w', [2, 3]],
      ['l0.norm', 3],
      ['l1.norm', 3],
    ]);
    const a = new CountingAdamW({ groups: noDecay });
    a.stepArena(interleaved);
    expect(a.calls).toEqual([6, 3, 6, 3]);
    const b = new CountingAdamW({ groups: noDecay });
    b.stepArena(byGroup);
    expect(b.calls).toEqual([12, 6]);
    const c = new CountingAdamW();
    c.stepArena(interleaved);
    expect(c.calls).toEqual([18]);
  });

  it('gives the same weights as the tree API, bit for bit, and its state is views of the arena', () => {
    const layout = [
      ['embed', [4, 3]],
      ['norm', [3]],
      ['head', [2, 3]],
    ] as const;
    const arena = new FlatArena(layout);
    arena.params.forEach((_, i) => {
      arena.params[i] = Math.sin(i + 1);
    });
    const tree: Record<string, Float32Array> = {};
    for (const [name] of layout) tree[name] = arena.view(name).slice();
    const flat = new AdamW({ learningRate: 0.01, weightDecay: 0.1, groups: noDecay });
    const treeOptimizer = new AdamW({ learningRate: 0.01, weightDecay: 0.1, groups: noDecay });
    for (let step = 0; step < 5; step++) {
      arena.grads.forEach((_, i) => {
        arena.grads[i] = Math.cos(i * 0.7 + step);
      });
      const grads: Record<string, Float32Array> = {};
      for (const [name] of layout) grads[name] = arena.view(name, 'grads').slice();
      flat.stepArena(arena);
      treeOptimizer.update(tree, grads);
    }
    for (const [name] of layout) {
      expect(arena.view(name)).toEqual(tree[name]);
      expect(arena.view(name, 'm')).toEqual(treeOptimizer.state.get(name)?.m);
      expect(flat.state.get(name)?.v?.buffer).toBe(arena.field('v').buffer);
    }
    expect(arena.fieldNames()).toEqual(['params', 'grads', 'm', 'v']);
  });

  it('mixes with update() over arena.paramsTree(): both see the same state', () => {
    const make = () => {
      const arena = new FlatArena({ a: [3], b: [2] });
      arena.params.set([1, 2, 3, 4, 5]);
      return arena;
    };
    const pure = make();
    const mixed = make();
    const pureOptimizer = new SGD({ learningRate: 0.1, momentum: 0.9 });
    const mixedOptimizer = new SGD({ learningRate: 0.1, momentum: 0.9 });
    for (let step = 0; step < 4; step++) {
      for (const arena of [pure, mixed]) arena.grads.set([step, 1, -1, 0.5, 2]);
      pureOptimizer.stepArena(pure);
      if (step % 2 === 0) mixedOptimizer.stepArena(mixed);
      else mixedOptimizer.update(mixed.paramsTree(), mixed.gradsTree());
    }
    expect(mixed.params).toEqual(pure.params);
    expect(mixed.field('momentum')).toEqual(pure.field('momentum'));
  });

  it('writes an fp16 copy of the new weights in the same pass', () => {
    const arena = new FlatArena({ w: 3 });
    arena.params.set([3, 0, 1]);
    arena.grads.set([1, 0.5, -1]);
    const fp16 = new Uint16Array(3);
    new SGD({ learningRate: 1 }).stepArena(arena, { fp16Out: fp16 });
    expect([...arena.params]).toEqual([2, -0.5, 2]);
    expect([...fp16]).toEqual([0x4000, 0xb800, 0x4000]);
    expect(() => new SGD({ learningRate: 1 }).stepArena(arena, { fp16Out: new Uint16Array(2) })).toThrow(
      /fp16Out must be a Uint16Array of arena.size \(3\)/,
    );
  });

  it('belongs to one arena', () => {
    const optimizer = new Lion();
    optimizer.stepArena(new FlatArena({ w: 2 }));
    expect(() => optimizer.stepArena(new FlatArena({ w: 2 }))).toThrow(
      /already keeps its state in another FlatArena/,
    );
  });
});

describe('writing an optimizer the MLX way: initSingle + applySingle', () => {
  /** Sign descent with a running count, to show a subclass gets trees, arenas, groups and state. */
  class SignDescent extends Optimizer<{ learningRate: number | ((step: number) => number) }, 'seen'> {
    constructor(learningRate: number) {
      super('SignDescent', { learningRate });
    }
    protected stateFields() {
      return ['seen'] as const;
    }
    override applySingle(
      grad: Float32Array,
      param: Float32Array,
      state: TensorState<'seen'>,
      hyper: { learningRate: number },
    ) {
      const seen = state.seen as Float32Array;
      for (let i = 0; i < param.length; i++) {
        param[i] = (param[i] as number) - hyper.learningRate * Math.sign(grad[i] as number);
        seen[i] = (seen[i] as number) + 1;
      }
    }
  }

  it('works over trees and arenas, and saves its state', () => {
    const params = { w: arr(1, 1) };
    const optimizer = new SignDescent(0.25);
    optimizer.update(params, { w: arr(-3, 0.1) });
    expect([...params.w]).toEqual([1.25, 0.75]);
    const arena = new FlatArena({ w: 2 });
    arena.grads.set([1, 1]);
    const restored = new SignDescent(0.25);
    restored.loadState(optimizer.saveState());
    restored.stepArena(arena);
    expect([...arena.view('w', 'seen')]).toEqual([2, 2]);
    expect(restored.state.get('w')?.step).toBe(2);
    expect(new SignDescent(1).learningRate).toBe(1);
    expect(constant(1)(0)).toBe(1);
  });
});
