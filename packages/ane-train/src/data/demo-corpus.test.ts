import { describe, expect, it } from 'vitest';
import { ConfigError } from '../errors';
import { demoCorpus } from './demo-corpus';
import { splitCorpus } from './sampler';

describe('demoCorpus', () => {
  it('is deterministic per seed, plain English stories separated by blank lines, 200–400 KB', () => {
    const text = demoCorpus();
    expect(demoCorpus({ seed: 1 })).toBe(text);
    expect(demoCorpus({ seed: 2 })).not.toBe(text);
    const bytes = new TextEncoder().encode(text).length;
    expect(bytes).toBeGreaterThan(200_000);
    expect(bytes).toBeLessThan(400_000);
    const stories = text.split('\n\n');
    expect(stories.length).toBe(500);
    expect(new Set(stories).size).toBeGreaterThan(490); // varied
    expect(text).toMatch(/^[\x20-\x7e\n]+$/); // printable ASCII: one byte per character
    expect(demoCorpus({ seed: 5, stories: 3 }).split('\n\n').length).toBe(3);
    expect(() => demoCorpus({ stories: 0 })).toThrow(ConfigError);
    expect(() => demoCorpus({ seed: 1.5 })).toThrow(ConfigError);
  });

  it('is learnable: a byte trigram model of the training part predicts validation at < ln(256)/2 nats', () => {
    // An independent measure of how much structure there is to learn: the add-one smoothed
    // trigram model fitted on the first 90% scores the last 10%. (ln 256 ≈ 5.55 is a uniform guess.)
    const tokens = Uint16Array.from(new TextEncoder().encode(demoCorpus()));
    const { train, validation } = splitCorpus(tokens);
    const counts = new Map<number, Map<number, number>>();
    for (let i = 2; i < train.length; i++) {
      const context = (train[i - 2]! << 8) | train[i - 1]!;
      let next = counts.get(context);
      if (next === undefined) {
        next = new Map();
        counts.set(context, next);
      }
      next.set(train[i]!, (next.get(train[i]!) ?? 0) + 1);
    }
    let nats = 0;
    for (let i = 2; i < validation.length; i++) {
      const next = counts.get((validation[i - 2]! << 8) | validation[i - 1]!);
      let total = 0;
      for (const c of next?.values() ?? []) total += c;
      nats -= Math.log(((next?.get(validation[i]!) ?? 0) + 1) / (total + 256));
    }
    const mean = nats / (validation.length - 2);
    expect(mean).toBeLessThan(Math.log(256) / 2);
  });
});
