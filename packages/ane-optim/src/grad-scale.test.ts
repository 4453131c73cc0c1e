/**
 * stepArena's gradScale: each gradient multiplied as the update reads it equals scaling the
 * gradients in place first and stepping (bit for bit), for every built-in optimizer, on the
 * TypeScript and the native kernels and through a ThreadPool; the arena's gradients stay as they
 * were. clipCoefficient is the factor clipGradNorm applies.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { FlatArena } from './arena';
import { clipCoefficient, clipGradNorm, globalNorm } from './clip';
import { OptimizerConfigError } from './errors';
import type { KernelChoice } from './kernels';
import { Optimizer, type TensorState } from './optimizer';
import { Adam, AdamW } from './optimizers/adam';
import { Lion } from './optimizers/lion';
import { SGD } from './optimizers/sgd';
import { ThreadPool } from './thread-pool';

const LAYOUT = { a: [37, 5], b: [300], c: [2, 3, 7] };

/** A shared arena with seeded weights and gradients (a few tiny and huge ones among them). */
function arenaWith(seed: number): FlatArena {
  const arena = new FlatArena(LAYOUT, { shared: true });
  let state = seed >>> 0;
  const next = () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 2 ** 32 - 0.5;
  };
  for (let i = 0; i < arena.size; i++) {
    arena.params[i] = next();
    arena.grads[i] = next() * (i % 17 === 0 ? 3e4 : i % 13 === 0 ? 1e-5 : 40);
  }
  return arena;
}

const optimizers: Array<[string, (kernels: KernelChoice) => Optimizer<never, string>]> = [
  ['AdamW', (kernels) => new AdamW({ learningRate: 1e-2, weightDecay: 0.1, kernels }) as never],
  ['Adam', (kernels) => new Adam({ learningRate: 1e-2, weightDecay: 0.01, kernels }) as never],
  ['SGD', (kernels) => new SGD({ learningRate: 0.1, momentum: 0.9, weightDecay: 0.01, kernels }) as never],
  ['Lion', (kernels) => new Lion({ learningRate: 1e-3, weightDecay: 0.1, kernels }) as never],
];

const pool = new ThreadPool(2);
afterAll(() => pool.close());

describe('stepArena gradScale', () => {
  for (const [name, make] of optimizers)
    for (const kernels of ['ts', 'native', 'pool'] as const) {
      it(`${name} (${kernels}): equals scaling the gradients in place, then stepping; the gradients stay`, () => {
        const choice: KernelChoice = kernels === 'pool' ? 'ts' : kernels;
        const options = kernels === 'pool' ? { pool } : {};
        const scaled = arenaWith(7);
        const reference = arenaWith(7);
        const folded = make(choice);
        const plain = make(choice);
        for (const factor of [2 ** -10 * 0.37, 0.001, 3]) {
          const gradsBefore = scaled.grads.slice();
          folded.stepArena(scaled, { ...options, gradScale: factor });
          expect(scaled.grads).toEqual(gradsBefore);
          const f = Math.fround(factor);
          for (let i = 0; i < reference.size; i++) reference.grads[i] = reference.grads[i]! * f;
          plain.stepArena(reference, options);
          reference.grads.set(gradsBefore);
          expect(scaled.params).toEqual(reference.params);
          for (const field of scaled.fieldNames())
            expect(scaled.field(field), field).toEqual(reference.field(field));
        }
        // gradScale 1 is the plain step.
        folded.stepArena(scaled, { ...options, gradScale: 1 });
        plain.stepArena(reference, options);
        expect(scaled.params).toEqual(reference.params);
      });
    }

  it('an optimizer of your own (applySingle, no kernel) gets its gradients scaled in place first', () => {
    class Descent extends Optimizer<{ learningRate: number }, never> {
      constructor() {
        super('Descent', { learningRate: 0.5 });
      }
      protected stateFields() {
        return [] as const;
      }
      override applySingle(grad: Float32Array, param: Float32Array, _state: TensorState<never>) {
        for (let i = 0; i < param.length; i++) param[i] = param[i]! - 0.5 * grad[i]!;
      }
    }
    const arena = new FlatArena({ w: 3 });
    arena.params.set([1, 1, 1]);
    arena.grads.set([2, -4, 8]);
    new Descent().stepArena(arena, { gradScale: 0.25 });
    expect([...arena.params]).toEqual([0.75, 1.5, 0]);
    expect([...arena.grads]).toEqual([0.5, -1, 2]);
  });

  it('refuses a gradScale that is not a finite number', () => {
    const arena = new FlatArena({ w: 3 });
    const optimizer = new AdamW({ learningRate: 1e-3 });
    for (const bad of [Number.NaN, Number.POSITIVE_INFINITY, 1e39, '2', null]) {
      expect(() => optimizer.stepArena(arena, { gradScale: bad as never })).toThrow(OptimizerConfigError);
      expect(() => optimizer.stepArena(arena, { gradScale: bad as never })).toThrow(
        /gradScale must be a finite number/,
      );
    }
    expect(optimizer.step).toBe(0);
  });
});

describe('clipCoefficient', () => {
  it('is the factor clipGradNorm applies, 1 when it leaves the gradients alone', () => {
    const grads = [Float32Array.of(3, 4), Float32Array.of(12)];
    const norm = globalNorm(grads);
    expect(norm).toBe(13);
    const factor = clipCoefficient(norm, 1);
    const clipped = grads.map((g) => g.slice());
    clipGradNorm(clipped, 1);
    grads.forEach((g, i) => {
      expect(clipped[i]).toEqual(g.map((x) => x * factor));
    });
    expect(clipCoefficient(norm, 100)).toBe(1);
    expect(clipCoefficient(Number.NaN, 1)).toBe(1);
    expect(clipCoefficient(Number.POSITIVE_INFINITY, 1)).toBe(1);
  });

  it('refuses a bad maxNorm or norm', () => {
    expect(() => clipCoefficient(1, 0)).toThrow(/maxNorm must be a positive finite number/);
    expect(() => clipCoefficient(1, Number.NaN)).toThrow(OptimizerConfigError);
    expect(() => clipCoefficient('1' as never, 1)).toThrow(/totalNorm must be a number/);
  });
});
