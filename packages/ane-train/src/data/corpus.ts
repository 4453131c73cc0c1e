/**
 * Corpora: the whole token stream of a training run, from a uint16 token file (llama2.c's
 * pretokenized TinyStories shards: no header, little-endian uint16 ids), a UTF-8 text file encoded
 * with a tokenizer, or the built-in demo corpus.
 */
import { stat } from 'node:fs/promises';
import { extname } from 'node:path';
import { DataError } from '../errors';
import { readRegularFile } from '../io/files';
import { checkTokens, readTokenFile } from '../io/tokens';
import { demoCorpus } from './demo-corpus';
import { isByteTokenizer, type Tokenizer } from './tokenizer';

export interface TokenCorpus {
  /** Undefined for the built-in demo corpus. */
  readonly file: string | undefined;
  readonly kind: 'tokens' | 'text' | 'demo';
  /** The whole stream; every id is checked to be below the vocabulary size. */
  readonly tokens: Uint16Array | Int32Array;
  /** The tokenizer that encoded a text or demo corpus. */
  readonly tokenizer: Tokenizer | undefined;
}

/** Text files larger than this are refused: pretokenize them into a uint16 token file instead. */
export const MAX_TEXT_BYTES = 256 * 1024 * 1024;

const TOKEN_FILE_EXTENSIONS = new Set(['.bin', '.tokens']);

/** Whether `file` is read as a uint16 token file (by its extension: .bin or .tokens). */
export function isTokenFile(file: string): boolean {
  return TOKEN_FILE_EXTENSIONS.has(extname(file).toLowerCase());
}

/**
 * Loads `file`: a `.bin` / `.tokens` file is little-endian uint16 token ids, anything else UTF-8
 * text encoded with `options.tokenizer` (documents, split at blank lines, each begin with the
 * tokenizer's BOS and end with its EOS when it has them). A DataError names the file and the byte
 * offset at fault: an odd byte count, an id at or above `vocabSize`, an empty file, NUL bytes or
 * invalid UTF-8 in a text file.
 */
export async function loadCorpus(
  file: string,
  options: { tokenizer: Tokenizer; vocabSize: number },
): Promise<TokenCorpus> {
  if (typeof file !== 'string' || file.length === 0) {
    throw new DataError(`data: expected the path of a token file or a text file, got ${String(file)}`);
  }
  const { tokenizer, vocabSize } = options ?? ({} as typeof options);
  if (!Number.isInteger(vocabSize) || vocabSize < 1 || vocabSize > 2 ** 31) {
    throw new DataError(`data ${file}: vocabSize must be a positive integer, got ${String(vocabSize)}`, {
      file,
    });
  }
  if (isTokenFile(file)) {
    const tokens = await readTokenFile(file);
    checkTokens(tokens, vocabSize, { file });
    return Object.freeze({ file, kind: 'tokens', tokens, tokenizer: undefined });
  }
  if (tokenizer === undefined || tokenizer === null || typeof tokenizer?.encode !== 'function') {
    throw new DataError(
      `text file ${file} needs a tokenizer: pass one (byteTokenizer(), loadTokenizer('llama2') or a tokenizer.json), or a .bin uint16 token file`,
      { file },
    );
  }
  checkTokenizerFits(tokenizer, vocabSize, file);
  const info = await stat(file).catch(() => undefined);
  if (info?.isFile() && info.size > MAX_TEXT_BYTES) {
    throw new DataError(
      `text file ${file} is ${info.size} bytes, more than the ${MAX_TEXT_BYTES} bytes read as text: pretokenize it into a .bin file of little-endian uint16 ids (llama2.c's format) and pass that`,
      { file, offset: MAX_TEXT_BYTES },
    );
  }
  const bytes = await readRegularFile(file, (why) => {
    throw new DataError(`text file ${file} ${why}: pass a UTF-8 text file or a .bin token file`, { file });
  });
  const text = decodeText(bytes, file);
  const tokens = encodeDocuments(text, tokenizer, vocabSize);
  if (tokens.length === 0) {
    throw new DataError(`text file ${file} holds only whitespace: pass a file with some text`, {
      file,
      offset: 0,
    });
  }
  checkTokens(tokens, vocabSize);
  return Object.freeze({ file, kind: 'text', tokens, tokenizer });
}

/** The built-in demo corpus (`demoCorpus`) encoded with `tokenizer`. */
export function demoTokenCorpus(
  tokenizer: Tokenizer,
  options: { seed?: number; stories?: number } = {},
): TokenCorpus {
  checkTokenizerFits(tokenizer, tokenizer?.vocabSize);
  const tokens = encodeDocuments(demoCorpus(options), tokenizer, tokenizer.vocabSize);
  return Object.freeze({ file: undefined, kind: 'demo', tokens, tokenizer });
}

function checkTokenizerFits(tokenizer: Tokenizer, vocabSize: number, file?: string): void {
  const where = file !== undefined ? `text file ${file}: ` : '';
  const details = file !== undefined ? { file } : {};
  if (tokenizer === null || typeof tokenizer !== 'object' || typeof tokenizer.encode !== 'function') {
    throw new DataError(
      `${where}expected a tokenizer ({ vocabSize, bosId, eosId, encode, decode }: byteTokenizer(), await loadTokenizer('llama2') or a tokenizer.json), got ${tokenizer === null ? 'null' : typeof tokenizer}`,
      details,
    );
  }
  if (!(Number.isSafeInteger(tokenizer.vocabSize) && tokenizer.vocabSize >= 1)) {
    throw new DataError(
      `${where}the tokenizer ${String(tokenizer.name)} has vocabSize ${String(tokenizer.vocabSize)}; expected a whole number ≥ 1`,
      details,
    );
  }
  for (const key of ['bosId', 'eosId'] as const) {
    const id = tokenizer[key];
    if (id !== undefined && !(Number.isSafeInteger(id) && id >= 0 && id < tokenizer.vocabSize)) {
      throw new DataError(
        `${where}the tokenizer ${String(tokenizer.name)} has ${key} ${String(id)}; expected undefined or a token id in [0, ${tokenizer.vocabSize})`,
        details,
      );
    }
  }
  if (tokenizer.vocabSize > vocabSize) {
    throw new DataError(
      `${file !== undefined ? `text file ${file}: ` : ''}the tokenizer ${tokenizer.name} has ${tokenizer.vocabSize} tokens but the model's vocabulary has ${vocabSize}: use a tokenizer that fits the model (the byte tokenizer for 'tiny', 'llama2' for the Stories models)`,
      file !== undefined ? { file } : {},
    );
  }
}

/**
 * UTF-8 text, refusing binary: a NUL byte or an invalid UTF-8 sequence is a DataError with the
 * offset of the first bad byte; an empty file is one at offset 0.
 */
export function decodeText(bytes: Uint8Array, file: string): string {
  if (bytes.length === 0) {
    throw new DataError(`text file ${file} is empty: pass a file with some text`, { file, offset: 0 });
  }
  const nul = bytes.indexOf(0);
  const bad = firstInvalidUtf8(bytes, nul === -1 ? bytes.length : nul);
  if (bad !== -1 || nul !== -1) {
    const offset = bad !== -1 ? bad : nul;
    const why =
      bad !== -1 ? `an invalid UTF-8 byte (0x${bytes[offset]!.toString(16).padStart(2, '0')})` : 'a NUL byte';
    throw new DataError(
      `text file ${file} has ${why} at byte offset ${offset}: it looks binary. Pass a UTF-8 text file, or give a uint16 token file a .bin extension`,
      { file, offset },
    );
  }
  return new TextDecoder('utf-8').decode(bytes);
}

/** Offset of the first byte of `bytes[0, end)` that is not valid UTF-8, or -1. */
function firstInvalidUtf8(bytes: Uint8Array, end: number): number {
  try {
    new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(0, end));
    return -1;
  } catch {
    // fall through to find where
  }
  let i = 0;
  while (i < end) {
    const b = bytes[i]!;
    if (b < 0x80) {
      i++;
      continue;
    }
    let need: number;
    let min: number;
    if (b >= 0xc2 && b <= 0xdf) {
      need = 1;
      min = 0x80;
    } else if (b >= 0xe0 && b <= 0xef) {
      need = 2;
      min = 0x800;
    } else if (b >= 0xf0 && b <= 0xf4) {
      need = 3;
      min = 0x10000;
    } else {
      return i;
    }
    if (i + need >= end) return i; // the sequence runs past the end: truncated
    let code = b & (0x3f >> need);
    for (let k = 1; k <= need; k++) {
      const c = bytes[i + k]!;
      if ((c & 0xc0) !== 0x80) return i;
      code = (code << 6) | (c & 0x3f);
    }
    if (code < min || code > 0x10ffff || (code >= 0xd800 && code <= 0xdfff)) return i;
    i += need + 1;
  }
  return -1;
}

/**
 * What a tokenizer's encode returned: whole ids in [0, vocabSize), checked before they go into a
 * Uint16Array (which would wrap 65536 + k to k, and store a string or NaN as 0, silently).
 */
function checkEncoded(ids: unknown, tokenizer: Tokenizer, vocabSize: number, document: number): void {
  if (!Array.isArray(ids) && !ArrayBuffer.isView(ids)) {
    throw new DataError(
      `the tokenizer ${String(tokenizer.name)}'s encode returned ${ids === null ? 'null' : typeof ids} for document ${document}; expected an array of token ids`,
    );
  }
  const list = ids as ArrayLike<number>;
  for (let i = 0; i < list.length; i++) {
    const id = list[i]!;
    if (!(Number.isInteger(id) && id >= 0 && id < vocabSize)) {
      throw new DataError(
        `the tokenizer ${String(tokenizer.name)} encoded document ${document} to the id ${String(id)} (token ${i}), not in the model's vocabulary [0, ${vocabSize}): use a tokenizer that fits the model`,
      );
    }
  }
}

/**
 * Documents (split at blank lines, trimmed) encoded one by one, each with BOS before and EOS after
 * when the tokenizer has them (what a model learns to start and stop on).
 */
function encodeDocuments(text: string, tokenizer: Tokenizer, vocabSize: number): Uint16Array | Int32Array {
  // The byte tokenizer's ids are the UTF-8 bytes: encode to bytes, not to an array of numbers
  // (8 bytes per token in a JS array; a 256 MiB document would not fit the heap).
  const encoder = isByteTokenizer(tokenizer) ? new TextEncoder() : undefined;
  const parts: ArrayLike<number>[] = [];
  let total = 0;
  for (const raw of text.split(/\r?\n(?:[ \t]*\r?\n)+/)) {
    const document = raw.trim();
    if (document.length === 0) continue;
    const ids = encoder !== undefined ? encoder.encode(document) : tokenizer.encode(document);
    if (encoder === undefined) checkEncoded(ids, tokenizer, vocabSize, parts.length);
    parts.push(ids);
    total += ids.length + (tokenizer.bosId !== undefined ? 1 : 0) + (tokenizer.eosId !== undefined ? 1 : 0);
  }
  const tokens = vocabSize <= 65536 ? new Uint16Array(total) : new Int32Array(total);
  let at = 0;
  for (const ids of parts) {
    if (tokenizer.bosId !== undefined) tokens[at++] = tokenizer.bosId;
    tokens.set(ids, at);
    at += ids.length;
    if (tokenizer.eosId !== undefined) tokens[at++] = tokenizer.eosId;
  }
  return tokens;
}
