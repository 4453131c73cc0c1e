/**
 * DeviceRuntime on the simulator: buckets per sequence length, the compile budget counted before
 * loading (cache hits free), hand-overs to fresh worker processes that give exactly the results of
 * an unconstrained runtime, a plan larger than a whole budget refused, a dead worker replaced.
 * The worker entry is bundled from the current source by the test helper (as dist/worker-main.js).
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { CheckpointError, ConfigError, TrainError } from '../errors';
import { buildTrainingGraph } from '../model/training-graph';
import { DeviceRuntime, type RuntimeEvent, type RuntimeStepResult } from './device-runtime';
import { buildWorkerEntryForTests, TINY, tinyTokens, tinyWeights } from './runtime.test-helper';

const SCALE = 1024;
let workerEntry: string;
beforeAll(async () => {
  workerEntry = await buildWorkerEntryForTests();
});

function programHashes(seq: number): string[] {
  return buildTrainingGraph(TINY, { seq }).plan.programs.map((p) => p.hash);
}

/** Runs `seqs` in order, nudging one weight after every step (as an optimizer would, in place). */
async function run(
  seqs: number[],
  compileBudget?: number,
): Promise<{ results: RuntimeStepResult[]; events: RuntimeEvent[]; runtime: DeviceRuntime }> {
  const events: RuntimeEvent[] = [];
  const runtime = new DeviceRuntime({
    config: TINY,
    batch: 2,
    backend: 'sim',
    workerEntry,
    ...(compileBudget !== undefined ? { compileBudget } : {}),
    onEvent: (event) => events.push(event),
  });
  const weights = tinyWeights();
  runtime.setWeights(weights);
  const results: RuntimeStepResult[] = [];
  try {
    for (const [i, seq] of seqs.entries()) {
      results.push(await runtime.step(tinyTokens(2, seq, i + 1), seq, SCALE));
      const norm = weights.get('model.norm.weight')!;
      for (let j = 0; j < norm.length; j++) norm[j] = norm[j]! * 0.9 + 0.01 * i;
      runtime.setWeights(new Map([['model.norm.weight', norm]]));
    }
  } finally {
    await runtime.dispose();
  }
  return { results, events, runtime };
}

describe('DeviceRuntime', () => {
  it('counts compiles per process: a second bucket compiles only the programs the first did not', async () => {
    const a = programHashes(8);
    const b = programHashes(12);
    const shared = b.filter((h) => a.includes(h)).length;
    const { results, events, runtime } = await run([8, 12, 8]);
    expect(results.map((r) => r.where)).toEqual(['in-process', 'in-process', 'in-process']);
    expect(results.every((r) => r.backend === 'sim' && !r.handedOver)).toBe(true);
    const compiles = events.filter((e) => e.type === 'compile');
    expect(compiles.map((e) => [e.seq, e.programs, e.cached])).toEqual([
      [8, a.length, 0],
      [12, b.length - shared, shared],
    ]);
    expect(runtime.handOvers).toBe(0);
  });

  it('hands over to fresh workers under a small budget and returns exactly the unconstrained results, step for step', async () => {
    const a = programHashes(8);
    const b = programHashes(12);
    const fresh12 = b.filter((h) => !a.includes(h)).length;
    // Room for one bucket and a bit, not for the second one's new programs.
    const budget = Math.max(a.length, b.length) + 1;
    expect(fresh12).toBeGreaterThan(budget - a.length); // the premise: both do not fit one process
    const seqs = [8, 12, 8, 12, 12];
    const free = await run(seqs);
    const tight = await run(seqs, budget);
    expect(tight.results.map((r) => r.where)).toEqual(['in-process', 'worker', 'worker', 'worker', 'worker']);
    expect(tight.results.map((r) => r.handedOver)).toEqual([false, true, true, true, false]);
    expect(tight.runtime.handOvers).toBe(3);
    const handOvers = tight.events.filter((e) => e.type === 'hand-over');
    expect(handOvers[0]).toMatchObject({
      from: 'in-process',
      to: expect.stringMatching(/^worker \d+ \(pid \d+\)$/),
      programs: b.length,
      budget: { used: a.length, limit: budget },
    });
    expect(handOvers[0]!.reason).toMatch(
      new RegExp(
        `seq 12 needs ${fresh12} more compiles and in-process has ${budget - a.length} of its ${budget} left`,
      ),
    );
    expect(handOvers[1]!.from).toBe(handOvers[0]!.to);
    // Known before the run: compilePlan predicts the hand-overs and every compile the run made.
    const compiled = (events: RuntimeEvent[]) =>
      events.reduce((sum, e) => sum + (e.type === 'compile' ? e.programs : 0), 0);
    const plan = (compileBudget?: number) =>
      new DeviceRuntime({
        config: TINY,
        batch: 2,
        backend: 'sim',
        ...(compileBudget ? { compileBudget } : {}),
      }).compilePlan(seqs);
    expect(plan(budget)).toEqual({
      buckets: [
        { seq: 8, programs: a.length },
        { seq: 12, programs: b.length },
      ],
      compiles: compiled(tight.events),
      processes: 4,
      handOvers: 3,
      limit: budget,
    });
    expect(compiled(tight.events)).toBe(2 * a.length + 2 * b.length);
    expect(plan()).toMatchObject({ compiles: a.length + fresh12, processes: 1, handOvers: 0 });
    expect(compiled(free.events)).toBe(a.length + fresh12);
    for (const [i, expected] of free.results.entries()) {
      const got = tight.results[i]!;
      expect(got.loss, `step ${i}`).toBe(expected.loss);
      for (const [name, grad] of expected.grads)
        expect(got.grads.get(name), `step ${i} ${name}`).toEqual(grad);
    }
    // Different weights per step: the restaged norm weight did change the results.
    expect(free.results[2]!.loss).not.toBe(free.results[0]!.loss);
  }, 60_000);

  it('refuses a plan larger than a whole process budget, saying how many programs it needs', async () => {
    const needed = programHashes(8).length;
    const runtime = new DeviceRuntime({
      config: TINY,
      batch: 2,
      backend: 'sim',
      compileBudget: needed - 1,
      workerEntry,
    });
    runtime.setWeights(tinyWeights());
    expect(() => runtime.compilePlan([8])).toThrow(
      /compiles \d+ programs, more than a whole process may compile/,
    );
    try {
      const error = await runtime.step(tinyTokens(2, 8), 8, SCALE).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ConfigError);
      expect((error as Error).message).toMatch(
        new RegExp(
          `seq 8 compiles ${needed} programs, more than a whole process may compile \\(compileBudget ${needed - 1}\\)`,
        ),
      );
      expect(runtime.handOvers).toBe(0);
    } finally {
      await runtime.dispose();
    }
  });

  it('a worker killed mid-step is a TrainError; the next step runs in a fresh worker with the same result', async () => {
    const budget = programHashes(8).length;
    const events: RuntimeEvent[] = [];
    const runtime = new DeviceRuntime({
      config: TINY,
      batch: 2,
      backend: 'sim',
      compileBudget: budget,
      workerEntry,
      onEvent: (e) => events.push(e),
    });
    runtime.setWeights(tinyWeights());
    try {
      await runtime.step(tinyTokens(2, 8), 8, SCALE); // in-process, budget now full
      const first = await runtime.step(tinyTokens(2, 12), 12, SCALE); // hands over
      expect(first.where).toBe('worker');
      const worker = events.filter((e) => e.type === 'hand-over').at(-1)!;
      const pid = Number(/pid (\d+)/.exec(worker.type === 'hand-over' ? worker.to : '')![1]);
      const pending = runtime.step(tinyTokens(2, 12, 9), 12, SCALE);
      process.kill(pid, 'SIGKILL');
      const error = await pending.catch((e: unknown) => e);
      expect(error).toBeInstanceOf(TrainError);
      expect((error as Error).message).toMatch(/was killed by signal SIGKILL/);
      const again = await runtime.step(tinyTokens(2, 12), 12, SCALE);
      expect(again.where).toBe('worker');
      expect(again.handedOver).toBe(true);
      expect(again.loss).toBe(first.loss);
      expect(events.at(-2)).toMatchObject({ type: 'hand-over', reason: expect.stringMatching(/died/) });
    } finally {
      await runtime.dispose();
    }
  }, 60_000);

  it('with a shared budget (the default on the ANE), a second runtime in this process counts the first one’s compiles', async () => {
    const programs = programHashes(8).length;
    const open = (sharedBudget: boolean, events: RuntimeEvent[]) =>
      new DeviceRuntime({
        config: TINY,
        batch: 1,
        backend: 'sim',
        compileBudget: programs + 1,
        sharedBudget,
        workerEntry,
        onEvent: (e) => events.push(e),
      });
    const firstEvents: RuntimeEvent[] = [];
    const first = open(true, firstEvents);
    const separate = open(false, []);
    const secondEvents: RuntimeEvent[] = [];
    const second = open(true, secondEvents);
    try {
      for (const runtime of [first, separate, second]) runtime.setWeights(tinyWeights());
      expect((await first.step(tinyTokens(1, 8), 8, SCALE)).where).toBe('in-process');
      // Not sharing: its own device's count only.
      expect((await separate.step(tinyTokens(1, 8), 8, SCALE)).where).toBe('in-process');
      // Sharing: the process has 1 compile left, the plan needs `programs` (a fresh device would not know).
      const result = await second.step(tinyTokens(1, 8), 8, SCALE);
      expect(result.where).toBe('worker');
      expect(secondEvents[0]).toMatchObject({
        type: 'hand-over',
        from: 'in-process',
        budget: { used: programs, limit: programs + 1 },
      });
      expect(first.compiles).toEqual({ used: programs, limit: programs + 1 });
    } finally {
      await Promise.all([first.dispose(), separate.dispose(), second.dispose()]);
    }
  }, 60_000);

  it('checks weights when they are set and before the first step', async () => {
    const runtime = new DeviceRuntime({ config: TINY, batch: 1, backend: 'sim' });
    try {
      expect(() => runtime.setWeights(new Map([['model.norm.weigth', new Float32Array(32)]]))).toThrow(
        /no parameter 'model.norm.weigth'/,
      );
      expect(() => runtime.setWeights(new Map([['model.norm.weight', new Float32Array(31)]]))).toThrow(
        /'model.norm.weight' must be a Float32Array of 32 values, got 31 values/,
      );
      runtime.setWeights(new Map([['model.norm.weight', new Float32Array(32)]]));
      await expect(runtime.step(tinyTokens(1, 8), 8, SCALE)).rejects.toThrow(CheckpointError);
      await expect(runtime.step(tinyTokens(1, 8), 8, SCALE)).rejects.toThrow(/weights were never set/);
    } finally {
      await runtime.dispose();
    }
    await expect(runtime.step(tinyTokens(1, 8), 8, SCALE)).rejects.toThrow(TrainError);
  });
});
