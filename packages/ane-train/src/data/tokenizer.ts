/**
 * Tokenizers: text <-> token ids. Three kinds: the built-in byte tokenizer (the demo's: one id per
 * UTF-8 byte), the Llama-2 32000-token SentencePiece vocabulary of the Stories models (built in
 * through `llama-tokenizer-js`, no download) and any Hugging Face `tokenizer.json` (through
 * `@huggingface/tokenizers`). Both libraries are ES modules loaded on first use, so
 * `require('ane-train')` never loads them.
 */
import { existsSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { DataError } from '../errors';
import { readRegularFile } from '../io/files';

export interface Tokenizer {
  /** 'byte', 'llama2', or the path of the tokenizer.json. */
  readonly name: string;
  readonly vocabSize: number;
  readonly bosId: number | undefined;
  /** Sampling stops on it; the documents of a text corpus each end with it. */
  readonly eosId: number | undefined;
  /** Token ids of `text`; no BOS or EOS added. */
  encode(text: string): number[];
  /** The text of `ids`; BOS and EOS render as nothing, incomplete UTF-8 as U+FFFD. */
  decode(ids: ArrayLike<number>): string;
}

/** The names `loadTokenizer` knows besides paths. */
export type TokenizerName = 'byte' | 'llama2';

function checkIds(name: string, ids: ArrayLike<number>, vocabSize: number): void {
  if (ids === null || typeof ids !== 'object' || typeof ids.length !== 'number') {
    throw new DataError(`tokenizer ${name}: decode expects an array of token ids, got ${String(ids)}`);
  }
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i]!;
    if (!(Number.isInteger(id) && id >= 0 && id < vocabSize)) {
      throw new DataError(
        `tokenizer ${name}: token id ${id} at index ${i} is not in the vocabulary [0, ${vocabSize}): decode ids of a model whose vocab_size matches this tokenizer`,
      );
    }
  }
}

/** A UTF-16 surrogate half without its partner: a string no UTF-8 text can hold. */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

function checkText(name: string, text: string): void {
  if (typeof text !== 'string') {
    throw new DataError(`tokenizer ${name}: encode expects a string, got ${typeof text}`);
  }
  // UTF-8 cannot encode a lone surrogate: it would silently become U+FFFD's bytes (or whatever the
  // tokenizer library makes of it), so decode(encode(text)) would not give the text back.
  const lone = LONE_SURROGATE.exec(text);
  if (lone !== null) {
    const unit = lone[0].charCodeAt(0).toString(16).toUpperCase();
    throw new DataError(
      `tokenizer ${name}: the text has a lone UTF-16 surrogate (\\u${unit}) at index ${lone.index}, which is not a character (a string cut in the middle of an emoji?): pass well-formed text, e.g. text.toWellFormed() replaces it with U+FFFD`,
    );
  }
}

/** The tokenizers byteTokenizer() made: their ids are the UTF-8 bytes (a fast path for corpora). */
const byteTokenizers = new WeakSet<Tokenizer>();

/** Whether `tokenizer` is one of byteTokenizer()'s, so its ids are exactly the UTF-8 bytes. */
export function isByteTokenizer(tokenizer: Tokenizer): boolean {
  return byteTokenizers.has(tokenizer);
}

/** One id per UTF-8 byte (vocab 256). EOS is 0 (NUL, which text files never contain); no BOS. */
export function byteTokenizer(): Tokenizer {
  const encoder = new TextEncoder();
  const decoder = new TextDecoder('utf-8');
  const tokenizer: Tokenizer = Object.freeze({
    name: 'byte',
    vocabSize: 256,
    bosId: undefined,
    eosId: 0,
    encode(text: string): number[] {
      checkText('byte', text);
      return Array.from(encoder.encode(text));
    },
    decode(ids: ArrayLike<number>): string {
      checkIds('byte', ids, 256);
      const bytes = new Uint8Array(ids.length);
      let n = 0;
      for (let i = 0; i < ids.length; i++) if (ids[i] !== 0) bytes[n++] = ids[i]!;
      return decoder.decode(bytes.subarray(0, n));
    },
  });
  byteTokenizers.add(tokenizer);
  return tokenizer;
}

interface LlamaTokenizerModule {
  encode(prompt: string, addBosToken?: boolean, addPrecedingSpace?: boolean): number[];
  decode(ids: number[], addBosToken?: boolean, addPrecedingSpace?: boolean): string;
  vocabById: string[];
}

let llama2: Promise<Tokenizer> | undefined;

/** Texts longer than this are encoded in pieces cut at newlines (see encode). */
const LLAMA_CHUNK_CHARS = 2048;

/** Where the piece of `text` from `start` ends: a safe cut near start + LLAMA_CHUNK_CHARS. */
function llamaCut(text: string, start: number): number {
  const safe = (p: number): boolean => text[p] === '\n' || (text[p] === ' ' && text[p - 1] !== ' ');
  for (let p = start + LLAMA_CHUNK_CHARS; p > start; p--) if (safe(p)) return p;
  for (let p = start + LLAMA_CHUNK_CHARS + 1; p < text.length; p++) if (safe(p)) return p;
  return text.length;
}

/**
 * The Llama-2 SentencePiece vocabulary (32000 tokens; <unk> 0, BOS 1, EOS 2; byte fallback
 * `<0x00>`..`<0xFF>` at 3..258). `encode` adds SentencePiece's dummy-prefix space like
 * `sentencepiece`'s `encode` does; `decode` drops it again.
 */
function loadLlama2(): Promise<Tokenizer> {
  llama2 ??= (async () => {
    const module = (await import('llama-tokenizer-js')) as unknown as { default: LlamaTokenizerModule };
    const llama = module.default;
    const vocabSize = llama.vocabById.length;
    return Object.freeze({
      name: 'llama2',
      vocabSize,
      bosId: 1,
      eosId: 2,
      encode(text: string): number[] {
        checkText('llama2', text);
        if (text.length === 0) return [];
        if (text.length <= LLAMA_CHUNK_CHARS) return llama.encode(text, false, true);
        // llama-tokenizer-js slows down more than linearly with the length of one text (100 KB:
        // seconds), so a long text is encoded in pieces. No Llama-2 piece holds '▁' after another
        // character, nor a newline (a byte-fallback token no merge joins), so a cut just before a
        // newline, or before a space that follows a non-space, gives exactly the tokens of the
        // whole; only the first piece gets SentencePiece's dummy-prefix space.
        const ids: number[] = [];
        let start = 0;
        while (start < text.length) {
          const end = text.length - start > LLAMA_CHUNK_CHARS ? llamaCut(text, start) : text.length;
          for (const id of llama.encode(text.slice(start, end), false, start === 0)) ids.push(id);
          start = end;
        }
        return ids;
      },
      decode(ids: ArrayLike<number>): string {
        checkIds('llama2', ids, vocabSize);
        const kept: number[] = [];
        for (let i = 0; i < ids.length; i++) if (ids[i] !== 1 && ids[i] !== 2) kept.push(ids[i]!);
        if (kept.length === 0) return '';
        return llama.decode(kept, false, true);
      },
    } satisfies Tokenizer);
  })();
  return llama2;
}

interface HfTokenizer {
  encode(text: string, options?: { add_special_tokens?: boolean }): { ids: number[] };
  decode(ids: number[], options?: { skip_special_tokens?: boolean }): string;
  get_vocab(withAddedTokens?: boolean): Map<string, number>;
  token_to_id(token: string): number | undefined;
}

const EOS_GUESSES = ['</s>', '<|endoftext|>', '<eos>', '<|end_of_text|>', '<|eot_id|>', '[SEP]'];
const BOS_GUESSES = ['<s>', '<|begin_of_text|>', '<bos>', '<|startoftext|>', '[CLS]'];

function tokenContent(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (
    value !== null &&
    typeof value === 'object' &&
    typeof (value as { content?: unknown }).content === 'string'
  ) {
    return (value as { content: string }).content;
  }
  return undefined;
}

async function readJson(path: string, what: string): Promise<Record<string, unknown>> {
  const refuse = (why: string): never => {
    const names = what === 'tokenizer' ? ` (or the built-in 'byte' or 'llama2', spelled so)` : '';
    throw new DataError(`${what} ${path} ${why}: pass a Hugging Face tokenizer.json file${names}`, {
      file: path,
    });
  };
  const bytes = await readRegularFile(path, refuse);
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder('utf-8').decode(bytes));
  } catch (error) {
    refuse(`is not JSON (${(error as Error).message})`);
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) refuse('is not a JSON object');
  return value as Record<string, unknown>;
}

/**
 * A Hugging Face `tokenizer.json` (and the `tokenizer_config.json` beside it, when there is one,
 * for the BOS and EOS tokens).
 */
async function loadHuggingFace(path: string): Promise<Tokenizer> {
  const json = await readJson(path, 'tokenizer');
  const model = json.model;
  if (model === null || typeof model !== 'object' || typeof (model as { type?: unknown }).type !== 'string') {
    throw new DataError(
      `tokenizer ${path} has no "model" object with a "type" (BPE, WordPiece, Unigram, WordLevel): pass the tokenizer.json of a Hugging Face tokenizer`,
      { file: path },
    );
  }
  const modelType = (model as { type: string }).type;
  const configPath = join(dirname(path), 'tokenizer_config.json');
  const config =
    basename(path) !== 'tokenizer_config.json' && existsSync(configPath)
      ? await readJson(configPath, 'tokenizer config')
      : {};
  const { Tokenizer: HfTokenizerClass } = await import('@huggingface/tokenizers');
  let tokenizer: HfTokenizer;
  try {
    tokenizer = new HfTokenizerClass(json, config) as unknown as HfTokenizer;
  } catch (error) {
    throw new DataError(
      `tokenizer ${path} could not be loaded by @huggingface/tokenizers (${(error as Error).message}): check it is a complete tokenizer.json`,
      { file: path },
    );
  }
  let vocabSize = 0;
  for (const id of tokenizer.get_vocab(true).values()) vocabSize = Math.max(vocabSize, id + 1);
  if (vocabSize === 0) {
    throw new DataError(`tokenizer ${path} has an empty vocabulary: pass a complete tokenizer.json`, {
      file: path,
    });
  }
  const find = (key: 'bos_token' | 'eos_token', guesses: string[]): number | undefined => {
    // tokenizer_config.json decides when it has the key (null: the tokenizer has no such token)
    if (Object.hasOwn(config, key)) {
      const content = tokenContent(config[key]);
      return content !== undefined ? tokenizer.token_to_id(content) : undefined;
    }
    for (const guess of guesses) {
      const id = tokenizer.token_to_id(guess);
      if (id !== undefined) return id;
    }
    return undefined;
  };
  const bosId = find('bos_token', BOS_GUESSES);
  const eosId = find('eos_token', EOS_GUESSES);
  return Object.freeze({
    name: path,
    vocabSize,
    bosId,
    eosId,
    encode(text: string): number[] {
      checkText(path, text);
      if (text.length === 0) return [];
      const ids = tokenizer.encode(text, { add_special_tokens: false }).ids;
      for (let i = 0; i < ids.length; i++) {
        const id = ids[i];
        if (!(Number.isInteger(id) && id! >= 0 && id! < vocabSize)) {
          throw new DataError(
            `tokenizer ${path} gave the id ${String(id)} (token ${i} of the text): its model (${modelType}) is not fully supported by @huggingface/tokenizers; use a BPE, WordPiece or Unigram tokenizer.json`,
            { file: path },
          );
        }
      }
      return ids;
    },
    decode(ids: ArrayLike<number>): string {
      checkIds(path, ids, vocabSize);
      const kept: number[] = [];
      for (let i = 0; i < ids.length; i++) if (ids[i] !== bosId && ids[i] !== eosId) kept.push(ids[i]!);
      // @huggingface/tokenizers throws on an empty array: no ids are no text, as for byte and llama2
      if (kept.length === 0) return '';
      return tokenizer.decode(kept, { skip_special_tokens: true });
    },
  } satisfies Tokenizer);
}

/**
 * `'byte'`, `'llama2'`, or the path of a Hugging Face `tokenizer.json`. A file that is missing, not
 * a regular file, not JSON or not a tokenizer is a DataError naming it.
 */
export async function loadTokenizer(spec: TokenizerName | string): Promise<Tokenizer> {
  if (typeof spec !== 'string' || spec.length === 0) {
    throw new DataError(
      `tokenizer: expected 'byte', 'llama2' or the path of a tokenizer.json, got ${JSON.stringify(spec) ?? String(spec)}`,
    );
  }
  if (spec === 'byte') return byteTokenizer();
  if (spec === 'llama2') return loadLlama2();
  return loadHuggingFace(spec);
}

/**
 * Incremental decoding for streaming output: `push(id)` returns the text that became certain with
 * that token (a multi-byte character split over byte tokens is held back until complete). Pass the
 * prompt's ids as `prompt` to stream only what follows it: the text is decoded in context, so the
 * space before the first generated word is kept (Llama-2's SentencePiece drops a leading space when
 * a piece is decoded alone).
 */
export function decodeStream(
  tokenizer: Tokenizer,
  options: { prompt?: ArrayLike<number> } = {},
): { push(id: number): string; flush(): string } {
  if (tokenizer === null || typeof tokenizer !== 'object' || typeof tokenizer.decode !== 'function') {
    throw new DataError(
      `decodeStream(tokenizer): expected a tokenizer (byteTokenizer(), await loadTokenizer('llama2') or a tokenizer.json), got ${tokenizer === null ? 'null' : typeof tokenizer}`,
    );
  }
  const ids: number[] = Array.from(options?.prompt ?? []);
  const promptText = tokenizer.decode(ids);
  let emitted = promptText.endsWith('\uFFFD') ? promptText.length - 1 : promptText.length;
  return {
    push(id: number): string {
      ids.push(id);
      const text = tokenizer.decode(ids);
      // Hold back a trailing replacement character: the next token may complete the character.
      const certain = text.endsWith('\uFFFD') ? text.slice(0, -1) : text;
      if (certain.length <= emitted) return '';
      const piece = certain.slice(emitted);
      emitted = certain.length;
      return piece;
    },
    flush(): string {
      const text = tokenizer.decode(ids);
      const piece = text.slice(emitted);
      emitted = text.length;
      return piece;
    },
  };
}
