/**
 * Splitting a token stream into training and validation parts, and drawing batches from it the
 * llama2.c way: windows of S + 1 tokens starting every S tokens (each window's last token is the
 * next window's first), visited per epoch in a seeded random order.
 */
import { ConfigError, DataError } from '../errors';
import { uniformSource } from '../random';

type Tokens = Uint16Array | Int32Array;

function checkTokenArray(tokens: unknown, what: string): asserts tokens is Tokens {
  if (!(tokens instanceof Uint16Array || tokens instanceof Int32Array)) {
    throw new DataError(
      `${what}: expected the tokens as a Uint16Array or an Int32Array, got ${describe(tokens)}`,
    );
  }
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (typeof value !== 'object') return typeof value;
  return value.constructor?.name ?? 'an object';
}

/**
 * The last `validationFraction` (default 0.1, in [0, 1)) of the stream is validation, the rest
 * training: contiguous, so no validation window overlaps a training one. Views, not copies.
 */
export function splitCorpus(
  tokens: Tokens,
  options: { validationFraction?: number } = {},
): { train: Tokens; validation: Tokens } {
  checkTokenArray(tokens, 'splitCorpus');
  const fraction = options?.validationFraction ?? 0.1;
  if (typeof fraction !== 'number' || !(fraction >= 0 && fraction < 1)) {
    throw new ConfigError(
      `validationFraction must be a number in [0, 1) (the share of the tokens held out for validation), got ${String(fraction)}`,
      'validationFraction',
    );
  }
  const validationLength = Math.round(tokens.length * fraction);
  const cut = tokens.length - validationLength;
  return { train: tokens.subarray(0, cut), validation: tokens.subarray(cut) };
}

/** Where a BatchSampler is: JSON-serializable, stored in checkpoints to resume the data stream. */
export interface SamplerState {
  readonly format: 'ane-train/batch-sampler';
  readonly version: 1;
  readonly seed: number;
  readonly epoch: number;
  /** Windows of the current epoch already handed out. */
  readonly position: number;
  /** What the state belongs to, checked by `restore`. */
  readonly tokens: number;
  readonly batch: number;
  readonly seq: number;
  readonly shuffle: boolean;
}

export interface BatchSamplerOptions {
  /** Sequences per batch (B). */
  batch: number;
  /** Tokens per sequence (S); each sequence carries S + 1 tokens (inputs and shifted targets). */
  seq: number;
  /** Seed of the per-epoch window order (default 0). */
  seed?: number;
  /** Visit windows in a seeded random order per epoch (default true); false: in order. */
  shuffle?: boolean;
  /** The file the tokens came from, named in errors. */
  file?: string;
}

function positiveInteger(value: unknown, field: string, fix: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1) {
    throw new ConfigError(`${field} must be a positive integer, got ${String(value)}: ${fix}`, field);
  }
  return value;
}

/**
 * Endless batches of `batch` × (`seq` + 1) int32 tokens, sequence after sequence. Windows start at
 * 0, S, 2S, …; an epoch visits every window once (a seeded permutation when shuffling) in groups of
 * `batch`; the windows left over at an epoch's end (fewer than `batch`) are skipped that epoch
 * (a shuffled epoch's leftovers differ from epoch to epoch). `state()` / `restore()` resume the stream exactly.
 */
export class BatchSampler implements Iterable<Int32Array> {
  readonly batch: number;
  readonly seq: number;
  readonly shuffle: boolean;
  /** Windows of S + 1 tokens in the stream. */
  readonly windows: number;
  private readonly tokens: Tokens;
  /** tokens.length when the sampler was made. */
  private readonly length: number;
  private readonly file: string | undefined;
  private seed: number;
  private epoch = 0;
  private position = 0;
  private order: Uint32Array | undefined; // window indices of `epoch`, when shuffling

  constructor(tokens: Tokens, options: BatchSamplerOptions) {
    checkTokenArray(tokens, 'BatchSampler');
    if (options === null || typeof options !== 'object') {
      throw new ConfigError('BatchSampler: expected options { batch, seq }', 'batch');
    }
    this.batch = positiveInteger(options.batch, 'batch', 'pass the number of sequences per batch, e.g. 8');
    this.seq = positiveInteger(options.seq, 'seq', 'pass the sequence length, e.g. 256');
    const seed = options.seed ?? 0;
    if (typeof seed !== 'number' || !Number.isSafeInteger(seed)) {
      throw new ConfigError(`seed must be a whole number within ±2^53, got ${String(seed)}`, 'seed');
    }
    this.seed = seed;
    const shuffle = options.shuffle ?? true;
    if (typeof shuffle !== 'boolean') {
      throw new ConfigError(`shuffle must be true or false, got ${describe(shuffle)}`, 'shuffle');
    }
    this.shuffle = shuffle;
    if (options.file !== undefined && typeof options.file !== 'string') {
      throw new ConfigError(
        `file must be the path the tokens came from, got ${describe(options.file)}`,
        'file',
      );
    }
    this.file = options.file;
    this.tokens = tokens;
    this.length = tokens.length;
    this.windows = tokens.length > this.seq ? Math.floor((tokens.length - 1) / this.seq) : 0;
    if (this.windows < this.batch) {
      const needed = this.batch * this.seq + 1;
      const where = this.file !== undefined ? `${this.file}: ` : '';
      throw new DataError(
        `${where}${tokens.length} tokens are fewer than one batch needs (batch ${this.batch} × seq ${this.seq} + 1 = ${needed}): use more data, a smaller batch or seq, or a smaller validation fraction (when part of the data is held out for validation, these are the training tokens only)`,
        this.file !== undefined ? { file: this.file } : {},
      );
    }
  }

  next(): Int32Array {
    const { batch, seq } = this;
    if (this.tokens.length !== this.length) {
      // A view of a resizable (or transferred) ArrayBuffer that shrank: its windows would read zeros.
      throw new DataError(
        `BatchSampler: the tokens were ${this.length} long and are now ${this.tokens.length} (their ArrayBuffer was resized or transferred): keep the token array unchanged while sampling from it, or make a new BatchSampler`,
        this.file !== undefined ? { file: this.file } : {},
      );
    }
    if (this.position + batch > this.windows) {
      this.epoch++;
      this.position = 0;
      this.order = undefined;
    }
    const order = this.orderOfEpoch();
    const out = new Int32Array(batch * (seq + 1)); // [B, S+1]
    for (let b = 0; b < batch; b++) {
      const window = order !== undefined ? order[this.position + b]! : this.position + b;
      const start = window * seq;
      out.set(this.tokens.subarray(start, start + seq + 1), b * (seq + 1));
    }
    this.position += batch;
    return out;
  }

  state(): SamplerState {
    return {
      format: 'ane-train/batch-sampler',
      version: 1,
      seed: this.seed,
      epoch: this.epoch,
      position: this.position,
      tokens: this.length,
      batch: this.batch,
      seq: this.seq,
      shuffle: this.shuffle,
    };
  }

  restore(state: SamplerState): void {
    const refuse = (why: string): never => {
      throw new DataError(
        `BatchSampler.restore: ${why}: resume with the same data, batch, seq and shuffle as the run that saved the state`,
        this.file !== undefined ? { file: this.file } : {},
      );
    };
    if (state === null || typeof state !== 'object' || state.format !== 'ane-train/batch-sampler') {
      refuse(
        `expected a state from BatchSampler.state() (format 'ane-train/batch-sampler'), got ${describe(state)}`,
      );
    }
    if (state.version !== 1) refuse(`state version ${String(state.version)} is not supported (expected 1)`);
    for (const field of ['seed', 'epoch', 'position', 'tokens', 'batch', 'seq'] as const) {
      if (typeof state[field] !== 'number' || !Number.isSafeInteger(state[field])) {
        refuse(`state field ${field} is ${String(state[field])}, not a whole number`);
      }
    }
    if (state.tokens !== this.length) {
      refuse(`the state is of a stream of ${state.tokens} tokens, these tokens are ${this.length}`);
    }
    if (state.batch !== this.batch || state.seq !== this.seq) {
      refuse(
        `the state is of batch ${state.batch} × seq ${state.seq}, this sampler is batch ${this.batch} × seq ${this.seq}`,
      );
    }
    if (state.shuffle !== this.shuffle) {
      refuse(
        `the state was saved with shuffle ${String(state.shuffle)}, this sampler has shuffle ${this.shuffle}`,
      );
    }
    if (state.epoch < 0 || state.position < 0 || state.position > this.windows) {
      refuse(`epoch ${state.epoch} position ${state.position} is outside these ${this.windows} windows`);
    }
    if (state.position % this.batch !== 0) {
      // next() hands out whole batches from position 0, so a saved position is a multiple of batch.
      refuse(
        `position ${state.position} is not a multiple of the batch (${this.batch}): the state was edited`,
      );
    }
    this.seed = state.seed;
    this.epoch = state.epoch;
    this.position = state.position;
    this.order = undefined;
  }

  [Symbol.iterator](): Iterator<Int32Array> {
    return { next: () => ({ done: false, value: this.next() }) };
  }

  /** A seeded Fisher–Yates permutation of the windows, per (seed, epoch). */
  private orderOfEpoch(): Uint32Array | undefined {
    if (!this.shuffle) return undefined;
    if (this.order === undefined) {
      const order = new Uint32Array(this.windows);
      for (let i = 0; i < order.length; i++) order[i] = i;
      const uniform = uniformSource((this.seed ^ Math.imul(this.epoch + 1, 0x9e3779b9)) >>> 0);
      for (let i = order.length - 1; i > 0; i--) {
        const j = Math.floor(uniform() * (i + 1));
        const t = order[i]!;
        order[i] = order[j]!;
        order[j] = t;
      }
      this.order = order;
    }
    return this.order;
  }
}

/**
 * Every whole batch of a stream in order, once (validation): windows at stride S as in
 * BatchSampler; at most `maxBatches`. A DataError when not even one batch fits.
 */
export function sequentialBatches(
  tokens: Tokens,
  options: { batch: number; seq: number; maxBatches?: number; file?: string },
): Int32Array[] {
  const { maxBatches } = options ?? {};
  if (maxBatches !== undefined && !(Number.isSafeInteger(maxBatches) && maxBatches >= 1)) {
    throw new ConfigError(
      `maxBatches must be a whole number ≥ 1 (or left out for every batch), got ${String(maxBatches)}`,
      'maxBatches',
    );
  }
  let sampler: BatchSampler;
  try {
    sampler = new BatchSampler(tokens, { ...options, shuffle: false });
  } catch (error) {
    if (!(error instanceof DataError)) throw error;
    throw new DataError(
      `validation: ${error.message.replace(/: use more data.*$/, '')}: use a larger validation fraction, more data, or a smaller batch or seq`,
      error.details,
    );
  }
  const count = Math.min(
    Math.floor(sampler.windows / sampler.batch),
    options.maxBatches ?? Number.POSITIVE_INFINITY,
  );
  const batches: Int32Array[] = [];
  for (let i = 0; i < count; i++) batches.push(sampler.next());
  return batches;
}
