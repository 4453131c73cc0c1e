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
 * The distribution `sampleToken` draws from: candidate token ids and their probabilities (summing
 * to 1), softmax(logits / temperature) over the top k, cut to the top-p nucleus and renormalized.
 * When top-k or top-p cut the vocabulary the ids come most likely first (ties by lower id);
 * otherwise every id, in id order (no sort: O(vocab) per token). Temperature 0 or top-k 1 give the
 * argmax with probability 1.
 */
export function tokenDistribution(
  logits: Float32Array,
  options: TokenChoiceOptions = {},
): { ids: Int32Array; probabilities: Float64Array } {
  checkTokenChoiceOptions(options);
  checkLogits(logits);
  const temperature = options.temperature ?? 1;
  const topP = options.topP ?? 1;
  const vocab = logits.length;
  const topK = Math.min(options.topK ?? vocab, vocab);
  const best = argmax(logits);
  const max = logits[best]!;
  if (max === Number.NEGATIVE_INFINITY) {
    throw new TrainError(
      `the model's logits are all -Infinity (${vocab} entries): no token has any probability; check the weights are finite and were trained without divergence`,
    );
  }
  if (temperature === 0 || topK === 1) {
    return { ids: Int32Array.of(best), probabilities: Float64Array.of(1) };
  }
  // The top k (unordered), or every id.
  let ids = topK < vocab ? topKIds(logits, topK) : Int32Array.from({ length: vocab }, (_, i) => i);
  if (max === Number.POSITIVE_INFINITY) return infiniteDistribution(logits, ids, topP);
  const weights = new Float64Array(vocab); // exp((logit − max) / T) of the candidates
  let total = 0;
  for (const id of ids) {
    weights[id] = Math.exp((logits[id]! - max) / temperature);
    total += weights[id]!;
  }
  const weightOf = (id: number) => weights[id]!;
  if (topP < 1) {
    // A token of weight w ≤ total·(1 − p)/(n − 1) cannot be in the nucleus: were it, the tokens from
    // it down (at most n − 1, each ≤ w) would hold more than 1 − p. Crop those before sorting
    // (llama2.c's trick); the slack keeps rounding from cropping a boundary token.
    const n = ids.length;
    const cutoff = ((total * (1 - topP)) / (n - 1)) * (1 - 1e-6);
    ids = ids.filter((id) => id === best || weightOf(id) > cutoff);
  }
  if (topP < 1 || topK < vocab) {
    ids.sort((a, b) => logits[b]! - logits[a]! || a - b);
    let count = ids.length;
    if (topP < 1) {
      let mass = 0;
      for (let i = 0; i < ids.length; i++) {
        mass += weightOf(ids[i]!) / total;
        if (mass >= topP) {
          count = i + 1;
          break;
        }
      }
      ids = ids.slice(0, count);
    }
  }
  const probabilities = new Float64Array(ids.length);
  let keptTotal = 0;
  for (let i = 0; i < ids.length; i++) {
    probabilities[i] = weightOf(ids[i]!);
    keptTotal += probabilities[i]!;
  }
  for (let i = 0; i < ids.length; i++) probabilities[i]! /= keptTotal;
  return { ids, probabilities };
}

/**
 * Logits that overflowed to +Infinity (fp16 saturates at 65504): softmax's limit gives the
 * +Infinity entries equal shares and every other token none (exp(∞ − ∞) would be NaN). Ids in
 * ascending order (ties by lower id, as elsewhere), cut to the top-p nucleus.
 */
function infiniteDistribution(
  logits: Float32Array,
  candidates: Int32Array,
  topP: number,
): { ids: Int32Array; probabilities: Float64Array } {
  let ids = candidates.filter((id) => logits[id] === Number.POSITIVE_INFINITY).sort();
  if (topP < 1) {
    const n = ids.length;
    let count = n;
    for (let i = 0; i < n; i++) {
      if ((i + 1) / n >= topP) {
        count = i + 1;
        break;
      }
    }
    ids = ids.slice(0, count);
  }
  return { ids, probabilities: new Float64Array(ids.length).fill(1 / ids.length) };
}

/** The ids of the k largest logits (ties: lower id first), in no particular order: a size-k min-heap. */
function topKIds(logits: Float32Array, k: number): Int32Array {
  const heap = new Int32Array(k); // heap[0] is the worst kept id
  // a is worse than b: a smaller logit, or the same logit and a higher id.
  const worse = (a: number, b: number) => logits[a]! < logits[b]! || (logits[a] === logits[b] && a > b);
  const siftDown = (start: number) => {
    let i = start;
    for (;;) {
      const left = 2 * i + 1;
      const right = left + 1;
      let worst = i;
      if (left < k && worse(heap[left]!, heap[worst]!)) worst = left;
      if (right < k && worse(heap[right]!, heap[worst]!)) worst = right;
      if (worst === i) return;
      const swap = heap[i]!;
      heap[i] = heap[worst]!;
      heap[worst] = swap;
      i = worst;
    }
  };
  for (let i = 0; i < k; i++) heap[i] = i;
  for (let i = (k >> 1) - 1; i >= 0; i--) siftDown(i);
  for (let id = k; id < logits.length; id++) {
    if (worse(heap[0]!, id)) {
      heap[0] = id;
      siftDown(0);
    }
  }
  return heap;
}

/**
 * Draws the next token id from `logits` (one position, `[vocab]`) with `random` (uniform in
 * [0, 1), e.g. `Math.random` or a seeded source): one draw per call, none for greedy choices (temperature 0
 * or top-k 1). Throws ConfigError for bad options.
 */
export function sampleToken(logits: Float32Array, options: TokenChoiceOptions, random: () => number): number {
  if (typeof random !== 'function') {
    throw new ConfigError(
      `sampleToken(logits, options, random): random must be a function returning uniform numbers in [0, 1) (e.g. Math.random), got ${random === null ? 'null' : typeof random}`,
      'random',
    );
  }
  const { ids, probabilities } = tokenDistribution(logits, options);
  if (ids.length === 1) return ids[0]!;
  const u = random();
  if (!(typeof u === 'number' && u >= 0 && u < 1)) {
    throw new ConfigError(
      `sampleToken: random() returned ${String(u)}; it must return a number in [0, 1) (a uniform draw, like Math.random)`,
      'random',
    );
  }
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
