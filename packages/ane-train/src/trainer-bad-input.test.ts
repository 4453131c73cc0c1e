/**
 * Bad input at the Trainer's entry points, as a new user meets it: every case is a typed error that
 * names the fix (never a TypeError, a RangeError, a hang or a silently wrong run), and the Trainer
 * stays usable (or disposable) afterwards.
 */
import { SGD } from 'ane-optim';
import { afterEach, describe, expect, it } from 'vitest';
import { BatchSampler } from './data/sampler';
import { ConfigError, DataError, TrainError } from './errors';
import { SMALL } from './testing/small-model';
import { Trainer, type TrainerOptions } from './trainer';

const STREAM = Uint16Array.from({ length: 200 }, (_, i) => (i * 7) % SMALL.vocab_size);

const open: Trainer[] = [];
function trainer(options: Partial<TrainerOptions> = {}): Trainer {
  const t = new Trainer({ model: SMALL, backend: 'sim', seq: 8, ...options });
  open.push(t);
  return t;
}
afterEach(async () => {
  while (open.length > 0) await open.pop()!.dispose();
});

/** One micro-batch of `batch` sequences of 9 tokens (seq 8). */
function microBatch(offset: number, batch = 1): Int32Array {
  return Int32Array.from({ length: batch * 9 }, (_, i) => (i * 3 + offset) % SMALL.vocab_size);
}

describe('Trainer: bad input is a typed, actionable error', () => {
  it('refuses micro-batch items that Int32Array would silently change (strings, fractions, ids past 2^31, null)', async () => {
    const t = trainer();
    // Int32Array.from turns each of these into valid-looking ids (0, 1, 1): the run would train on
    // data the user never gave.
    await expect(t.fit(['abcdefghi'] as never, { steps: 1 })).rejects.toThrow(DataError);
    await expect(t.fit([Array.from({ length: 9 }, () => 1.5)], { steps: 1 })).rejects.toThrow(
      /token 0 is 1\.5, outside the vocabulary/,
    );
    await expect(t.fit([Array.from({ length: 9 }, () => 2 ** 32 + 1)], { steps: 1 })).rejects.toThrow(
      /token 0 is 4294967297/,
    );
    await expect(t.fit([null] as never, { steps: 1 })).rejects.toThrow(/micro-batch 0 is null/);
    await expect(t.fit(Array.from({ length: 20 }, () => '1') as never, { steps: 1 })).rejects.toThrow(
      DataError,
    );
    expect(t.step).toBe(0);
    // Still usable.
    expect((await t.fit(STREAM, { steps: 1 })).steps).toHaveLength(1);
  }, 60_000);

  it('refuses a token stream whose resizable buffer shrinks during the run instead of reading zeros', async () => {
    // Node 20's resizable ArrayBuffer (ES2024; this package's TypeScript lib is older).
    const Resizable = ArrayBuffer as unknown as new (
      length: number,
      options: { maxByteLength: number },
    ) => ArrayBuffer & { resize(length: number): void };
    const buffer = new Resizable(STREAM.byteLength, { maxByteLength: STREAM.byteLength * 2 });
    const tokens = new Uint16Array(buffer); // length-tracking
    tokens.set(STREAM);
    const t = trainer();
    const run = t.fit(tokens, { steps: 3, callbacks: { onStepEnd: () => buffer.resize(4) } });
    await expect(run).rejects.toThrow(/the token stream changed length during fit \(200 → 2 tokens\)/);
    expect(t.step).toBe(1);
    // Buffers and views into a larger ArrayBuffer are token streams like any other.
    const arena = new ArrayBuffer(1000);
    const view = new Uint16Array(arena, 100, STREAM.length);
    view.set(STREAM);
    const fromView = await trainer({ seed: 3 }).fit(view, { steps: 1 });
    const fromCopy = await trainer({ seed: 3 }).fit(Uint16Array.from(STREAM), { steps: 1 });
    expect(fromView.history.loss).toEqual(fromCopy.history.loss);
    const bytes = Buffer.from(Uint8Array.from(STREAM));
    const fromBuffer = await trainer({ seed: 3 }).fit(bytes, { steps: 1 });
    expect(fromBuffer.history.loss).toEqual(fromCopy.history.loss);
    await expect(t.fit(BigInt64Array.from(STREAM, BigInt) as never, { steps: 1 })).rejects.toThrow(
      /BigInt64Array.*Int32Array/,
    );
  }, 60_000);

  it('a micro-batch round that failed part-way leaves nothing behind for the next step', async () => {
    // accumulate 2: the first fit gets one micro-batch and stops with a DataError. The next step
    // must average its own two micro-batches only, exactly as a fresh Trainer does.
    const options = { accumulate: 2, optimizer: new SGD({ learningRate: 0.5 }), lossScale: false as const };
    const failed = trainer(options);
    await expect(failed.fit([microBatch(7)], { steps: 1 })).rejects.toThrow(/ran out in the middle/);
    await failed.fit([microBatch(1), microBatch(2)], { steps: 1 });
    const fresh = trainer({ ...options, optimizer: new SGD({ learningRate: 0.5 }) });
    await fresh.fit([microBatch(1), microBatch(2)], { steps: 1 });
    for (const [name, values] of fresh.weights) expect(failed.weights.get(name), name).toEqual(values);
  }, 60_000);

  it('refuses a second fit while one runs, and a fit after dispose, with TrainError', async () => {
    const t = trainer();
    const first = t.fit(STREAM, { steps: 2 });
    await expect(t.fit(STREAM, { steps: 2 })).rejects.toThrow(
      /fit is already running on this Trainer: await it/,
    );
    expect(() => t.loadWeights(t.weights)).toThrow(/loadWeights: fit is running on this Trainer/);
    expect((await first).steps).toHaveLength(2);
    const before = t.weights.get('model.norm.weight')!.slice();
    await t.dispose();
    const zeros = new Map([...t.weights].map(([name, values]) => [name, new Float32Array(values.length)]));
    expect(() => t.loadWeights(zeros)).toThrow(/loadWeights: this Trainer was disposed/);
    expect(t.weights.get('model.norm.weight')).toEqual(before); // the refused call changed nothing
    await expect(t.fit(STREAM, { steps: 1 })).rejects.toThrow(TrainError);
    await expect(t.fit(STREAM, { steps: 1 })).rejects.toThrow(/disposed: create a new Trainer/);
  }, 60_000);

  it('dispose during fit lets the step in flight finish, then the run stops with a TrainError', async () => {
    const t = trainer();
    let disposed: Promise<void> | undefined;
    const run = t.fit(STREAM, {
      steps: 10,
      callbacks: {
        onStepEnd: (log) => {
          if (log.step === 1) disposed = t.dispose();
        },
      },
    });
    await expect(run).rejects.toThrow(/the Trainer was disposed during fit, after 2 steps/);
    await disposed;
    expect(t.step).toBe(2);
    // Disposed before the first step (here from onTrainBegin): the same TrainError, no device call.
    const early = trainer();
    await expect(
      early.fit(STREAM, { steps: 3, callbacks: { onTrainBegin: () => early.dispose() } }),
    ).rejects.toThrow(/the Trainer was disposed during fit, after 0 steps of 3/);
  }, 60_000);

  it('a callback that throws stops the run with its own error; the Trainer stays usable and disposable', async () => {
    const t = trainer();
    const boom = new Error('callback failed');
    await expect(
      t.fit(STREAM, {
        steps: 5,
        callbacks: {
          onStepEnd: () => {
            throw boom;
          },
        },
      }),
    ).rejects.toBe(boom);
    expect(t.step).toBe(1);
    expect((await t.fit(STREAM, { steps: 1 })).steps).toHaveLength(1);
    // A runtime event is reported when a bucket loads: a fresh Trainer's first step.
    const fresh = trainer();
    await expect(
      fresh.fit(STREAM, {
        steps: 1,
        callbacks: {
          onRuntimeEvent: () => {
            throw boom;
          },
        },
      }),
    ).rejects.toBe(boom);
    expect(fresh.step).toBe(0);
    expect((await fresh.fit(STREAM, { steps: 1 })).steps).toHaveLength(1);
    await fresh.dispose();
  }, 60_000);

  it('refuses bad fit options before running anything', async () => {
    const t = trainer();
    await expect(t.fit(STREAM, null as never)).rejects.toThrow(ConfigError);
    await expect(t.fit(STREAM, { steps: '3' as never })).rejects.toThrow(/steps .* got the string '3'/);
    await expect(t.fit(STREAM, { epochs: 3 } as never)).rejects.toThrow(/unknown fit option 'epochs'/);
    await expect(t.fit(STREAM, { callbacks: { onStepEnd: 5 } as never })).rejects.toThrow(
      /callbacks\.onStepEnd must be a function/,
    );
    await expect(t.fit(STREAM, { callbacks: { onEpochEnd: () => {} } as never })).rejects.toThrow(
      /unknown callback 'onEpochEnd'/,
    );
    await expect(t.fit(STREAM, { signal: {} as never })).rejects.toThrow(/signal must be an AbortSignal/);
    expect(t.step).toBe(0);
  }, 60_000);

  it('refuses sizes that cannot be allocated, an optimizer that is not one, and non-finite weights', async () => {
    await expect(trainer({ batch: 1e9 }).fit(STREAM, { steps: 1 })).rejects.toThrow(ConfigError);
    expect(() => new Trainer({ model: { ...SMALL, vocab_size: 1e9 }, backend: 'sim' })).toThrow(ConfigError);
    expect(() => new Trainer({ model: SMALL, backend: 'sim', optimizer: {} as never })).toThrow(
      /optimizer must be an ane-optim optimizer/,
    );
    // Refused when constructed, not at the first step (chip) or thousands of steps in (a loss scale
    // that grows past fp16's range), and as ane-train's ConfigError.
    expect(() => new Trainer({ model: SMALL, backend: 'sim', chip: 'M9' as never })).toThrow(
      /chip must be one of M1, M2, M3, M4, M5, got the string 'M9'/,
    );
    expect(() => new Trainer({ model: SMALL, backend: 'sim', lossScale: { maxScale: 65536 } })).toThrow(
      /lossScale\.maxScale 65536 is above 32768/,
    );
    expect(() => new Trainer({ model: SMALL, backend: 'sim', lossScale: { initScale: -1 } })).toThrow(
      ConfigError,
    );
    expect(() => new Trainer({ model: SMALL, backend: 'sim', lossScale: 1024 as never })).toThrow(
      /lossScale must be DynamicLossScaler options/,
    );
    const weights = trainer().weights;
    weights.get('model.norm.weight')![3] = Number.NaN;
    expect(() => new Trainer({ model: SMALL, backend: 'sim', weights })).toThrow(
      /'model.norm.weight' holds NaN at index 3/,
    );
  }, 60_000);
});

describe('Trainer: a BatchSampler of another batch size', () => {
  it('is a DataError before any step (its micro-batches were read as fewer, longer sequences of glued windows)', async () => {
    const t = trainer({ batch: 2 });
    // batch 4 × (seq 8 + 1) = 36 tokens = 2 × 18: it passed as two sequences of S = 17
    const sampler = new BatchSampler(STREAM, { batch: 4, seq: 8, seed: 1 });
    for (const run of [() => t.fit(sampler, { steps: 1 }), () => t.evaluate(sampler, { batches: 1 })]) {
      const error = await run().catch((e: unknown) => e);
      expect(error).toBeInstanceOf(DataError);
      expect((error as DataError).message).toMatch(
        /the BatchSampler draws batch 4 × \(seq 8 \+ 1\) tokens, but this Trainer's batch is 2: create the BatchSampler with batch 2/,
      );
    }
    expect(t.step).toBe(0);
    // the same batch size trains, at the sampler's seq
    const history = await t.fit(new BatchSampler(STREAM, { batch: 2, seq: 8, seed: 1 }), { steps: 1 });
    expect(history.steps.length).toBe(1);
  }, 60_000);
});

describe('Trainer: an async onRuntimeEvent that rejects', () => {
  it('fails the run with its error (it was an unhandled rejection, which ends a Node process)', async () => {
    const t = trainer();
    const run = t.fit(STREAM, {
      steps: 2,
      callbacks: {
        onRuntimeEvent: async (event) => {
          throw new Error(`listener failed on ${event.type}`);
        },
      },
    });
    await expect(run).rejects.toThrow('listener failed on compile');
    // the Trainer stays usable, and the next run does not inherit the error
    const history = await t.fit(STREAM, { steps: 1 });
    expect(history.steps.length).toBe(1);
  }, 60_000);
});
