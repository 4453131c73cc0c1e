/**
 * Trainer.saveState / loadState / evaluate: a run stopped and resumed (in the same Trainer or in a
 * fresh one) continues bit for bit as if it had never stopped, a state that does not fit is refused
 * without changing anything, and evaluate measures without training.
 */
import { AdamW, cosineDecay, SGD } from 'ane-optim';
import { afterEach, describe, expect, it } from 'vitest';
import { BatchSampler } from './data/sampler';
import { CheckpointError, ConfigError, TrainError } from './errors';
import { SMALL } from './testing/small-model';
import { Trainer, type TrainerOptions, type TrainerState } from './trainer';

/** A token stream with some structure: a 7-token cycle with a slow drift. */
const STREAM = Uint16Array.from({ length: 300 }, (_, i) => ([1, 5, 9, 2, 7, 3, 11][i % 7]! + (i >> 6)) % 32);

const open: Trainer[] = [];
/** SMALL in the simulator; AdamW on a cosine schedule, 2 micro-batches per step, a loss scale that grows every 3 steps. */
function trainer(options: Partial<TrainerOptions> = {}): Trainer {
  const t = new Trainer({
    model: SMALL,
    backend: 'sim',
    seq: 8,
    batch: 2,
    accumulate: 2,
    seed: 7,
    optimizer: new AdamW({ learningRate: cosineDecay(1e-2, 20, 1e-3), weightDecay: 0.1 }),
    lossScale: { initScale: 256, growthInterval: 3 },
    ...options,
  });
  open.push(t);
  return t;
}
afterEach(async () => {
  while (open.length > 0) await open.pop()!.dispose();
});

function snapshot(t: Trainer): Map<string, Float32Array> {
  return new Map([...t.weights].map(([name, values]) => [name, values.slice()]));
}

function expectSameWeights(a: Map<string, Float32Array>, b: Map<string, Float32Array>): void {
  expect([...a.keys()]).toEqual([...b.keys()]);
  for (const [name, values] of a) {
    // Bit for bit: compare the raw bits, not within a tolerance.
    expect(new Uint32Array(b.get(name)!.buffer.slice(0)), name).toEqual(
      new Uint32Array(values.buffer.slice(0)),
    );
  }
}

describe('Trainer state: resume continues bit for bit', () => {
  it('fit(4) + saveState + a fresh Trainer + loadWeights/loadState + fit(4) equals fit(8), losses and weights', async () => {
    const whole = trainer();
    const wholeLosses = (await whole.fit(STREAM, { steps: 8 })).history.loss;

    const first = trainer();
    const firstLosses = (await first.fit(STREAM, { steps: 4 })).history.loss;
    const state = first.saveState();
    const weights = snapshot(first);
    await first.dispose();
    // A JSON round trip of everything but the optimizer's buffers (as a checkpoint stores it).
    const stored: TrainerState = {
      ...(JSON.parse(
        JSON.stringify({ ...state, optimizer: { meta: state.optimizer.meta } }),
      ) as TrainerState),
      optimizer: { meta: structuredClone(state.optimizer.meta), data: state.optimizer.data.slice() },
    };

    const second = trainer({ seed: 999 }); // the state's seed wins
    second.loadWeights(weights);
    second.loadState(stored);
    expect(second.step).toBe(4);
    const secondLosses = (await second.fit(STREAM, { steps: 4 })).history.loss;

    expect([...firstLosses, ...secondLosses]).toEqual(wholeLosses);
    expectSameWeights(snapshot(whole), snapshot(second));
    expect(second.lossScaler!.scale).toBe(whole.lossScaler!.scale);
    expect(second.optimizer.step).toBe(whole.optimizer.step);
    expect(second.optimizer.learningRate).toBe(whole.optimizer.learningRate);
  }, 120_000);

  it('fit(3) then fit(5) on one Trainer equals fit(8): the windows of step k depend on k, not on the fit call', async () => {
    const whole = trainer();
    const wholeLosses = (await whole.fit(STREAM, { steps: 8 })).history.loss;
    const split = trainer();
    const a = (await split.fit(STREAM, { steps: 3 })).history.loss;
    const b = (await split.fit(STREAM, { steps: 5 })).history.loss;
    expect([...a, ...b]).toEqual(wholeLosses);
    expectSameWeights(snapshot(whole), snapshot(split));
  }, 120_000);

  it('a state saved before the first step loads into a Trainer that has trained, which then starts afresh', async () => {
    const reference = trainer();
    const referenceLosses = (await reference.fit(STREAM, { steps: 3 })).history.loss;
    const fresh = trainer();
    const state = fresh.saveState();
    const initial = snapshot(fresh);
    const t = trainer();
    await t.fit(STREAM, { steps: 2 });
    t.loadWeights(initial);
    t.loadState(state);
    expect(t.step).toBe(0);
    expect((await t.fit(STREAM, { steps: 3 })).history.loss).toEqual(referenceLosses);
    expectSameWeights(snapshot(reference), snapshot(t));
  }, 120_000);
});

describe('Trainer.loadState refuses a state that does not fit, and changes nothing', () => {
  it('another optimizer, loss scaling on vs off, another model shape, bad counters: CheckpointError naming the field', async () => {
    const source = trainer();
    await source.fit(STREAM, { steps: 1 });
    const state = source.saveState();

    const sgd = trainer({ optimizer: new SGD({ learningRate: 0.1 }) });
    expect(() => sgd.loadState(state)).toThrow(/AdamW optimizer but this Trainer's is SGD/);

    const unscaled = trainer({ lossScale: false });
    expect(() => unscaled.loadState(state)).toThrow(/created with lossScale: false/);
    expect(() => source.loadState({ ...state, lossScaler: null })).toThrow(CheckpointError);

    const wider = trainer({ model: { ...SMALL, intermediate_size: 96 } });
    let error: unknown;
    try {
      wider.loadState(state);
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(CheckpointError);
    expect((error as CheckpointError).message).toMatch(/mlp\.\w+_proj\.weight' is for shape \[/);
    expect((error as CheckpointError).details.field).toBe('shape');

    expect(() => source.loadState({ ...state, step: -1 })).toThrow(/step must be a whole number/);
    expect(() => source.loadState({ ...state, lossScaler: { ...state.lossScaler!, scale: 1e9 } })).toThrow(
      /lossScaler\.scale/,
    );
    // A corrupt optimizer buffer (NaN) is refused by ane-optim, surfaced as a CheckpointError.
    const corrupt = state.optimizer.data.slice();
    corrupt[3] = Number.NaN;
    expect(() => source.loadState({ ...state, optimizer: { ...state.optimizer, data: corrupt } })).toThrow(
      CheckpointError,
    );
    expect(() => source.loadState(null as never)).toThrow(CheckpointError);

    // None of the refusals changed the source: it goes on exactly as a twin that was never refused.
    const twin = trainer();
    await twin.fit(STREAM, { steps: 1 });
    const a = (await source.fit(STREAM, { steps: 2 })).history.loss;
    const b = (await twin.fit(STREAM, { steps: 2 })).history.loss;
    expect(a).toEqual(b);
    expectSameWeights(snapshot(source), snapshot(twin));
  }, 120_000);

  it('refuses loadState during fit and after dispose with a TrainError', async () => {
    const t = trainer();
    const state = t.saveState();
    let during: unknown;
    await t.fit(STREAM, {
      steps: 1,
      callbacks: {
        onStepEnd: () => {
          try {
            t.loadState(state);
          } catch (error) {
            during = error;
          }
        },
      },
    });
    expect(during).toBeInstanceOf(TrainError);
    await t.dispose();
    expect(() => t.loadState(state)).toThrow(TrainError);
  }, 60_000);
});

describe('Trainer.evaluate', () => {
  it('is the loss fit reports for the same micro-batches before its update, and changes nothing', async () => {
    const batches = [0, 1, 2].map((k) => Int32Array.from({ length: 2 * 9 }, (_, i) => STREAM[k * 20 + i]!));
    const t = trainer({ accumulate: 1, lossScale: false });
    const before = snapshot(t);
    const loss = await t.evaluate(batches);
    expect(t.step).toBe(0);
    expect(t.optimizer.step).toBe(0);
    expectSameWeights(before, snapshot(t));
    // fit's step k reports the loss of batch k under the weights before step k's update: with
    // learning rate 0 the weights never change, so the mean of fit's losses is evaluate's value.
    const frozen = trainer({ accumulate: 1, lossScale: false, optimizer: new SGD({ learningRate: 0 }) });
    const history = await frozen.fit(batches, { steps: 3 });
    const mean = history.history.loss.reduce((a, b) => a + b, 0) / 3;
    expect(loss).toBeCloseTo(mean, 6);
    // Untrained, the model is close to uniform over the 32 tokens: ln 32 ≈ 3.47.
    expect(Math.abs(loss - Math.log(32))).toBeLessThan(0.3);
    // `batches` limits an endless source; a token stream is cut into consecutive windows.
    function* endless() {
      for (;;) yield batches[0]!;
    }
    expect(await t.evaluate(endless(), { batches: 2 })).toBeCloseTo(await t.evaluate([batches[0]!]), 6);
    const stream = Uint16Array.from([...batches[0]!, ...batches[1]!]);
    expect(await t.evaluate(stream)).toBeCloseTo(await t.evaluate(batches.slice(0, 2)), 6);
    // Training lowers it.
    await t.fit(STREAM, { steps: 6 });
    expect(await t.evaluate(batches)).toBeLessThan(loss);
  }, 120_000);

  it('refuses empty data and a bad batches option', async () => {
    const t = trainer({ accumulate: 1 });
    await expect(t.evaluate((function* () {})())).rejects.toThrow(/holds no micro-batch/);
    await expect(t.evaluate(Uint16Array.of(1, 2, 3))).rejects.toThrow(/fewer than one micro-batch/);
    await expect(t.evaluate(STREAM, { batches: 0 })).rejects.toThrow(/batches must be a whole number/);
    await expect(t.evaluate(null as never)).rejects.toThrow(/^evaluate\(data\): data must be a token stream/);
    await expect(t.evaluate(STREAM, null as never)).rejects.toThrow(/options must be an object/);
    let during: unknown;
    await t.fit(STREAM, {
      steps: 1,
      callbacks: {
        onStepEnd: async () => {
          during = await t.evaluate(STREAM).catch((error: unknown) => error);
        },
      },
    });
    expect(during).toBeInstanceOf(TrainError);
    expect((during as Error).message).toMatch(/between fit calls/);
  }, 60_000);

  it('a BatchSampler (endless) without batches is a ConfigError at once, not a loop that never returns', async () => {
    const t = trainer({ accumulate: 1, lossScale: false });
    const sampler = new BatchSampler(STREAM, { batch: 2, seq: 8, shuffle: false });
    const state = sampler.state();
    const error = await Promise.race([
      t.evaluate(sampler).catch((e: unknown) => e),
      new Promise((resolve) => setTimeout(() => resolve('still running after 10 s'), 10_000)),
    ]);
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).message).toMatch(/a BatchSampler never ends.*pass \{ batches: N \}/);
    expect(sampler.state()).toEqual(state); // nothing drawn
    // with a limit it is the mean of that many of its batches
    const first = [new BatchSampler(STREAM, { batch: 2, seq: 8, shuffle: false }).next()];
    expect(await t.evaluate(sampler, { batches: 1 })).toBeCloseTo(await t.evaluate(first), 6);
  }, 60_000);
});
