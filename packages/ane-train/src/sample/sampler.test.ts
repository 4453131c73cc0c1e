/**
 * `Sampler` on the simulator: its forward logits against PyTorch (the llama-gqa and qwen3-gqa
 * fixtures of tools/refgen/llama_grads.py: the mean cross-entropy of our logits at the fixture's targets is
 * PyTorch's float64 loss within 1e-3 relative, the fp16 bound grads.test.ts uses) and against the
 * training graph's loss on the same tokens; generation replayed on the host from `logits` and
 * `sampleToken` (greedy = host argmax, seeded draws, the window sliding, EOS), and its errors.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CheckpointError, ConfigError, DataError, TrainError } from '../errors';
import { readSafetensorsFile, tensorToFloat32 } from '../io/safetensors';
import { readTokenFile } from '../io/tokens';
import { parseLlamaConfig } from '../model/config';
import { initParameters } from '../model/parameters';
import { uniformSource } from '../random';
import { openSession } from '../runtime/session';
import { SMALL } from '../testing/small-model';
import { argmax, sampleToken } from './sample-token';
import { Sampler } from './sampler';

/** Mean over positions of −log softmax(row)[target], in float64; logits [n, V] row-major. */
function meanCrossEntropy(logits: Float32Array, vocab: number, targets: ArrayLike<number>): number {
  let total = 0;
  for (let s = 0; s < targets.length; s++) {
    const row = logits.subarray(s * vocab, (s + 1) * vocab);
    let max = Number.NEGATIVE_INFINITY;
    for (const v of row) max = Math.max(max, v);
    let sum = 0;
    for (const v of row) sum += Math.exp(v - max);
    total += Math.log(sum) + max - row[targets[s]!]!;
  }
  return total / targets.length;
}

/** The last row of `logits` [n, V]. */
function lastRow(logits: Float32Array, vocab: number): Float32Array {
  return logits.subarray(logits.length - vocab);
}

describe('Sampler.logits against PyTorch (sim)', () => {
  // llama-gqa: seq 64; qwen3-gqa (q/k norms, head_dim 48, theta 1e6): seq 32; two sequences each.
  it.each(['llama-gqa', 'qwen3-gqa'])(
    "%s: the mean cross-entropy at the targets is the fixture's loss (1e-3 relative)",
    async (name) => {
      const fixture = join(__dirname, '..', '..', 'fixtures', name);
      const config = parseLlamaConfig(JSON.parse(await readFile(join(fixture, 'config.json'), 'utf8')));
      const w = await readSafetensorsFile(join(fixture, 'weights.safetensors'));
      const weights = new Map([...w.tensors].map(([key, t]) => [key, tensorToFloat32(t)]));
      const expected = await readSafetensorsFile(join(fixture, 'expected.safetensors'));
      const expectedLoss = Number(expected.metadata.loss);
      const tokens = await readTokenFile(join(fixture, 'tokens.bin')); // 2 sequences of seq + 1
      const seq = config.max_position_embeddings;
      expect(tokens.length).toBe(2 * (seq + 1));
      await using sampler = await Sampler.open({ model: config, weights, backend: 'sim' });
      expect(sampler.seq).toBe(seq); // min(256, max_position_embeddings)
      let loss = 0;
      for (let b = 0; b < 2; b++) {
        const row = tokens.subarray(b * (seq + 1), (b + 1) * (seq + 1));
        const logits = await sampler.logits(row.subarray(0, seq));
        expect(logits.length).toBe(seq * config.vocab_size);
        loss += meanCrossEntropy(logits, config.vocab_size, row.subarray(1)) / 2;
      }
      expect(Math.abs(loss - expectedLoss) / expectedLoss).toBeLessThan(1e-3);
    },
    120_000,
  );
});

describe('Sampler (SMALL model, sim)', () => {
  const SEQ = 16;
  // Weights with a larger spread than the default init so the logits are far from uniform.
  const weights = initParameters(SMALL, { seed: 11, std: 0.3 });
  let sampler: Sampler;
  beforeAll(async () => {
    sampler = await Sampler.open({ model: SMALL, weights, backend: 'sim', seq: SEQ });
  });
  afterAll(() => sampler.dispose());
  const prompt = [3, 14, 15, 9, 2];

  it("logits agree with the training graph's loss on the same tokens", async () => {
    const row = Int32Array.from({ length: SEQ + 1 }, (_, i) => (i * 7 + 3) % SMALL.vocab_size);
    const session = await openSession({ config: SMALL, seq: SEQ, batch: 1, backend: 'sim' });
    try {
      await session.writeWeights(weights);
      const { loss } = await session.step(row, 1);
      const ours = meanCrossEntropy(
        await sampler.logits(row.subarray(0, SEQ)),
        SMALL.vocab_size,
        row.subarray(1),
      );
      expect(Math.abs(ours - loss) / loss).toBeLessThan(1e-3);
    } finally {
      await session.dispose();
    }
  });

  it('right-padding changes nothing at the real positions (causal attention)', async () => {
    const full = Array.from({ length: SEQ }, (_, i) => (i * 5 + 1) % SMALL.vocab_size);
    const all = await sampler.logits(full);
    const prefix = await sampler.logits(full.slice(0, 4));
    expect(prefix.length).toBe(4 * SMALL.vocab_size);
    for (let i = 0; i < prefix.length; i++) expect(prefix[i]).toBeCloseTo(all[i]!, 3);
  });

  it('temperature 0 generates the host argmax of logits at each step; top-k 1 and a tiny top-p are the same', async () => {
    const greedy = await sampler.generate(prompt, { temperature: 0, maxTokens: 6 });
    expect(greedy.tokens.length).toBe(6);
    expect(greedy.stoppedBy).toBe('maxTokens');
    const context = [...prompt];
    for (const id of greedy.tokens) {
      expect(id).toBe(argmax(lastRow(await sampler.logits(context), SMALL.vocab_size)));
      context.push(id);
    }
    expect((await sampler.generate(prompt, { topK: 1, maxTokens: 6, seed: 1 })).tokens).toEqual(
      greedy.tokens,
    );
    expect((await sampler.generate(prompt, { topP: 1e-6, maxTokens: 6, seed: 2 })).tokens).toEqual(
      greedy.tokens,
    );
    expect(greedy.tokensPerSecond).toBeGreaterThan(0);
    expect(greedy.ms).toBeGreaterThan(0);
  });

  it('a fixed seed gives the same tokens, which are the host replay of sampleToken; another seed differs', async () => {
    const options = { temperature: 1.5, topK: 20, topP: 0.95, maxTokens: 8 };
    const a = await sampler.generate(prompt, { ...options, seed: 1234 });
    const b = await sampler.generate(prompt, { ...options, seed: 1234 });
    const c = await sampler.generate(prompt, { ...options, seed: 99 });
    expect(a.seed).toBe(1234);
    expect(b.tokens).toEqual(a.tokens);
    expect(c.tokens).not.toEqual(a.tokens);
    const random = uniformSource(1234);
    const context = [...prompt];
    for (const id of a.tokens) {
      expect(id).toBe(sampleToken(lastRow(await sampler.logits(context), SMALL.vocab_size), options, random));
      context.push(id);
    }
    // Without a seed a random one is chosen and reported: it reproduces the run.
    const unseeded = await sampler.generate(prompt, options);
    expect((await sampler.generate(prompt, { ...options, seed: unseeded.seed })).tokens).toEqual(
      unseeded.tokens,
    );
  });

  it('seeds 2^32 apart draw different tokens (0, 2^32 and 2^40 drew the same: only 32 bits were kept)', async () => {
    const options = { temperature: 1.5, maxTokens: 12 };
    const seeds = [0, 2 ** 32, 2 ** 40, 2 ** 32 - 1, -1, Number.MAX_SAFE_INTEGER];
    const runs: string[] = []; // one generation at a time
    for (const seed of seeds) runs.push((await sampler.generate(prompt, { ...options, seed })).tokens.join());
    expect(new Set(runs).size).toBe(seeds.length);
    // the reported seed is the one given, and it reproduces the run
    const big = await sampler.generate(prompt, { ...options, seed: 2 ** 40 });
    expect(big.seed).toBe(2 ** 40);
    expect(big.tokens.join()).toBe(runs[2]);
  });

  it('slides the window past seq tokens (the last seq tokens), or stops with slide: false', async () => {
    const long = await sampler.generate(prompt, { temperature: 0, maxTokens: SEQ + 4 });
    expect(long.tokens.length).toBe(SEQ + 4);
    const context = [...prompt, ...long.tokens];
    // The last token came from a window of the seq tokens before it.
    const window = context.slice(context.length - 1 - SEQ, context.length - 1);
    expect(long.tokens.at(-1)).toBe(argmax(lastRow(await sampler.logits(window), SMALL.vocab_size)));
    const stopped = await sampler.generate(prompt, { temperature: 0, maxTokens: 100, slide: false });
    expect(stopped.stoppedBy).toBe('context');
    expect(stopped.tokens).toEqual(long.tokens.slice(0, SEQ - prompt.length + 1));
  });

  it('stops at eosId (not included, not streamed); onToken streams every generated token', async () => {
    const greedy = await sampler.generate(prompt, { temperature: 0, maxTokens: 8 });
    const eosId = greedy.tokens[3]!;
    const firstEos = greedy.tokens.indexOf(eosId);
    const streamed: number[] = [];
    const result = await sampler.generate(prompt, {
      temperature: 0,
      maxTokens: 8,
      eosId,
      onToken: (id) => streamed.push(id),
    });
    expect(result.stoppedBy).toBe('eos');
    expect(result.tokens).toEqual(greedy.tokens.slice(0, firstEos));
    expect(streamed).toEqual(result.tokens);
  });

  it('an async onToken is awaited token by token, and its rejection rejects generate (was an unhandled rejection: the process crashed)', async () => {
    const greedy = await sampler.generate(prompt, { temperature: 0, maxTokens: 4 });
    const events: string[] = [];
    await sampler.generate(prompt, {
      temperature: 0,
      maxTokens: 4,
      onToken: async (id) => {
        events.push(`start ${id}`);
        await new Promise((resolve) => setTimeout(resolve, 5));
        events.push(`end ${id}`);
      },
    });
    expect(events).toEqual(greedy.tokens.flatMap((id) => [`start ${id}`, `end ${id}`]));
    let calls = 0;
    const failing = sampler.generate(prompt, {
      temperature: 0,
      maxTokens: 4,
      onToken: async () => {
        calls++;
        await new Promise((resolve) => setTimeout(resolve, 1));
        throw new Error('the stream closed');
      },
    });
    await expect(failing).rejects.toThrow('the stream closed');
    expect(calls).toBe(1); // no token after the failure
    expect((await sampler.generate(prompt, { temperature: 0, maxTokens: 4 })).tokens).toEqual(greedy.tokens);
  });

  it('refuses bad generate options and prompts with typed errors, changing nothing', async () => {
    const cases: [ArrayLike<number>, object, typeof ConfigError | typeof DataError, string][] = [
      [prompt, { temperature: -0.5 }, ConfigError, 'temperature'],
      [prompt, { topP: 0 }, ConfigError, 'topP'],
      [prompt, { topP: 1.01 }, ConfigError, 'topP'],
      [prompt, { topK: 0 }, ConfigError, 'topK'],
      [prompt, { maxTokens: 0 }, ConfigError, 'maxTokens'],
      [prompt, { seed: 1.5 }, ConfigError, 'seed'],
      [prompt, { eosId: SMALL.vocab_size }, ConfigError, 'eosId'],
      [prompt, { onToken: 'print' }, ConfigError, 'onToken'],
      [prompt, { temprature: 1 }, ConfigError, 'temprature'],
      [[], {}, DataError, 'is empty'],
      [[1, SMALL.vocab_size], {}, DataError, 'outside the vocabulary'],
      [[1, -1], {}, DataError, 'outside the vocabulary'],
      [[1, 2.5], {}, DataError, 'outside the vocabulary'],
      [new Array(SEQ + 1).fill(1), {}, DataError, 'more than the context window'],
    ];
    for (const [p, options, type, what] of cases) {
      const call = sampler.generate(p, options);
      await expect(call, JSON.stringify(options)).rejects.toBeInstanceOf(type);
      await call.catch((error: ConfigError | DataError) => {
        if (error instanceof ConfigError) expect(error.field).toBe(what);
        else expect(error.message).toContain(what);
      });
    }
    await expect(sampler.logits([SMALL.vocab_size])).rejects.toBeInstanceOf(DataError);
    // Still usable afterwards.
    expect((await sampler.generate(prompt, { maxTokens: 1, seed: 1 })).tokens.length).toBe(1);
  });

  it('refuses a second generate while one runs', async () => {
    const first = sampler.generate(prompt, { maxTokens: 3, seed: 1 });
    await expect(sampler.generate(prompt, { maxTokens: 1 })).rejects.toBeInstanceOf(TrainError);
    expect((await first).tokens.length).toBe(3);
  });
});

describe('Sampler with the classifier on the host (over the chip spatial cap)', () => {
  it('gives the logits the on-device classifier gives (M3 host sgemm vs M4 kernel, fp16 bound)', async () => {
    // 16 positions + 16384 vocabulary columns: over M3's spatial cap (16384), within M4's.
    const wide = { ...SMALL, vocab_size: 16384 };
    const weights = initParameters(wide, { seed: 4, std: 0.3 });
    const tokens = Array.from({ length: 16 }, (_, i) => (i * 977 + 5) % wide.vocab_size);
    const targets = Array.from({ length: 15 }, (_, i) => tokens[i + 1]!);
    const losses: number[] = [];
    for (const chip of ['M3', 'M4'] as const) {
      await using sampler = await Sampler.open({ model: wide, weights, backend: 'sim', chip, seq: 16 });
      expect(sampler.chip).toBe(chip);
      const logits = await sampler.logits(tokens.slice(0, 15));
      losses.push(meanCrossEntropy(logits, wide.vocab_size, targets));
      const greedy = await sampler.generate(tokens.slice(0, 3), { temperature: 0, maxTokens: 1 });
      const first = await sampler.logits(tokens.slice(0, 3));
      expect(greedy.tokens[0]).toBe(argmax(lastRow(first, wide.vocab_size)));
    }
    expect(Math.abs(losses[0]! - losses[1]!) / losses[1]!).toBeLessThan(1e-3);
  }, 60_000);
});

describe('Sampler.open and dispose', () => {
  const weights = initParameters(SMALL, { seed: 1 });

  it('refuses bad options with typed errors saying what to do', async () => {
    const missing = new Map(weights);
    missing.delete('model.norm.weight');
    const float64 = new Map(weights);
    float64.set('model.norm.weight', new Float64Array(SMALL.hidden_size) as unknown as Float32Array);
    const cases: [object, typeof ConfigError | typeof CheckpointError, RegExp][] = [
      [{ model: 'tinyy', weights }, ConfigError, /unknown model preset 'tinyy'/],
      [
        { model: SMALL, weights, seq: SMALL.max_position_embeddings + 1 },
        ConfigError,
        /max_position_embeddings/,
      ],
      [{ model: SMALL, weights, seq: 0 }, ConfigError, /seq must be/],
      [{ model: SMALL, weights, backend: 'gpu' }, ConfigError, /backend must be/],
      [{ model: SMALL, weights, chip: 'M9' }, ConfigError, /chip must be one of/],
      [{ model: SMALL, weights, batch: 2 }, ConfigError, /no option 'batch'/],
      [{ model: SMALL, weights: missing }, CheckpointError, /model\.norm\.weight/],
      [{ model: SMALL, weights: float64 }, CheckpointError, /must be a Float32Array/],
      [{ model: SMALL, weights: Object.fromEntries(weights) }, CheckpointError, /must be a Map/],
    ];
    for (const [options, type, message] of cases) {
      const call = Sampler.open({ backend: 'sim', ...options } as Parameters<typeof Sampler.open>[0]);
      await expect(call, message.source).rejects.toBeInstanceOf(type);
      await expect(call).rejects.toThrow(message);
    }
  });

  it('defaults the window to min(256, max_position_embeddings); dispose is idempotent and final', async () => {
    const sampler = await Sampler.open({ model: SMALL, weights, backend: 'sim' });
    expect(sampler.seq).toBe(SMALL.max_position_embeddings); // 64
    expect(sampler.backend).toBe('sim');
    await sampler.dispose();
    await sampler.dispose();
    await expect(sampler.generate([1])).rejects.toBeInstanceOf(TrainError);
    await expect(sampler.logits([1])).rejects.toBeInstanceOf(TrainError);
  });
});
