/**
 * The in-process session on the simulator against the float64 reference (ane-ir's `evaluate` of the
 * same training graph, per sequence, averaged over the batch).
 *
 * The bound (fp16): per parameter, max |ours − reference| ≤ 1% of max |reference| (the error
 * relative to the tensor's largest gradient, as in the autograd parity suite: the device stores
 * every intermediate in fp16, 2^-11 relative per value, and the backward chains some tens of such
 * roundings); the loss within 0.5% (its logits pass through fp16 once). A loss scale of 1024 keeps
 * the gradients clear of fp16's subnormals.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CheckpointError, ConfigError, DataError, TrainError } from '../errors';
import { normalizedError, referenceStep, TINY, tinyTokens, tinyWeights } from './runtime.test-helper';
import { type DeviceSession, openSession } from './session';

const GRAD_BOUND = 0.01;
const LOSS_BOUND = 0.005;
const SCALE = 1024;

describe('openSession (in-process, sim)', () => {
  const weights = tinyWeights();
  let session: DeviceSession;
  beforeAll(async () => {
    session = await openSession({ config: TINY, seq: 8, batch: 2, backend: 'sim' });
    await session.writeWeights(weights);
  });
  afterAll(() => session.dispose());

  it('returns the batch-mean loss and gradients of the float64 reference within the fp16 bound', async () => {
    const tokens = tinyTokens(2, 8);
    const { loss, grads, profile } = await session.step(tokens, SCALE);
    const reference = referenceStep(weights, tokens, 2, 8, SCALE);
    expect(Math.abs(loss - reference.loss) / reference.loss).toBeLessThan(LOSS_BOUND);
    expect([...grads.keys()]).toEqual([...reference.grads.keys()]);
    for (const [name, expected] of reference.grads) {
      const error = normalizedError(grads.get(name)!, expected);
      expect(error, name).toBeLessThan(GRAD_BOUND);
    }
    expect(session.where).toBe('in-process');
    expect(session.programs).toBeGreaterThan(0);
    expect(profile.totalMs).toBeGreaterThanOrEqual(profile.deviceMs);
  });

  it('divides by the runs when they are not a power of two (3 sequences run one at a time: the sums are divided on the host)', async () => {
    const three = await openSession({ config: TINY, seq: 8, batch: 3, sequences: 1, backend: 'sim' });
    try {
      await three.writeWeights(weights);
      const tokens = tinyTokens(3, 8, 5);
      const { loss, grads } = await three.step(tokens, SCALE);
      const reference = referenceStep(weights, tokens, 3, 8, SCALE);
      expect(Math.abs(loss - reference.loss) / reference.loss).toBeLessThan(LOSS_BOUND);
      for (const [name, expected] of reference.grads)
        expect(normalizedError(grads.get(name)!, expected), name).toBeLessThan(GRAD_BOUND);
      // As views: the same means, in buffers the session reuses from step to step.
      const first = await three.step(tokens, SCALE, { grads: 'view' });
      for (const [name, grad] of grads) expect(first.grads.get(name), name).toEqual(grad);
      const second = await three.step(tinyTokens(3, 8, 6), SCALE, { grads: 'view' });
      for (const [name, grad] of second.grads) expect(grad, name).toBe(first.grads.get(name));
    } finally {
      await three.dispose();
    }
  });

  it('computes several sequences in one run (each attending within itself), as the reference does per sequence', async () => {
    const tokens = tinyTokens(4, 8, 9);
    const reference = referenceStep(weights, tokens, 4, 8, SCALE);
    // The default (sequencesPerPass: all 4 in one run of 32 positions), 2 runs of 2, 4 runs of 1.
    for (const sequences of [undefined, 2, 1]) {
      const four = await openSession({
        config: TINY,
        seq: 8,
        batch: 4,
        backend: 'sim',
        ...(sequences ? { sequences } : {}),
      });
      try {
        await four.writeWeights(weights);
        const { loss, grads } = await four.step(tokens, SCALE);
        expect(Math.abs(loss - reference.loss) / reference.loss, `sequences ${sequences}`).toBeLessThan(
          LOSS_BOUND,
        );
        for (const [name, expected] of reference.grads)
          expect(normalizedError(grads.get(name)!, expected), `${name}, sequences ${sequences}`).toBeLessThan(
            GRAD_BOUND,
          );
      } finally {
        await four.dispose();
      }
    }
    for (const sequences of [3, 0, 1.5, 8])
      await expect(
        openSession({ config: TINY, seq: 8, batch: 4, sequences, backend: 'sim' }),
      ).rejects.toThrow(`sequences must be a whole number ≥ 1 that divides the batch (4), got ${sequences}`);
    await expect(
      openSession({ config: TINY, seq: 8, batch: 4, sequences: '2' as unknown as number, backend: 'sim' }),
    ).rejects.toThrow('got string "2"');
  });

  it('restages a written weight: the loss changes as the reference says', async () => {
    const tokens = tinyTokens(2, 8, 3);
    const changed = new Map([['lm_head.weight', weights.get('lm_head.weight')!.map((v) => v * 3)]]);
    await session.writeWeights(changed);
    const { loss } = await session.step(tokens, SCALE);
    const reference = referenceStep(new Map([...weights, ...changed]), tokens, 2, 8, SCALE);
    const before = referenceStep(weights, tokens, 2, 8, SCALE);
    expect(Math.abs(reference.loss - before.loss)).toBeGreaterThan(10 * LOSS_BOUND * before.loss); // the change matters
    expect(Math.abs(loss - reference.loss) / reference.loss).toBeLessThan(LOSS_BOUND);
    await session.writeWeights(new Map([['lm_head.weight', weights.get('lm_head.weight')!]]));
  });

  it('returns gradients the caller owns (the next step does not overwrite them)', async () => {
    const first = await session.step(tinyTokens(2, 8, 11), SCALE);
    const copy = first.grads.get('lm_head.weight')!.slice();
    await session.step(tinyTokens(2, 8, 12), SCALE);
    expect(first.grads.get('lm_head.weight')).toEqual(copy);
  });

  it("hands over the session's own buffers with { grads: 'view' }: the copies' values, overwritten by the next step", async () => {
    const tokens = tinyTokens(2, 8, 21);
    const copied = await session.step(tokens, SCALE);
    const viewed = await session.step(tokens, SCALE, { grads: 'view' });
    expect(viewed.loss).toBe(copied.loss);
    expect([...viewed.grads.keys()]).toEqual([...copied.grads.keys()]);
    for (const [name, grad] of copied.grads) expect(viewed.grads.get(name), name).toEqual(grad);
    const kept = new Map([...viewed.grads].map(([name, grad]) => [name, grad.slice()]));
    const next = await session.step(tinyTokens(2, 8, 22), SCALE, { grads: 'view' });
    // The same arrays, now holding the next step's gradients (the lifetime StepOptions documents).
    for (const [name, grad] of next.grads) expect(grad, name).toBe(viewed.grads.get(name));
    expect(next.grads.get('lm_head.weight')).not.toEqual(kept.get('lm_head.weight'));
    // A default step after views still returns fresh arrays, the caller's to keep.
    const fresh = await session.step(tokens, SCALE);
    for (const [name, grad] of fresh.grads) expect(grad, name).not.toBe(next.grads.get(name));
    expect(fresh.grads.get('lm_head.weight')).toEqual(copied.grads.get('lm_head.weight'));
  });

  it("computes the gradients straight into the arrays of { gradsInto } (batch 1): the copies' values, in the caller's arrays", async () => {
    const one = await openSession({ config: TINY, seq: 8, batch: 1, backend: 'sim' });
    try {
      await one.writeWeights(weights);
      const tokens = tinyTokens(1, 8, 31);
      const copied = await one.step(tokens, SCALE);
      const into = new Map<string, Float32Array>(
        [...copied.grads].map(([name, grad]) => [
          name,
          new Float32Array(new SharedArrayBuffer(grad.length * 4)),
        ]),
      );
      const viewed = await one.step(tokens, SCALE, { grads: 'view', gradsInto: into });
      expect(viewed.loss).toBe(copied.loss);
      for (const [name, grad] of copied.grads) {
        expect(viewed.grads.get(name), name).toBe(into.get(name));
        expect(into.get(name), name).toEqual(grad);
      }
      const next = await one.step(tinyTokens(1, 8, 32), SCALE, { grads: 'view', gradsInto: into });
      expect(next.grads.get('lm_head.weight')).toBe(into.get('lm_head.weight'));
      expect(into.get('lm_head.weight')).not.toEqual(copied.grads.get('lm_head.weight'));
      const short = new Map(into);
      short.set('lm_head.weight', new Float32Array(3));
      await expect(one.step(tokens, SCALE, { grads: 'view', gradsInto: short })).rejects.toThrow(
        /gradsInto: 'lm_head.weight' must be a Float32Array of \d+ values/,
      );
      await expect(one.step(tokens, SCALE, { gradsInto: into })).rejects.toThrow(/needs grads: 'view'/);
    } finally {
      await one.dispose();
    }
  });

  it('shares weights with { share: true }: the steps of copied weights, an in-place change restaged when written again', async () => {
    const shared = await openSession({ config: TINY, seq: 8, batch: 2, backend: 'sim' });
    try {
      const own = new Map([...weights].map(([name, values]) => [name, values.slice()]));
      // A resizable buffer cannot be shared: refused before anything is written.
      const Resizable = ArrayBuffer as unknown as new (
        bytes: number,
        options: { maxByteLength: number },
      ) => ArrayBuffer;
      const [firstName, firstValues] = [...own][0]!;
      const growable = new Float32Array(new Resizable(firstValues.byteLength, { maxByteLength: 1 << 24 }));
      await expect(
        shared.writeWeights(new Map([...own, [firstName, growable]]), { share: true }),
      ).rejects.toThrow(/resizable ArrayBuffer/);
      await shared.writeWeights(own, { share: true });
      const tokens = tinyTokens(2, 8, 41);
      const a = await shared.step(tokens, SCALE);
      const b = await session.step(tokens, SCALE);
      expect(a.loss).toBe(b.loss);
      for (const [name, grad] of b.grads) expect(a.grads.get(name), name).toEqual(grad);
      // An optimizer step in place, then the same arrays written again.
      for (const values of own.values()) for (let i = 0; i < values.length; i++) values[i] = values[i]! * 0.5;
      await shared.writeWeights(own, { share: true });
      const copy = await openSession({ config: TINY, seq: 8, batch: 2, backend: 'sim' });
      try {
        await copy.writeWeights(new Map([...own].map(([name, values]) => [name, values.slice()])));
        const c = await shared.step(tokens, SCALE);
        const d = await copy.step(tokens, SCALE);
        expect(c.loss).toBe(d.loss);
        expect(c.loss).not.toBe(a.loss);
        for (const [name, grad] of d.grads) expect(c.grads.get(name), name).toEqual(grad);
      } finally {
        await copy.dispose();
      }
    } finally {
      await shared.dispose();
    }
  });

  it('refuses bad step options with a ConfigError naming them', async () => {
    await expect(session.step(tinyTokens(2, 8), SCALE, { grads: 'borrow' } as never)).rejects.toThrow(
      /grads must be 'copy' or 'view', got string "borrow"/,
    );
    await expect(session.step(tinyTokens(2, 8), SCALE, { views: true } as never)).rejects.toThrow(
      /unknown step option 'views'/,
    );
    await expect(session.step(tinyTokens(2, 8), SCALE, 'view' as never)).rejects.toThrow(ConfigError);
  });

  it('refuses bad tokens with a DataError, and the next good step works', async () => {
    const outside = tinyTokens(2, 8);
    outside[12] = TINY.vocab_size; // sequence 1, position 3
    await expect(session.step(outside, SCALE)).rejects.toThrow(DataError);
    await expect(session.step(outside, SCALE)).rejects.toThrow(
      /token 64 at sequence 1, position 3 .*\[0, 64\)/,
    );
    const negative = tinyTokens(2, 8);
    negative[0] = -1;
    await expect(session.step(negative, SCALE)).rejects.toThrow(DataError);
    await expect(session.step(tinyTokens(2, 8).subarray(1), SCALE)).rejects.toThrow(
      /2 sequences of 9 tokens .* got 17/,
    );
    await expect(session.step(Float32Array.from(tinyTokens(2, 8)) as never, SCALE)).rejects.toThrow(
      /Int32Array .* got a Float32Array/,
    );
    await expect(session.step(tinyTokens(2, 8), 65536)).rejects.toThrow(ConfigError);
    await expect(session.step(tinyTokens(2, 8), 0)).rejects.toThrow(/lossScale/);
    const good = await session.step(tinyTokens(2, 8), SCALE);
    expect(Number.isFinite(good.loss)).toBe(true);
  });

  it('refuses unknown, mistyped and wrong-length weights by name, writing none of them', async () => {
    const typo = new Map([['model.layers.0.self_attn.q_proj.weigth', new Float32Array(32 * 32)]]);
    await expect(session.writeWeights(typo)).rejects.toThrow(CheckpointError);
    await expect(session.writeWeights(typo)).rejects.toThrow(
      /no parameter 'model\.layers\.0\.self_attn\.q_proj\.weigth'.*did you mean 'model\.layers\.0\.self_attn\.q_proj\.weight'/,
    );
    const short = new Map([
      ['model.norm.weight', new Float32Array(32).fill(100)],
      ['lm_head.weight', new Float32Array(10)],
    ]);
    await expect(session.writeWeights(short)).rejects.toThrow(
      /'lm_head\.weight' has 10 values, expected 2048 \(shape \[64, 32\]\)/,
    );
    await expect(
      session.writeWeights(new Map([['model.norm.weight', new Float64Array(32)]]) as never),
    ).rejects.toThrow(/Float32Array, got a Float64Array/);
    // model.norm.weight = 100 would have changed the loss: it was not written.
    const tokens = tinyTokens(2, 8);
    const { loss } = await session.step(tokens, SCALE);
    expect(Math.abs(loss - referenceStep(weights, tokens, 2, 8, SCALE).loss) / loss).toBeLessThan(LOSS_BOUND);
  });

  it('refuses a step before every weight was written, naming the missing ones', async () => {
    const fresh = await openSession({ config: TINY, seq: 8, batch: 1, backend: 'sim' });
    try {
      const partial = new Map([...weights].filter(([name]) => name !== 'model.norm.weight'));
      await fresh.writeWeights(partial);
      const error = await fresh.step(tinyTokens(1, 8), SCALE).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(CheckpointError);
      expect((error as CheckpointError).message).toMatch(
        /1 of the model's 21 weights were never written \('model\.norm\.weight'\)/,
      );
    } finally {
      await fresh.dispose();
    }
    await expect(fresh.step(tinyTokens(1, 8), SCALE)).rejects.toThrow(TrainError);
  });

  it('refuses a bad spec with a ConfigError naming the field', async () => {
    await expect(openSession({ config: TINY, seq: 8, batch: 0, backend: 'sim' })).rejects.toThrow(
      /batch must be/,
    );
    await expect(openSession({ config: TINY, seq: 8, batch: 1, backend: 'gpu' as never })).rejects.toThrow(
      ConfigError,
    );
  });
});
