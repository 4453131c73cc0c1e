/**
 * Choosing the next token from one position's logits: temperature, top-k, top-p (nucleus) and a
 * seeded uniform draw. Pure host code with no device, shared by `Sampler`, the CLI and tests.
 */
import { ConfigError, TrainError } from '../errors';

export interface TokenChoiceOptions {
  /** Divides the logits before the softmax; 0 picks the argmax (greedy). Default 1. */
  temperature?: number;
  /** Keeps only the k most likely tokens (k ≥ 1; default: every token). */
  topK?: number;
  /**
   * Keeps the smallest set of most likely tokens whose probability (after temperature and top-k)
   * reaches p, in (0, 1]; default 1 (every token). The most likely token is always kept.
   */
  topP?: number;
}

/** Checks temperature, topK and topP; throws a ConfigError naming the option and the fix. */
export function checkTokenChoiceOptions(options: TokenChoiceOptions): void {
  if (options === null || typeof options !== 'object') {
    throw new ConfigError(
      `sampling options must be an object { temperature?, topK?, topP? }, got ${String(options)}`,
      'options',
    );
  }
  const { temperature, topK, topP } = options;
  if (
    temperature !== undefined &&
    !(typeof temperature === 'number' && Number.isFinite(temperature) && temperature >= 0)
  ) {
    throw new ConfigError(
      `temperature must be a finite number ≥ 0 (0 = always the most likely token, 1 = the model's own distribution), got ${String(temperature)}`,
      'temperature',
    );
  }
  if (topK !== undefined && !(Number.isSafeInteger(topK) && topK >= 1)) {
    throw new ConfigError(
      `topK must be a whole number ≥ 1 (1 = always the most likely token), got ${String(topK)}: leave it out to consider every token`,
      'topK',
    );
  }
  if (topP !== undefined && !(typeof topP === 'number' && topP > 0 && topP <= 1)) {
    throw new ConfigError(
      `topP must be in (0, 1] (the probability mass of the most likely tokens to draw from), got ${String(topP)}: use e.g. 0.9, or 1 to keep every token`,
      'topP',
    );
  }
}

/** The index of the largest logit (the first one on ties). */
export function argmax(logits: ArrayLike<number>): number {
  let best = 0;
  let bestValue = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < logits.length; i++) {
    const value = logits[i]!;
    if (value > bestValue) {
      best = i;
      bestValue = value;
    }
  }
  return best;
}

/**
 * The distribution `sampleToken` draws from, as the candidate token ids (most likely first, ties
 * by lower id) and their probabilities (summing to 1): softmax(logits / temperature) over the top
 * k, cut to the top-p nucleus and renormalized. Temperature 0 gives the argmax with probability 1.
 */
export function tokenDistribution(
  logits: Float32Array,
  options: TokenChoiceOptions = {},
): { ids: Int32Array; probabilities: Float64Array } {
  checkTokenChoiceOptions(options);
  checkLogits(logits);
  const temperature = options.temperature ?? 1;
  const vocab = logits.length;
  const topK = Math.min(options.topK ?? vocab, vocab);
  if (temperature === 0 || topK === 1) {
    return { ids: Int32Array.of(argmax(logits)), probabilities: Float64Array.of(1) };
  }
  // Candidates by decreasing logit; a stable sort keeps ties in id order.
  const order = Array.from({ length: vocab }, (_, i) => i).sort((a, b) => logits[b]! - logits[a]!);
  const kept = order.slice(0, topK);
  const max = logits[kept[0]!]!;
  const weights = new Float64Array(kept.length);
  let total = 0;
  for (let i = 0; i < kept.length; i++) {
    weights[i] = Math.exp((logits[kept[i]!]! - max) / temperature);
    total += weights[i]!;
  }
  const topP = options.topP ?? 1;
  let count = kept.length;
  if (topP < 1) {
    let mass = 0;
    for (let i = 0; i < kept.length; i++) {
      mass += weights[i]! / total;
      if (mass >= topP) {
        count = i + 1;
        break;
      }
    }
  }
  let keptTotal = 0;
  for (let i = 0; i < count; i++) keptTotal += weights[i]!;
  const ids = new Int32Array(count);
  const probabilities = new Float64Array(count);
  for (let i = 0; i < count; i++) {
    ids[i] = kept[i]!;
    probabilities[i] = weights[i]! / keptTotal;
  }
  return { ids, probabilities };
}

/**
 * Draws the next token id from `logits` (one position, `[vocab]`) with `random` (uniform in
 * (0, 1), e.g. `uniformSource(seed)`): one draw per call, none for greedy choices (temperature 0
 * or top-k 1). Throws ConfigError for bad options.
 */
export function sampleToken(logits: Float32Array, options: TokenChoiceOptions, random: () => number): number {
  const { ids, probabilities } = tokenDistribution(logits, options);
  if (ids.length === 1) return ids[0]!;
  const u = random();
  let cumulative = 0;
  for (let i = 0; i < ids.length; i++) {
    cumulative += probabilities[i]!;
    if (u < cumulative) return ids[i]!;
  }
  return ids[ids.length - 1]!; // u within rounding of 1
}

function checkLogits(logits: Float32Array): void {
  if (!(logits instanceof Float32Array) || logits.length === 0) {
    throw new ConfigError(
      `logits must be a non-empty Float32Array (one position's scores over the vocabulary), got ${logits instanceof Float32Array ? 'an empty one' : String(logits)}`,
      'logits',
    );
  }
  for (let i = 0; i < logits.length; i++) {
    if (Number.isNaN(logits[i]!)) {
      throw new TrainError(
        `the model's logits hold NaN (vocabulary entry ${i}): the weights or the computation overflowed; check the weights are finite and were trained without divergence`,
      );
    }
  }
}
