/**
 * Text generation from a model's weights: the forward graph (model/forward-graph.ts, built by the
 * same code as the training graph) loaded once on a device for a window of `seq` positions, the
 * weights staged once (fp16 on the device, as in training), then one forward pass per token.
 *
 * The window holds the last `seq` tokens of the context, right-padded: attention is causal, so the
 * padding after the last real position changes nothing at or before it, and the logits of the next
 * token are read at that position. There is no KV cache: each token costs one full forward pass.
 */
import { type Device, openDevice, type PlanExecutable } from 'ane-bridge';
import { CHIP_FAMILIES } from 'ane-ir/mil';
import { CheckpointError, ConfigError, DataError, TrainError } from '../errors';
import { checkWeights } from '../grads';
import { type LlamaConfig, type PresetName, resolveModel } from '../model/config';
import { buildForwardGraph, type ChipName, checkSeq, FORWARD_IO } from '../model/forward-graph';
import { uniformSource } from '../random';
import { describe } from '../runtime/session';
import { checkTokenChoiceOptions, sampleToken, type TokenChoiceOptions } from './sample-token';

export interface SampleOptions extends TokenChoiceOptions {
  /** Tokens to generate at most (default 256). */
  maxTokens?: number;
  /** Seed of the draws (any whole number); default: a random one, reported in the result. */
  seed?: number;
  /** Generation stops when this token is drawn (it is not included in the result). */
  eosId?: number;
  /**
   * Called with each generated token as soon as it is drawn (streaming); not for the EOS. A promise
   * it returns is awaited before the next token (backpressure), and its rejection rejects generate.
   */
  onToken?: (id: number) => unknown;
  /**
   * When prompt + generated tokens fill the window: true (default) slides it (the window keeps the
   * last `seq` tokens); false stops with `stoppedBy: 'context'`.
   */
  slide?: boolean;
}

export interface SampleResult {
  /** The generated tokens (without the prompt, without the EOS). */
  tokens: number[];
  stoppedBy: 'eos' | 'maxTokens' | 'context';
  /** Forward passes (tokens drawn, an EOS included) per second of `ms`. */
  tokensPerSecond: number;
  /** Wall time of the generation. */
  ms: number;
  /** The seed used (the one given, or the random one chosen). */
  seed: number;
}

export interface SamplerOptions {
  /** A preset name or a Hugging Face config object. */
  model: PresetName | LlamaConfig;
  /** Every parameter by Hugging Face name, fp32 (as `initParameters`, checkpoints and imports give them). */
  weights: ReadonlyMap<string, Float32Array>;
  /** 'auto' (default): the ANE where available, else the simulator. */
  backend?: 'auto' | 'ane' | 'sim';
  /** The chip to plan for (default: the device's). */
  chip?: ChipName;
  /** The context window in positions (default min(256, max_position_embeddings)). */
  seq?: number;
}

/**
 * The 32-bit seed of the draws: a seed in [0, 2^32) as it is; any other whole number with its high
 * part folded in (uniformSource keeps 32 bits, so 2^32, 2^40 and 0, or -1 and 2^32 - 1, drew the same
 * tokens). An odd multiplier maps every non-zero high part to a non-zero change.
 */
function seed32(seed: number): number {
  if (seed >= 0 && seed < 2 ** 32) return seed;
  const high = Math.floor(seed / 2 ** 32); // |high| ≤ 2^21 for a safe integer
  return ((seed >>> 0) ^ Math.imul(high, 0x9e3779b1)) >>> 0;
}

const OPTION_KEYS = ['model', 'weights', 'backend', 'chip', 'seq'];
const SAMPLE_KEYS = ['maxTokens', 'temperature', 'topK', 'topP', 'seed', 'eosId', 'onToken', 'slide'];
const DEFAULT_MAX_TOKENS = 256;

export class Sampler {
  /** The device's backend ('auto' resolved). */
  readonly backend: 'ane' | 'sim';
  readonly chip: ChipName;
  /** Distinct programs the forward plan compiled. */
  readonly programs: number;
  private readonly vocab: number;
  // Reused every pass: the window's ids [S] (right-padded with 0) and one position's logits [V].
  private readonly window: Int32Array;
  private readonly row: Float32Array;
  private running: Promise<unknown> | undefined;
  private disposed = false;

  private constructor(
    readonly config: LlamaConfig,
    /** The context window in positions. */
    readonly seq: number,
    private readonly device: Device,
    private readonly exe: PlanExecutable,
  ) {
    this.backend = device.backend;
    this.chip = device.chip;
    this.programs = exe.programCount;
    this.vocab = config.vocab_size;
    this.window = new Int32Array(seq);
    this.row = new Float32Array(config.vocab_size);
  }

  /**
   * Opens a device, builds and loads the forward plan for a window of `seq` positions (its programs
   * compiled once) and stages the weights. ConfigError for bad options (unknown preset, backend,
   * chip, seq), CheckpointError for weights that do not fit the model (missing, unknown, wrong
   * size, not fp32), DeviceUnavailableError (ane-bridge) when `backend: 'ane'` is unavailable.
   */
  static async open(options: SamplerOptions): Promise<Sampler> {
    if (options === null || typeof options !== 'object' || Array.isArray(options)) {
      throw new ConfigError(
        `Sampler.open takes { model, weights, backend?, chip?, seq? }, got ${describe(options)}`,
        'options',
      );
    }
    const unknown = Object.keys(options).filter((key) => !OPTION_KEYS.includes(key));
    if (unknown.length > 0) {
      throw new ConfigError(
        `Sampler.open has no option '${unknown[0]}': the options are ${OPTION_KEYS.join(', ')}`,
        unknown[0],
      );
    }
    const config = resolveModel(options.model);
    const backend = options.backend ?? 'auto';
    if (!['auto', 'ane', 'sim'].includes(backend)) {
      throw new ConfigError(`backend must be 'auto', 'ane' or 'sim', got ${describe(backend)}`, 'backend');
    }
    if (options.chip !== undefined && !(CHIP_FAMILIES as readonly unknown[]).includes(options.chip)) {
      throw new ConfigError(
        `chip must be one of ${CHIP_FAMILIES.join(', ')}, got ${describe(options.chip)}: leave it out to plan for the device's own chip`,
        'chip',
      );
    }
    const seq = options.seq ?? Math.min(256, config.max_position_embeddings);
    checkSeq(config, seq);
    const weights = options.weights;
    if (!(weights instanceof Map)) {
      throw new CheckpointError(
        `weights must be a Map from Hugging Face parameter name to Float32Array (e.g. initParameters(config) or a checkpoint's weights), got ${describe(weights)}`,
      );
    }
    checkWeights(config, weights);
    for (const [name, values] of weights) {
      if (!(values instanceof Float32Array)) {
        throw new CheckpointError(
          `weight '${name}' must be a Float32Array, got ${describe(values)}: convert it to fp32 first`,
          { tensor: name },
        );
      }
    }

    const device = openDevice({ backend, ...(options.chip !== undefined ? { chip: options.chip } : {}) });
    try {
      const forward = buildForwardGraph(config, { seq, chip: options.chip ?? device.chip });
      const exe = device.load(forward.plan);
      try {
        for (const spec of forward.parameters) exe.write(spec.source, weights.get(spec.name)!);
      } catch (error) {
        exe.dispose();
        throw error;
      }
      return new Sampler(config, seq, device, exe);
    } catch (error) {
      device.dispose();
      throw error;
    }
  }

  /**
   * Generates after `prompt` (token ids, 1 to `seq` of them) until `eosId` is drawn, `maxTokens`
   * tokens are generated, or (with `slide: false`) the window is full.
   */
  async generate(prompt: ArrayLike<number>, options: SampleOptions = {}): Promise<SampleResult> {
    this.checkUsable('generate');
    const checked = this.checkSampleOptions(options);
    const context = this.checkTokens(prompt, 'prompt');
    return this.exclusive(async () => {
      const started = performance.now();
      const random = uniformSource(seed32(checked.seed));
      const tokens: number[] = [];
      let passes = 0;
      let stoppedBy: SampleResult['stoppedBy'] = 'maxTokens';
      while (tokens.length < checked.maxTokens) {
        if (context.length > this.seq) {
          if (!checked.slide) {
            stoppedBy = 'context';
            break;
          }
          context.shift();
        }
        const logits = await this.lastLogits(context);
        passes++;
        const id = sampleToken(logits, options, random);
        if (id === options.eosId) {
          stoppedBy = 'eos';
          break;
        }
        tokens.push(id);
        context.push(id);
        const pending = options.onToken?.(id);
        if (pending !== undefined && typeof (pending as Promise<void>)?.then === 'function') await pending;
      }
      const ms = performance.now() - started;
      return {
        tokens,
        stoppedBy,
        tokensPerSecond: ms > 0 ? (passes * 1000) / ms : 0,
        ms,
        seed: checked.seed,
      };
    });
  }

  /**
   * The forward pass over `tokens` (1 to `seq` ids): logits `[S, vocab]` row-major (row s scores
   * the token after position s), fp32, a new array.
   */
  async logits(tokens: ArrayLike<number>): Promise<Float32Array> {
    this.checkUsable('logits');
    const ids = this.checkTokens(tokens, 'tokens');
    return this.exclusive(async () => {
      const logits = await this.forward(ids); // [V, S]
      const { seq, vocab } = this;
      const out = new Float32Array(ids.length * vocab); // [n, V]
      for (let v = 0; v < vocab; v++) {
        const column = v * seq;
        for (let s = 0; s < ids.length; s++) out[s * vocab + v] = logits[column + s]!;
      }
      return out;
    });
  }

  /** Frees the device and its buffers (waits for a generation in flight). Idempotent. */
  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    await this.running?.catch(() => undefined);
    this.exe.dispose();
    this.device.dispose();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.dispose();
  }

  /** The logits of the token after the last of `context` (≤ seq ids), in `this.row` ([V]). */
  private async lastLogits(context: readonly number[]): Promise<Float32Array> {
    const logits = await this.forward(context); // [V, S]
    const { seq, vocab, row } = this;
    const last = context.length - 1;
    for (let v = 0; v < vocab; v++) row[v] = logits[v * seq + last]!;
    return row;
  }

  /** One forward pass over `ids` (≤ seq, right-padded with id 0): the plan's logits [V, S]. */
  private async forward(ids: readonly number[]): Promise<Float32Array> {
    this.window.fill(0);
    for (let i = 0; i < ids.length; i++) this.window[i] = ids[i]!;
    const outputs = await this.exe.run({ [FORWARD_IO.tokens]: this.window });
    return outputs[FORWARD_IO.logits] as Float32Array;
  }

  private async exclusive<T>(run: () => Promise<T>): Promise<T> {
    const promise = run();
    this.running = promise;
    try {
      return await promise;
    } finally {
      this.running = undefined;
    }
  }

  private checkUsable(call: string): void {
    if (this.disposed) throw new TrainError(`${call}: this Sampler was disposed; open a new one`);
    if (this.running !== undefined) {
      throw new TrainError(`${call}: a generation is still running on this Sampler; await it first`);
    }
  }

  /** Token ids as a plain array, each a whole number in [0, vocab), 1 to seq of them. */
  private checkTokens(tokens: ArrayLike<number>, what: string): number[] {
    if (
      tokens === null ||
      typeof tokens !== 'object' ||
      typeof (tokens as { length?: unknown }).length !== 'number'
    ) {
      throw new DataError(`${what} must be an array of token ids, got ${describe(tokens)}`);
    }
    if (tokens.length === 0) {
      throw new DataError(
        `${what} is empty: give at least one token id (e.g. the tokenizer's BOS, or an encoded text)`,
      );
    }
    if (tokens.length > this.seq) {
      throw new DataError(
        `${what} has ${tokens.length} tokens, more than the context window of ${this.seq}: keep the last ${this.seq} tokens, or open the Sampler with a larger seq (at most max_position_embeddings ${this.config.max_position_embeddings})`,
      );
    }
    const ids = Array.from(tokens);
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i]!;
      if (!Number.isInteger(id) || id < 0 || id >= this.vocab) {
        throw new DataError(
          `${what}[${i}] is ${String(id)}, outside the vocabulary [0, ${this.vocab}): check the tokenizer matches the model (vocab_size ${this.vocab})`,
        );
      }
    }
    return ids;
  }

  private checkSampleOptions(options: SampleOptions): {
    maxTokens: number;
    seed: number;
    slide: boolean;
  } {
    checkTokenChoiceOptions(options);
    const unknown = Object.keys(options).filter((key) => !SAMPLE_KEYS.includes(key));
    if (unknown.length > 0) {
      throw new ConfigError(
        `generate has no option '${unknown[0]}': the options are ${SAMPLE_KEYS.join(', ')}`,
        unknown[0],
      );
    }
    const maxTokens = options.maxTokens ?? DEFAULT_MAX_TOKENS;
    if (!(Number.isSafeInteger(maxTokens) && maxTokens >= 1)) {
      throw new ConfigError(
        `maxTokens must be a whole number ≥ 1 (tokens to generate at most), got ${String(options.maxTokens)}`,
        'maxTokens',
      );
    }
    if (options.seed !== undefined && !Number.isSafeInteger(options.seed)) {
      throw new ConfigError(`seed must be a whole number, got ${String(options.seed)}`, 'seed');
    }
    const { eosId } = options;
    if (eosId !== undefined && !(Number.isSafeInteger(eosId) && eosId >= 0 && eosId < this.vocab)) {
      throw new ConfigError(
        `eosId must be a token id in [0, ${this.vocab}), got ${String(eosId)}: use the tokenizer's eosId, or leave it out`,
        'eosId',
      );
    }
    if (options.onToken !== undefined && typeof options.onToken !== 'function') {
      throw new ConfigError(
        `onToken must be a function (id) => void, got ${describe(options.onToken)}`,
        'onToken',
      );
    }
    if (options.slide !== undefined && typeof options.slide !== 'boolean') {
      throw new ConfigError(`slide must be true or false, got ${describe(options.slide)}`, 'slide');
    }
    const seed = options.seed ?? Math.floor(Math.random() * 2 ** 32);
    return { maxTokens, seed, slide: options.slide ?? true };
  }
}
