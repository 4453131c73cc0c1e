/**
 * Parity with PyTorch: every case of tools/refgen/optim_fixtures.py (torch.optim.SGD, Adam, AdamW
 * and a reference Lion; 20 steps; weight decay, parameter groups, clipping and schedules) through
 * both APIs, to 1e-6 relative (see relativeError), on each host-kernel implementation.
 */
import { describe, expect, it } from 'vitest';
import { clipGradNorm, FlatArena } from '../src/index';
import {
  type AnyOptimizer,
  f32,
  loadParityCases,
  optimizerFromCase,
  type ParityCase,
  relativeError,
  scheduleFromSpec,
} from './fixtures';
import { kernelImplementations } from './kernel-implementations';

const TOLERANCE = 1e-6;
const cases = loadParityCases();

function gradsAt(c: ParityCase, step: number): Record<string, Float32Array> {
  const grads: Record<string, Float32Array> = {};
  for (const t of c.tensors) grads[t.name] = f32(c.grads[step]?.[t.name] as string);
  return grads;
}

function expectClose(what: string, actual: Float32Array, expected: Float32Array): void {
  const error = relativeError(actual, expected);
  expect(error, `${what}: relative error ${error.toExponential(2)}`).toBeLessThanOrEqual(TOLERANCE);
}

function checkAgainstFixture(
  c: ParityCase,
  optimizer: AnyOptimizer,
  params: (name: string) => Float32Array,
): void {
  for (const t of c.tensors) {
    expectClose(`${t.name} after ${c.steps} steps`, params(t.name), f32(c.final[t.name] as string));
    const state = optimizer.state.get(t.name) as Record<string, unknown>;
    expect(state.step).toBe(c.steps);
    for (const [field, expected] of Object.entries(c.state[t.name] ?? {})) {
      expectClose(`${t.name}.${field}`, state[field] as Float32Array, f32(expected));
    }
  }
}

describe('schedules and clipping agree with the fixtures', () => {
  for (const c of cases) {
    it(`${c.name}: learning rates and gradient norms`, () => {
      const schedule = scheduleFromSpec(c.options.learningRate);
      c.lrs.forEach((lr, step) => {
        expect(schedule(step)).toBeCloseTo(lr, 15);
      });
      if (c.clip === undefined) return;
      c.norms?.forEach((norm, step) => {
        const ours = clipGradNorm(gradsAt(c, step), c.clip as number);
        expect(Math.abs(ours - norm) / norm).toBeLessThan(1e-6);
      });
    });
  }
});

for (const implementation of kernelImplementations()) {
  describe(`PyTorch parity on ${implementation.label}`, () => {
    for (const c of cases) {
      it.skipIf(!implementation.available)(`${c.name}: tree API (update over a parameter tree)`, () => {
        {
          const kernels = implementation.name;
          const optimizer = optimizerFromCase(c, kernels);
          const params: Record<string, Float32Array> = {};
          for (const t of c.tensors) params[t.name] = f32(c.init[t.name] as string);
          for (let step = 0; step < c.steps; step++) {
            const grads = gradsAt(c, step);
            if (c.clip !== undefined) clipGradNorm(grads, c.clip, { kernels });
            expect(optimizer.learningRate).toBe(c.lrs[step]);
            optimizer.update(params, grads);
            if (step === 0) {
              for (const t of c.tensors) {
                expectClose(
                  `${t.name} after step 1`,
                  params[t.name] as Float32Array,
                  f32(c.afterFirstStep[t.name] as string),
                );
              }
            }
          }
          checkAgainstFixture(c, optimizer, (name) => params[name] as Float32Array);
        }
      });

      it.skipIf(!implementation.available)(
        `${c.name}: flat arena (stepArena), identical to the tree API`,
        () => {
          const kernels = implementation.name;
          {
            const arena = new FlatArena(c.tensors.map((t) => [t.name, t.shape] as const));
            const tree = optimizerFromCase(c, kernels);
            const flat = optimizerFromCase(c, kernels);
            const params: Record<string, Float32Array> = {};
            for (const t of c.tensors) {
              params[t.name] = f32(c.init[t.name] as string);
              arena.view(t.name).set(params[t.name] as Float32Array);
            }
            for (let step = 0; step < c.steps; step++) {
              const grads = gradsAt(c, step);
              for (const t of c.tensors) arena.view(t.name, 'grads').set(grads[t.name] as Float32Array);
              if (c.clip !== undefined) {
                clipGradNorm(grads, c.clip, { kernels });
                clipGradNorm(arena.grads, c.clip, { kernels });
              }
              tree.update(params, grads);
              flat.stepArena(arena);
            }
            checkAgainstFixture(c, flat, (name) => arena.view(name));
            // Without clipping both paths make the same kernel calls on the same numbers. (Clipping
            // the arena sums squares over one buffer, the tree leaf by leaf: the norms may differ in
            // the last bit.)
            if (c.clip === undefined)
              for (const t of c.tensors) expect(arena.view(t.name)).toEqual(params[t.name]);
          }
        },
      );
    }
  });
}
