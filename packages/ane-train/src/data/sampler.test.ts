import { describe, expect, it } from 'vitest';
import { ConfigError, DataError } from '../errors';
import { BatchSampler, type SamplerState, sequentialBatches, splitCorpus } from './sampler';

/** tokens[i] = i, so a window's first token is its start. */
function ramp(n: number): Uint16Array {
  return Uint16Array.from({ length: n }, (_, i) => i);
}

/** The window starts of a batch of `batch` sequences of seq + 1 tokens. */
function starts(batch: Int32Array, seq: number): number[] {
  const out: number[] = [];
  for (let b = 0; b < batch.length / (seq + 1); b++) {
    const row = [...batch.subarray(b * (seq + 1), (b + 1) * (seq + 1))];
    // each row is seq + 1 consecutive tokens
    expect(row).toEqual(row.map((_, k) => row[0]! + k));
    out.push(row[0]!);
  }
  return out;
}

describe('splitCorpus', () => {
  it('validation is the contiguous tail (default 10%)', () => {
    const tokens = ramp(100);
    const { train, validation } = splitCorpus(tokens);
    expect([train.length, validation.length]).toEqual([90, 10]);
    expect([train[89], validation[0], validation[9]]).toEqual([89, 90, 99]);
    expect(splitCorpus(tokens, { validationFraction: 0 }).validation.length).toBe(0);
    expect(splitCorpus(Int32Array.from(tokens), { validationFraction: 0.25 }).validation.length).toBe(25);
    expect(() => splitCorpus(tokens, { validationFraction: 1 })).toThrow(ConfigError);
    expect(() => splitCorpus(tokens, { validationFraction: -0.1 })).toThrow(/in \[0, 1\)/);
    expect(() => splitCorpus([1, 2] as unknown as Uint16Array)).toThrow(DataError);
  });
});

describe('BatchSampler', () => {
  it('shuffle false: windows of S+1 at stride S, in order, [B, S+1] int32; epochs wrap', () => {
    // 11 tokens, seq 3: windows at 0, 3, 6 (6..9 is the last whole one; 9..12 would run past 10)
    const sampler = new BatchSampler(ramp(11), { batch: 2, seq: 3, shuffle: false });
    expect(sampler.windows).toBe(3);
    const first = sampler.next();
    expect(first).toBeInstanceOf(Int32Array);
    expect([...first]).toEqual([0, 1, 2, 3, 3, 4, 5, 6]);
    // window 6 is left over (fewer than a batch): the next epoch starts again at 0
    expect(starts(sampler.next(), 3)).toEqual([0, 3]);
    expect(sampler.state()).toMatchObject({ epoch: 1, position: 2 });
  });

  it('shuffled: each epoch visits every window once in a seeded order; same seed, same batches', () => {
    const seq = 4;
    const tokens = ramp(8 * seq + 1); // windows 0, 4, …, 28
    const a = new BatchSampler(tokens, { batch: 2, seq, seed: 7 });
    const b = new BatchSampler(tokens, { batch: 2, seq, seed: 7 });
    const c = new BatchSampler(tokens, { batch: 2, seq, seed: 8 });
    const epochA = [0, 1, 2, 3].flatMap(() => starts(a.next(), seq));
    const epochB = [0, 1, 2, 3].flatMap(() => starts(b.next(), seq));
    const epochC = [0, 1, 2, 3].flatMap(() => starts(c.next(), seq));
    expect(epochA).toEqual(epochB);
    expect([...epochA].sort((x, y) => x - y)).toEqual([0, 4, 8, 12, 16, 20, 24, 28]);
    expect(epochA).not.toEqual([0, 4, 8, 12, 16, 20, 24, 28]);
    expect(epochC).not.toEqual(epochA);
    const secondEpoch = [0, 1, 2, 3].flatMap(() => starts(a.next(), seq));
    expect([...secondEpoch].sort((x, y) => x - y)).toEqual([0, 4, 8, 12, 16, 20, 24, 28]);
    expect(secondEpoch).not.toEqual(epochA); // a new order per epoch
    expect(a.state()).toMatchObject({ seed: 7, epoch: 1, position: 8 });
  });

  it('restore(state()) continues exactly as the original, mid-epoch and across epochs, through JSON', () => {
    const tokens = Int32Array.from(ramp(10 * 5 + 3));
    for (const shuffle of [true, false]) {
      for (const taken of [0, 1, 4, 5, 11]) {
        const original = new BatchSampler(tokens, { batch: 2, seq: 5, seed: 3, shuffle });
        for (let i = 0; i < taken; i++) original.next();
        const saved = JSON.parse(JSON.stringify(original.state())) as SamplerState;
        const resumed = new BatchSampler(tokens, { batch: 2, seq: 5, seed: 99, shuffle });
        resumed.restore(saved);
        for (let i = 0; i < 12; i++)
          expect([...resumed.next()], `${shuffle} ${taken} ${i}`).toEqual([...original.next()]);
      }
    }
  });

  it('the iterator yields the same batches as next()', () => {
    const tokens = ramp(40);
    const viaNext = new BatchSampler(tokens, { batch: 1, seq: 4, seed: 1 });
    const got: number[][] = [];
    for (const batch of new BatchSampler(tokens, { batch: 1, seq: 4, seed: 1 })) {
      got.push([...batch]);
      if (got.length === 12) break;
    }
    expect(got).toEqual(got.map(() => [...viaNext.next()]));
  });

  it('too few tokens for one batch: DataError naming the file; bad options: ConfigError', () => {
    // batch 2 × seq 4 + 1 = 9 tokens needed
    expect(() => new BatchSampler(ramp(9), { batch: 2, seq: 4 })).not.toThrow();
    try {
      new BatchSampler(ramp(8), { batch: 2, seq: 4, file: 'tiny.bin' });
      expect.unreachable();
    } catch (error) {
      expect(error).toBeInstanceOf(DataError);
      expect((error as DataError).details.file).toBe('tiny.bin');
      expect((error as DataError).message).toMatch(
        /tiny\.bin: 8 tokens are fewer than one batch needs \(batch 2 × seq 4 \+ 1 = 9\): use more data, a smaller batch or seq, or a smaller validation fraction \(when part of the data is held out for validation, these are the training tokens only\)$/,
      );
    }
    expect(() => new BatchSampler(ramp(100), { batch: 0, seq: 4 })).toThrow(ConfigError);
    expect(() => new BatchSampler(ramp(100), { batch: 1, seq: 2.5 })).toThrow(
      /seq must be a positive integer/,
    );
    expect(() => new BatchSampler(ramp(100), { batch: 1, seq: 4, seed: 0.5 })).toThrow(ConfigError);
  });

  it('restore refuses a state of other data or options', () => {
    const sampler = new BatchSampler(ramp(100), { batch: 2, seq: 4, seed: 1 });
    const state = sampler.state();
    const other = (patch: Partial<Record<keyof SamplerState, unknown>>) =>
      ({ ...state, ...patch }) as unknown as SamplerState;
    expect(() => sampler.restore(other({ tokens: 101 }))).toThrow(
      /stream of 101 tokens, these tokens are 100/,
    );
    expect(() => sampler.restore(other({ seq: 5 }))).toThrow(/batch 2 × seq 5/);
    expect(() => sampler.restore(other({ shuffle: false }))).toThrow(/shuffle false/);
    expect(() => sampler.restore(other({ position: 25 }))).toThrow(/outside these 24 windows/);
    expect(() => sampler.restore(other({ epoch: 1.5 }))).toThrow(/epoch is 1.5, not a whole number/);
    expect(() => sampler.restore(other({ format: 'x' }))).toThrow(DataError);
    expect(() => sampler.restore(null as unknown as SamplerState)).toThrow(DataError);
  });
});

describe('sequentialBatches', () => {
  it('every whole batch in order, once; at most maxBatches', () => {
    const batches = sequentialBatches(ramp(26), { batch: 2, seq: 5 }); // windows 0 5 10 15 20
    expect(batches.map((b) => starts(b, 5))).toEqual([
      [0, 5],
      [10, 15],
    ]);
    expect(sequentialBatches(ramp(26), { batch: 1, seq: 5, maxBatches: 3 }).length).toBe(3);
    expect(() => sequentialBatches(ramp(5), { batch: 1, seq: 5, file: 'v.bin' })).toThrow(
      /^validation: v\.bin: 5 tokens are fewer than one batch needs \(batch 1 × seq 5 \+ 1 = 6\): use a larger validation fraction/,
    );
  });
});

describe('BatchSampler: edited states, odd options and changing buffers', () => {
  it('restore refuses a position that is not a multiple of the batch and numbers beyond 2^53 (an edited state)', () => {
    const sampler = new BatchSampler(ramp(100), { batch: 2, seq: 4, seed: 1 });
    const state = sampler.state();
    const other = (patch: Partial<Record<keyof SamplerState, unknown>>) =>
      ({ ...state, ...patch }) as unknown as SamplerState;
    // position 3 of batch 2 was taken: windows 3 and 4, a batch no run ever drew
    expect(() => sampler.restore(other({ position: 3 }))).toThrow(
      /position 3 is not a multiple of the batch \(2\)/,
    );
    expect(() => sampler.restore(other({ epoch: 1e300 }))).toThrow(/epoch is 1e\+300, not a whole number/);
    expect(() => sampler.restore(other({ seed: 2 ** 60 }))).toThrow(DataError);
    // and the constructor refuses such a seed too (its own state() would not restore)
    expect(() => new BatchSampler(ramp(100), { batch: 2, seq: 4, seed: 2 ** 60 })).toThrow(ConfigError);
    expect(sampler.state()).toEqual(state); // nothing changed
    sampler.restore(other({ position: 4, epoch: 2 }));
    expect(sampler.state()).toMatchObject({ position: 4, epoch: 2 });
  });

  it('shuffle must be a boolean ("no" shuffled and was saved as "no"); file must be a string', () => {
    expect(() => new BatchSampler(ramp(100), { batch: 2, seq: 4, shuffle: 'no' as never })).toThrow(
      /shuffle must be true or false/,
    );
    expect(() => new BatchSampler(ramp(100), { batch: 2, seq: 4, file: 7 as never })).toThrow(ConfigError);
  });

  it('tokens on a resizable ArrayBuffer that shrinks: a DataError, not batches of zeros', () => {
    // Node 20 has resizable ArrayBuffers; the es2022 lib has no types for them
    type Resizable = ArrayBuffer & { resize(byteLength: number): void };
    const Resizable = ArrayBuffer as unknown as new (
      byteLength: number,
      options: { maxByteLength: number },
    ) => Resizable;
    const buffer = new Resizable(200, { maxByteLength: 400 });
    const tokens = new Uint16Array(buffer); // length-tracking
    tokens.set(ramp(100));
    const sampler = new BatchSampler(tokens, { batch: 2, seq: 4, shuffle: false });
    expect(starts(sampler.next(), 4)).toEqual([0, 4]);
    buffer.resize(40);
    expect(() => sampler.next()).toThrow(/tokens were 100 long and are now 20/);
  });

  it('sequentialBatches: maxBatches 0, negative or NaN is a ConfigError (it silently gave no batches)', () => {
    for (const maxBatches of [0, -1, Number.NaN, 1.5]) {
      expect(() => sequentialBatches(ramp(26), { batch: 1, seq: 5, maxBatches })).toThrow(ConfigError);
    }
  });
});
