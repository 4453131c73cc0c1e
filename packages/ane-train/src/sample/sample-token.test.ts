/**
 * `sampleToken` / `tokenDistribution` on host logits with hand-computed distributions: logits
 * ln(1), ln(2), ln(3), ln(4) are the probabilities 0.1, 0.2, 0.3, 0.4 at temperature 1.
 */
import { describe, expect, it } from 'vitest';
import { ConfigError, TrainError } from '../errors';
import { uniformSource } from '../random';
import { argmax, sampleToken, tokenDistribution } from './sample-token';

const LOGITS = Float32Array.from([1, 2, 3, 4].map(Math.log)); // p = 0.1, 0.2, 0.3, 0.4

describe('tokenDistribution', () => {
  it('is the softmax at temperature 1, in id order when nothing is cut', () => {
    const { ids, probabilities } = tokenDistribution(LOGITS);
    expect([...ids]).toEqual([0, 1, 2, 3]);
    for (const [i, p] of [0.1, 0.2, 0.3, 0.4].entries()) expect(probabilities[i]).toBeCloseTo(p, 6);
  });

  it('divides the logits by the temperature: at T = 2 the weights are sqrt(1..4)', () => {
    const { probabilities } = tokenDistribution(LOGITS, { temperature: 2 });
    const roots = [1, 2, 3, 4].map(Math.sqrt);
    const total = roots.reduce((a, b) => a + b);
    for (const [i, r] of roots.entries()) expect(probabilities[i]).toBeCloseTo(r / total, 6);
  });

  it('keeps the top k and renormalizes', () => {
    const { ids, probabilities } = tokenDistribution(LOGITS, { topK: 2 });
    expect([...ids]).toEqual([3, 2]);
    expect(probabilities[0]).toBeCloseTo(4 / 7, 6);
    expect(probabilities[1]).toBeCloseTo(3 / 7, 6);
    expect(tokenDistribution(LOGITS, { topK: 100 }).ids.length).toBe(4); // k beyond the vocabulary: all
  });

  it('keeps the smallest nucleus reaching top-p (after top-k), then renormalizes', () => {
    // cumulative 0.4, 0.7, 0.9, 1.0
    expect([...tokenDistribution(LOGITS, { topP: 0.5 }).ids]).toEqual([3, 2]);
    expect([...tokenDistribution(LOGITS, { topP: 0.8 }).ids]).toEqual([3, 2, 1]);
    const p = tokenDistribution(LOGITS, { topP: 0.8 }).probabilities;
    expect(p[2]).toBeCloseTo(2 / 9, 6);
    // after top-k 3 the masses are 4/9, 3/9, 2/9: top-p 0.7 needs two (7/9 ≥ 0.7)
    expect([...tokenDistribution(LOGITS, { topK: 3, topP: 0.7 }).ids]).toEqual([3, 2]);
    // the most likely token is kept however small p is
    expect([...tokenDistribution(LOGITS, { topP: 1e-9 }).ids]).toEqual([3]);
  });

  it('temperature 0 and top-k 1 are the argmax with probability 1; ties go to the lower id', () => {
    const tied = Float32Array.from([0.5, 2, -1, 2, 1]);
    expect(argmax(tied)).toBe(1);
    for (const options of [{ temperature: 0 }, { topK: 1 }, { topP: 1e-6 }]) {
      expect([...tokenDistribution(tied, options).ids]).toEqual([1]);
    }
    expect([...tokenDistribution(tied).ids]).toEqual([0, 1, 2, 3, 4]);
    expect([...tokenDistribution(tied, { topK: 4 }).ids]).toEqual([1, 3, 4, 0]);
    expect([...tokenDistribution(tied, { topP: 0.95 }).ids]).toEqual([1, 3, 4, 0]); // masses .379 .379 .139 .085 .019
  });
});

describe('tokenDistribution on a large vocabulary', () => {
  /** The definition, by brute force: sort every id, take k, take the nucleus, renormalize. */
  function reference(logits: Float32Array, temperature: number, topK: number, topP: number) {
    const order = Array.from(logits.keys()).sort((a, b) => logits[b]! - logits[a]! || a - b);
    const kept = order.slice(0, topK);
    const max = logits[kept[0]!]!;
    const w = kept.map((id) => Math.exp((logits[id]! - max) / temperature));
    const total = w.reduce((a, b) => a + b);
    let count = kept.length;
    let mass = 0;
    for (let i = 0; i < kept.length; i++) {
      mass += w[i]! / total;
      if (mass >= topP) {
        count = i + 1;
        break;
      }
    }
    const keptTotal = w.slice(0, count).reduce((a, b) => a + b);
    return { ids: kept.slice(0, count), probabilities: w.slice(0, count).map((x) => x / keptTotal) };
  }

  it('top-k selection and the cropped nucleus equal the brute-force definition (with ties)', () => {
    const random = uniformSource(5);
    for (let trial = 0; trial < 20; trial++) {
      // Rounded values make many ties; some trials peaked, some flat.
      const spread = trial % 2 === 0 ? 8 : 1;
      const logits = Float32Array.from({ length: 3000 }, () => Math.round(random() * spread * 20) / 20);
      const temperature = [0.5, 1, 2][trial % 3]!;
      const topK = [3000, 40, 2, 700][trial % 4]!;
      const topP = [1, 0.9, 0.5, 0.05, 0.999][trial % 5]!;
      const ours = tokenDistribution(logits, { temperature, topK, topP });
      const expected = reference(logits, temperature, topK, topP);
      const label = JSON.stringify({ trial, temperature, topK, topP });
      if (topK === 3000 && topP === 1) {
        expect([...ours.ids], label).toEqual(Array.from(logits.keys())); // id order, nothing cut
        continue;
      }
      expect([...ours.ids], label).toEqual(expected.ids);
      for (let i = 0; i < expected.ids.length; i++) {
        expect(ours.probabilities[i], label).toBeCloseTo(expected.probabilities[i]!, 9);
      }
    }
  });
});

describe('sampleToken', () => {
  it('draws with the distribution: counts over 20000 seeded draws pass a chi-square test', () => {
    const random = uniformSource(7);
    for (const [options, expected] of [
      [{}, [0.1, 0.2, 0.3, 0.4]],
      [{ topK: 2 }, [0, 0, 3 / 7, 4 / 7]],
      [{ temperature: 2, topP: 0.8 }, null],
    ] as const) {
      const counts = [0, 0, 0, 0];
      const draws = 20_000;
      for (let i = 0; i < draws; i++) counts[sampleToken(LOGITS, options, random)]!++;
      let probabilities: number[];
      if (expected === null) {
        // T = 2: weights 1, sqrt2, sqrt3, 2 → masses 0.163, 0.231, 0.283, 0.326; nucleus 0.8 keeps
        // ids 3, 2, 1 (0.326 + 0.283 + 0.231 = 0.84)
        const w = [1, 2, 3, 4].map(Math.sqrt);
        const kept = w[1]! + w[2]! + w[3]!;
        probabilities = [0, w[1]! / kept, w[2]! / kept, w[3]! / kept];
      } else probabilities = [...expected];
      let chiSquare = 0;
      let degrees = -1;
      for (let id = 0; id < 4; id++) {
        if (probabilities[id] === 0) {
          expect(counts[id], `id ${id} is outside the kept set`).toBe(0);
          continue;
        }
        const e = probabilities[id]! * draws;
        chiSquare += (counts[id]! - e) ** 2 / e;
        degrees++;
      }
      // 99.9th percentile of chi-square with 3 / 2 degrees of freedom: 16.27 / 13.82
      expect(chiSquare, JSON.stringify({ options, counts })).toBeLessThan(degrees === 3 ? 16.27 : 13.82);
    }
  });

  it('greedy choices consume no draw; the same seed gives the same tokens', () => {
    let calls = 0;
    const counting = () => {
      calls++;
      return 0.5;
    };
    expect(sampleToken(LOGITS, { temperature: 0 }, counting)).toBe(3);
    expect(sampleToken(LOGITS, { topK: 1 }, counting)).toBe(3);
    expect(calls).toBe(0);
    // u = 0.5 falls in the second bucket (0.4 ≤ u < 0.7): id 2
    expect(sampleToken(LOGITS, {}, counting)).toBe(2);
    const a = uniformSource(3);
    const b = uniformSource(3);
    const first = Array.from({ length: 50 }, () => sampleToken(LOGITS, {}, a));
    const second = Array.from({ length: 50 }, () => sampleToken(LOGITS, {}, b));
    expect(first).toEqual(second);
  });

  it('refuses bad options with a ConfigError naming the option, and NaN logits', () => {
    const random = uniformSource(1);
    const cases: [object, string][] = [
      [{ temperature: -1 }, 'temperature'],
      [{ temperature: Number.NaN }, 'temperature'],
      [{ temperature: Number.POSITIVE_INFINITY }, 'temperature'],
      [{ topK: 0 }, 'topK'],
      [{ topK: 1.5 }, 'topK'],
      [{ topP: 0 }, 'topP'],
      [{ topP: 1.5 }, 'topP'],
      [{ topP: Number.NaN }, 'topP'],
    ];
    for (const [options, field] of cases) {
      let caught: unknown;
      try {
        sampleToken(LOGITS, options, random);
      } catch (error) {
        caught = error;
      }
      expect(caught, JSON.stringify(options)).toBeInstanceOf(ConfigError);
      expect((caught as ConfigError).field).toBe(field);
    }
    expect(() => sampleToken(new Float32Array(0), {}, random)).toThrow(ConfigError);
    expect(() => sampleToken(Float32Array.from([0, Number.NaN]), {}, random)).toThrow(TrainError);
  });
});

describe('logits that overflowed (fp16 saturates to ±Infinity on the device)', () => {
  it('+Infinity logits share the probability equally (the softmax limit), never NaN', () => {
    const logits = Float32Array.of(0, Number.POSITIVE_INFINITY, 1, Number.POSITIVE_INFINITY);
    const { ids, probabilities } = tokenDistribution(logits);
    expect([...ids]).toEqual([1, 3]);
    expect([...probabilities]).toEqual([0.5, 0.5]);
    // a draw below 1/2 picks id 1, above it id 3; never the last id by default (was: always 3 of 4)
    expect(sampleToken(logits, {}, () => 0.25)).toBe(1);
    expect(sampleToken(logits, {}, () => 0.75)).toBe(3);
    expect(sampleToken(Float32Array.of(0, Number.POSITIVE_INFINITY, 1, 2), {}, () => 0.99)).toBe(1);
    // top-k keeps only the overflowed ones it contains; top-p cuts the tie by lower id
    expect([...tokenDistribution(logits, { topK: 3 }).ids]).toEqual([1, 3]);
    expect([...tokenDistribution(logits, { topP: 0.5 }).ids]).toEqual([1]);
    expect([...tokenDistribution(logits, { temperature: 0.5, topP: 0.6 }).probabilities]).toEqual([0.5, 0.5]);
  });

  it('-Infinity logits have probability 0; all -Infinity is a TrainError', () => {
    const { ids, probabilities } = tokenDistribution(Float32Array.of(Number.NEGATIVE_INFINITY, 0, 0));
    expect([...ids]).toEqual([0, 1, 2]);
    expect([...probabilities]).toEqual([0, 0.5, 0.5]);
    expect(() =>
      tokenDistribution(Float32Array.of(Number.NEGATIVE_INFINITY, Number.NEGATIVE_INFINITY)),
    ).toThrow(/all -Infinity/);
  });
});

describe('sampleToken checks its random source', () => {
  it('a missing random is a ConfigError; a draw outside [0, 1) is refused, not read as the last id', () => {
    const field = (run: () => unknown) => {
      try {
        run();
      } catch (error) {
        return error instanceof ConfigError ? error.field : String(error);
      }
      return 'no error';
    };
    expect(field(() => sampleToken(LOGITS, {}, undefined as never))).toBe('random');
    expect(field(() => sampleToken(LOGITS, {}, () => Number.NaN))).toBe('random');
    expect(field(() => sampleToken(LOGITS, {}, () => 1))).toBe('random');
    expect(field(() => sampleToken(LOGITS, {}, () => -0.1))).toBe('random');
    expect(sampleToken(LOGITS, {}, () => 0)).toBe(0);
  });
});
