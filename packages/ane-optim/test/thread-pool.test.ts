/**
 * The pooled flat-arena step (worker threads running ane-bridge's kernels over ranges) gives the
 * very weights, state and fp16 copy of the single-threaded step. Workers load ane-bridge's built
 * dist, so run `pnpm exec turbo run build --filter=ane-optim...` first.
 */
import { availableParallelism } from 'node:os';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  AdamW,
  FlatArena,
  Lion,
  OptimizerConfigError,
  OptimizerInputError,
  SGD,
  ThreadPool,
} from '../src/index';
import { maxPoolThreads } from '../src/thread-pool';

const layout = [
  ['embed', [300, 256]],
  ['layers.0.norm', [256]],
  ['layers.0.w', [256, 512]],
  ['head', [1000]],
] as const;

const sameBits = (a: ArrayBufferView, b: ArrayBufferView) =>
  Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));

function makeArena(): FlatArena {
  const arena = new FlatArena(layout, { shared: true });
  for (let i = 0; i < arena.size; i++) arena.params[i] = Math.sin(i) * 0.1;
  return arena;
}

describe('ThreadPool', () => {
  const pool = new ThreadPool(2);
  beforeAll(() => pool.ready);
  afterAll(() => pool.close());

  it('starts its worker', () => {
    expect(pool.readyWorkers).toBe(1);
  });

  it('bounds its size with an OptimizerConfigError instead of aborting the process (issue 10)', () => {
    const limit = Math.min(256, 4 * availableParallelism());
    expect(maxPoolThreads()).toBe(limit);
    for (const threads of [100000, limit + 1]) {
      let error: unknown;
      try {
        new ThreadPool(threads).close();
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(OptimizerConfigError);
      expect(error).toMatchObject({ option: 'threads' });
      expect((error as Error).message).toContain(`threads must be at most ${limit}`);
      expect((error as Error).message).toContain(`got ${threads}`);
    }
    for (const threads of [0, 1.5, Number.NaN])
      expect(() => new ThreadPool(threads)).toThrow(OptimizerConfigError);
  });

  it('never waits for a worker that has not started: the calling thread does its share', () => {
    const fresh = new ThreadPool(3);
    const arena = makeArena();
    arena.grads.fill(1);
    new SGD({ learningRate: 0.5 }).stepArena(arena, { pool: fresh }); // synchronously, right away
    expect(arena.params[0]).toBeCloseTo(-0.5, 6);
    fresh.close();
  });

  for (const make of [
    () => new AdamW({ learningRate: 1e-3, weightDecay: 0.1, groups: [{ params: /norm$/, weightDecay: 0 }] }),
    () => new SGD({ learningRate: 0.01, momentum: 0.9, nesterov: true }),
    () => new Lion({ learningRate: 1e-4, weightDecay: 0.1 }),
  ]) {
    it(`${make().name}: a pooled step equals the single-threaded one, bit for bit`, () => {
      const single = makeArena();
      const pooled = makeArena();
      const singleOptimizer = make();
      const pooledOptimizer = make();
      const fp16Single = new Uint16Array(single.size);
      const fp16Pooled = new Uint16Array(new SharedArrayBuffer(pooled.size * 2));
      for (let step = 0; step < 3; step++) {
        for (const arena of [single, pooled]) {
          for (let i = 0; i < arena.size; i++) arena.grads[i] = Math.cos(i * 0.3 + step);
        }
        singleOptimizer.stepArena(single, { fp16Out: fp16Single });
        pooledOptimizer.stepArena(pooled, { fp16Out: fp16Pooled, pool });
      }
      expect(pooled.fieldNames()).toEqual(single.fieldNames());
      for (const field of single.fieldNames())
        expect(sameBits(pooled.field(field), single.field(field)), field).toBe(true);
      expect(sameBits(fp16Pooled, fp16Single)).toBe(true);
      expect(pooledOptimizer.saveState().meta).toEqual(singleOptimizer.saveState().meta);
    });
  }

  it("explicit native kernels either read the shared arena or say they cannot; 'auto' falls back to TS", () => {
    const arena = makeArena();
    arena.grads.fill(0.5);
    try {
      new AdamW({ kernels: 'native' }).stepArena(arena, { pool });
    } catch (error) {
      if ((error as Error).message.includes('native kernels were requested')) return; // no addon here
      expect(error).toBeInstanceOf(OptimizerInputError);
      expect((error as Error).message).toMatch(
        /cannot read arrays over a SharedArrayBuffer; use kernels: 'auto' or 'ts'/,
      );
    }
    const auto = makeArena();
    auto.grads.fill(0.5);
    new AdamW().stepArena(auto, { pool });
    expect(auto.field('m')[0]).toBeCloseTo(0.05, 7);
  });

  it('needs shared memory, and refuses work once closed', () => {
    expect(() => new AdamW().stepArena(new FlatArena({ w: 4 }), { pool })).toThrow(/shared: true/);
    const arena = makeArena();
    expect(() => new AdamW().stepArena(arena, { pool, fp16Out: new Uint16Array(arena.size) })).toThrow(
      OptimizerInputError,
    );
    const closed = new ThreadPool(2);
    closed.close();
    expect(() => new AdamW().stepArena(makeArena(), { pool: closed })).toThrow(/ThreadPool is closed/);
    expect(() => new ThreadPool(0)).toThrow(/threads must be a positive integer/);
  });
});
