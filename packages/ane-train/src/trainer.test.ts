import { AdamW, FlatArena, globalNorm, SGD } from 'ane-optim';
import { afterEach, describe, expect, it } from 'vitest';
import { ConfigError, DataError } from './errors';
import { buildTrainingGraph, initParameters, parameterSpecs } from './model';
import { openSession } from './runtime/session';
import { SMALL } from './testing/small-model';
import { type History, Trainer, type TrainerOptions } from './trainer';

/** A token stream with structure to learn: a 7-token cycle with one of two branches. */
function patternTokens(length: number, vocab: number): Uint16Array {
  const cycle = [1, 5, 9, 2, 7, 3, 11];
  return Uint16Array.from({ length }, (_, i) => cycle[i % cycle.length]! % vocab);
}

/**
 * `count` micro-batches of `batch` sequences of 17 tokens (seq 16 + 1): micro-batch m, sequence b
 * starts at token m * stride + b * offset.
 */
function microBatches(tokens: Uint16Array, count: number, batch: number, stride: number, offset: number) {
  return Array.from({ length: count }, (_, m) => {
    const out = new Int32Array(batch * 17);
    for (let b = 0; b < batch; b++) {
      const from = m * stride + b * offset;
      out.set(tokens.subarray(from, from + 17), b * 17);
    }
    return out;
  });
}

/** A FlatArena of SMALL's parameters holding `weights` (the reference optimizer's). */
function arenaWith(weights: Map<string, Float32Array>): FlatArena {
  const specs = parameterSpecs(SMALL);
  const arena = new FlatArena(specs.map((spec) => [spec.name, [...spec.shape]] as [string, number[]]));
  for (const spec of specs) arena.view(spec.name).set(weights.get(spec.name)!);
  return arena;
}

const open: Trainer[] = [];
function trainer(options: TrainerOptions): Trainer {
  const t = new Trainer(options);
  open.push(t);
  return t;
}
afterEach(async () => {
  while (open.length > 0) await open.pop()!.dispose();
});

describe('Trainer.fit', () => {
  it('trains the tiny preset in the simulator: loss from ln(256) ≈ 5.55 to below 1.0 in 40 steps', async () => {
    const t = trainer({
      model: 'tiny',
      backend: 'sim',
      seq: 32,
      batch: 2,
      optimizer: new AdamW({ learningRate: 3e-3, weightDecay: 0 }),
    });
    const text = new TextEncoder().encode('the cat sat on the mat. '.repeat(40));
    const history = await t.fit(Uint16Array.from(text), { steps: 40 });
    const losses = history.history.loss;
    expect(losses).toHaveLength(40);
    expect(losses[0]).toBeGreaterThan(5.3);
    expect(losses[0]).toBeLessThan(5.8);
    expect(Math.min(...losses.slice(-5))).toBeLessThan(1.0);
    expect(history.history.backend.every((b) => b === 'sim')).toBe(true);
    expect(history.skippedSteps).toBe(0);
    const log = history.steps[39]!;
    expect(log.tokensPerSecond).toBeGreaterThan(0);
    expect(log.profile.deviceMs).toBeGreaterThan(0);
    expect(log.profile.optimizerMs).toBeGreaterThan(0);
  }, 120_000);

  it('stops on an AbortSignal that a timer aborts, even when every step completes on the JS thread', async () => {
    // The tiny preset's kernels and host ops are small enough to run on the JS thread: a step can
    // complete without leaving the microtask queue, so fit must give timers their turn itself.
    const t = trainer({ model: 'tiny', backend: 'sim', seq: 16, batch: 2 });
    const text = new TextEncoder().encode('the cat sat on the mat. '.repeat(40));
    await t.fit(Uint16Array.from(text), { steps: 3 }); // warm: compiled, small kernels timed
    const controller = new AbortController();
    let timerRan = 0;
    setTimeout(() => {
      timerRan = t.step;
      controller.abort();
    }, 100);
    // Bounded, so that a loop that never yields ends (and fails) instead of hanging the suite.
    const history = await t.fit(Uint16Array.from(text), { steps: 2000, signal: controller.signal });
    expect(history.aborted, `ran all ${history.steps.length} steps: the timer never ran`).toBe(true);
    expect(timerRan).toBeGreaterThan(3);
    expect(t.step).toBeLessThanOrEqual(timerRan + 1); // at most the step in flight after the abort
  }, 120_000);

  it('a run forced through a small compile budget equals an unconstrained one, step for step', async () => {
    // Two sequence lengths, alternating: each is its own plan. A budget just above one plan's
    // program count cannot hold both, so device work keeps moving to fresh worker processes.
    const programs = buildTrainingGraph(SMALL, { seq: 8 }).plan.programs.length;
    const data = () =>
      Array.from({ length: 6 }, (_, i) => {
        const seq = i % 2 === 0 ? 8 : 12;
        return Int32Array.from({ length: 2 * (seq + 1) }, (_, j) => (j * 5 + i) % SMALL.vocab_size);
      });
    const run = async (compileBudget?: number) => {
      const events: string[] = [];
      const t = trainer({
        model: SMALL,
        backend: 'sim',
        batch: 2,
        ...(compileBudget !== undefined ? { compileBudget } : {}),
        optimizer: new AdamW({ learningRate: 1e-2 }),
      });
      const history = await t.fit(data(), {
        steps: 6,
        callbacks: { onRuntimeEvent: (event) => events.push(event.type) },
      });
      return { history, weights: t.weights, events };
    };
    const free = await run();
    const tight = await run(programs + 2);
    expect(free.history.handOvers).toBe(0);
    expect(tight.history.handOvers).toBeGreaterThanOrEqual(2);
    expect(tight.events).toContain('hand-over');
    expect(tight.history.steps.map((s) => s.where)).toContain('worker');
    expect(tight.history.history.loss).toEqual(free.history.history.loss);
    for (const [name, values] of free.weights) expect(tight.weights.get(name), name).toEqual(values);
  }, 180_000);

  it('accumulating two micro-batches of one sequence equals one batch of two', async () => {
    const tokens = patternTokens(200, SMALL.vocab_size);
    const sequences = [Int32Array.from(tokens.subarray(0, 17)), Int32Array.from(tokens.subarray(3, 20))];
    const both = new Int32Array(34);
    both.set(sequences[0]!, 0);
    both.set(sequences[1]!, 17);
    // SGD with learning rate 1 and no clipping: each weight moves by exactly minus its gradient.
    const sgd = () => new SGD({ learningRate: 1 });
    const common = { model: SMALL, backend: 'sim', gradClip: false, lossScale: false } as const;
    const accumulated = trainer({ ...common, accumulate: 2, optimizer: sgd() });
    const batched = trainer({ ...common, batch: 2, optimizer: sgd() });
    const start = accumulated.weights.get('model.layers.0.self_attn.q_proj.weight')!.slice();
    const a = await accumulated.fit(sequences, { steps: 1 });
    const b = await batched.fit([both], { steps: 1 });
    expect(a.history.loss[0]).toBeCloseTo(b.history.loss[0]!, 5);
    const wa = accumulated.weights.get('model.layers.0.self_attn.q_proj.weight')!;
    const wb = batched.weights.get('model.layers.0.self_attn.q_proj.weight')!;
    const largest = Math.max(...wa.map((v, i) => Math.abs(v - start[i]!)));
    expect(largest).toBeGreaterThan(1e-4);
    const worst = Math.max(...wa.map((v, i) => Math.abs(v - wb[i]!)));
    // Not bit-equal: the batch sums its sequences' gradients inside the executor, the accumulator
    // outside, in another order (0.2% of the largest update measured): well inside fp16's bound.
    expect(worst).toBeLessThan(1e-2 * largest);
  }, 60_000);

  it("equals, bit for bit, the step spelled out with plain fp32 loops on the session's fresh copies", async () => {
    // fit takes the gradients as the session's views and unscales, clips and accumulates them on
    // ane-bridge's kernels; the reference takes fresh copies and does each operation as a loop, in
    // the order the Trainer promises: mean of the micro-batches, unscale by 1/scale, clip
    // (torch's coefficient), SGD with momentum, restage. A batch of 3 (divided on the host), a loss
    // scale that is not a power of two (inexact unscaling) and that grows, clipping on every step.
    const specs = parameterSpecs(SMALL);
    const weights = initParameters(SMALL, { seed: 3 });
    const tokens = patternTokens(400, SMALL.vocab_size);
    const steps = 3;
    const accumulate = 2;
    const micro = microBatches(tokens, steps * accumulate, 3, 29, 7);
    const maxNorm = 0.05;
    const sgd = () => new SGD({ learningRate: 0.1, momentum: 0.9 });
    const t = trainer({
      model: SMALL,
      backend: 'sim',
      weights,
      batch: 3,
      accumulate,
      gradClip: maxNorm,
      lossScale: { initScale: 1000, growthInterval: 2 },
      optimizer: sgd(),
    });
    const history = await t.fit(micro, { steps });
    expect(history.skippedSteps).toBe(0);

    const f = Math.fround;
    const arena = arenaWith(weights);
    const optimizer = sgd();
    const session = await openSession({ config: SMALL, seq: 16, batch: 3, backend: 'sim' });
    const losses: number[] = [];
    const norms: number[] = [];
    try {
      for (let step = 0; step < steps; step++) {
        await session.writeWeights(new Map(specs.map((spec) => [spec.name, arena.view(spec.name)])));
        const scale = 1000 * 2 ** Math.floor(step / 2); // grows after every 2 clean steps
        const sums = new Map<string, Float32Array>();
        let loss = 0;
        for (let m = 0; m < accumulate; m++) {
          const result = await session.step(micro[step * accumulate + m]!, scale);
          loss += result.loss;
          for (const [name, grad] of result.grads) {
            const sum = sums.get(name);
            if (sum === undefined) sums.set(name, grad);
            else for (let i = 0; i < sum.length; i++) sum[i] = sum[i]! + grad[i]!;
          }
        }
        losses.push(loss / accumulate);
        const inverse = f(1 / scale);
        for (const sum of sums.values()) {
          for (let i = 0; i < sum.length; i++) sum[i] = sum[i]! / accumulate;
          for (let i = 0; i < sum.length; i++) sum[i] = sum[i]! * inverse;
        }
        const norm = globalNorm([...sums.values()]);
        norms.push(norm);
        const coefficient = f(f(1 / f(f(norm) + f(1e-6))) * f(maxNorm));
        expect(coefficient).toBeLessThan(1);
        for (const [name, sum] of sums) {
          for (let i = 0; i < sum.length; i++) sum[i] = sum[i]! * coefficient;
          arena.view(name, 'grads').set(sum);
        }
        optimizer.stepArena(arena);
      }
    } finally {
      await session.dispose();
    }
    expect(history.history.loss).toEqual(losses);
    expect(history.steps.map((s) => s.gradNorm)).toEqual(norms);
    expect(history.history.lossScale).toEqual([1000, 1000, 2000]);
    for (const spec of specs) expect(t.weights.get(spec.name), spec.name).toEqual(arena.view(spec.name));
  }, 60_000);

  it('with a power-of-two loss scale (unscale and clip folded into the update) equals unscaling, clipping and updating one after the other, bit for bit', async () => {
    // fit checks the scaled gradients' norm once and hands AdamW 1/scale · the clip factor as its
    // gradScale; the reference unscales and clips the session's gradients with plain fp32 loops,
    // then steps an AdamW of its own. Batch 2, one micro-batch (gradients computed into the
    // Trainer's arena), a scale that grows, clipping on every step.
    const specs = parameterSpecs(SMALL);
    const weights = initParameters(SMALL, { seed: 5 });
    const tokens = patternTokens(400, SMALL.vocab_size);
    const steps = 3;
    const micro = microBatches(tokens, steps, 2, 31, 9);
    const maxNorm = 0.05;
    const adamw = () => new AdamW({ learningRate: 0.01, weightDecay: 0.1 });
    const t = trainer({
      model: SMALL,
      backend: 'sim',
      weights,
      batch: 2,
      gradClip: maxNorm,
      lossScale: { initScale: 512, growthInterval: 2 },
      optimizer: adamw(),
    });
    const history = await t.fit(micro, { steps });
    expect(history.skippedSteps).toBe(0);

    const f = Math.fround;
    const arena = arenaWith(weights);
    const optimizer = adamw();
    const session = await openSession({ config: SMALL, seq: 16, batch: 2, backend: 'sim' });
    const norms: number[] = [];
    try {
      for (let step = 0; step < steps; step++) {
        await session.writeWeights(new Map(specs.map((spec) => [spec.name, arena.view(spec.name)])));
        const scale = 512 * 2 ** Math.floor(step / 2);
        const result = await session.step(micro[step]!, scale);
        const inverse = f(1 / scale);
        const grads = [...result.grads].map(([name, grad]) => {
          const unscaled = grad.map((g) => g * inverse);
          return [name, unscaled] as const;
        });
        const norm = globalNorm(grads.map(([, g]) => g));
        norms.push(norm);
        const coefficient = f(f(1 / f(f(norm) + f(1e-6))) * f(maxNorm));
        expect(coefficient).toBeLessThan(1);
        for (const [name, grad] of grads) arena.view(name, 'grads').set(grad.map((g) => g * coefficient));
        optimizer.stepArena(arena);
      }
    } finally {
      await session.dispose();
    }
    expect(history.steps.map((s) => s.gradNorm)).toEqual(norms);
    expect(history.history.lossScale).toEqual([512, 512, 1024]);
    for (const spec of specs) expect(t.weights.get(spec.name), spec.name).toEqual(arena.view(spec.name));
  }, 60_000);

  it('skips a step whose gradients overflow, lowers the scale, and leaves the weights alone', async () => {
    // A classifier table with entries ~3 and a loss scale of 32768: the classifier's input gradient
    // (tableᵀ · dlogits, on the device) passes the fp16 matmul ceiling 32752 and becomes inf.
    const weights = initParameters(SMALL, { seed: 3 });
    for (const [i, v] of weights.get('model.embed_tokens.weight')!.entries()) {
      weights.get('model.embed_tokens.weight')![i] = v * 150;
    }
    const t = trainer({ model: SMALL, backend: 'sim', seq: 2, weights, lossScale: { initScale: 32768 } });
    const before = new Float32Array(t.weights.get('model.norm.weight')!);
    const history = await t.fit(patternTokens(100, SMALL.vocab_size), { steps: 1 });
    expect(history.steps[0]!.skipped).toBe(true);
    expect(Number.isFinite(history.steps[0]!.loss)).toBe(true);
    expect(history.skippedSteps).toBe(1);
    expect(t.lossScaler!.scale).toBe(16384);
    expect(t.weights.get('model.norm.weight')).toEqual(before);
    expect(t.optimizer.step).toBe(0);
    // It backs off until the gradients fit, then trains.
    const more = await t.fit(patternTokens(100, SMALL.vocab_size), { steps: 12 });
    expect(more.steps.at(-1)!.skipped).toBe(false);
    expect(t.optimizer.step).toBe(12 - more.skippedSteps);
    expect(t.lossScaler!.scale).toBeLessThan(16384);
  }, 120_000);

  it('stops cleanly on its AbortSignal after the step in flight, and reports each step to callbacks', async () => {
    const controller = new AbortController();
    const seen: number[] = [];
    const t = trainer({ model: SMALL, backend: 'sim', seq: 16 });
    const history: History = await t.fit(patternTokens(100, SMALL.vocab_size), {
      steps: 50,
      signal: controller.signal,
      callbacks: {
        onStepEnd: (log) => {
          seen.push(log.step);
          if (log.step === 2) controller.abort();
        },
      },
    });
    expect(seen).toEqual([0, 1, 2]);
    expect(history.aborted).toBe(true);
    expect(history.steps).toHaveLength(3);
    expect(t.step).toBe(3);
  }, 60_000);

  it('refuses bad options and data with typed errors that name the fix', async () => {
    expect(() => new Trainer({ model: 'tiny', lr: 1 } as never)).toThrow(/unknown option 'lr'/);
    expect(() => new Trainer({ model: 'tiny', batch: 0 })).toThrow(ConfigError);
    expect(() => new Trainer({ model: 'tiny', seq: 1000 })).toThrow(/max_position_embeddings \(256\)/);
    expect(() => new Trainer({ model: 'nope' as never })).toThrow(/unknown model preset 'nope'/);
    expect(
      () => new Trainer({ model: SMALL, weights: { 'model.norm.weight': new Float32Array(32) } }),
    ).toThrow(/'model.embed_tokens.weight' is missing/);
    const t = trainer({ model: SMALL, backend: 'sim', seq: 16 });
    await expect(t.fit(Uint16Array.of(1, 2, 3))).rejects.toThrow(/fewer than one sequence of seq \+ 1 = 17/);
    await expect(t.fit(patternTokens(40, 64).map((v, i) => (i === 9 ? 40 : v)))).rejects.toThrow(DataError);
    await expect(t.fit([new Int32Array(1)], { steps: 1 })).rejects.toThrow(/micro-batch 0 holds 1 tokens/);
    await expect(t.fit(42 as never)).rejects.toThrow(/data must be a token stream/);
    // Nothing was trained by the refused calls.
    expect(t.step).toBe(0);
  }, 60_000);
});
