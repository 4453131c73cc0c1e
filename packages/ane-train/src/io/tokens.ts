/**
 * Token files: token ids as little-endian uint16, back to back (llama2.c's and nanoGPT's `.bin`
 * format; the ids of a vocabulary up to 65536). A batch of B sequences of S + 1 tokens is
 * B × (S + 1) ids, sequence after sequence.
 */
import { endianness } from 'node:os';
import { DataError } from '../errors';
import { readRegularFile } from './files';

/**
 * Reads a token file: little-endian uint16 ids. Refuses FIFOs, directories and empty files, and a
 * file of an odd number of bytes (DataError with the file and the offset of the dangling byte).
 */
export async function readTokenFile(path: string): Promise<Uint16Array> {
  const bytes = await readRegularFile(path, (why) => {
    throw new DataError(`token file ${path} ${why}: pass a file of little-endian uint16 token ids`, {
      file: path,
    });
  });
  if (bytes.length === 0) {
    throw new DataError(`token file ${path} is empty: expected little-endian uint16 token ids`, {
      file: path,
      offset: 0,
    });
  }
  if (bytes.length % 2 !== 0) {
    throw new DataError(
      `token file ${path} is ${bytes.length} bytes, an odd number: token ids are 2 bytes each (little-endian uint16), so the byte at offset ${bytes.length - 1} is half an id; the file is truncated or not a uint16 token file`,
      { file: path, offset: bytes.length - 1 },
    );
  }
  const count = bytes.length / 2;
  if (endianness() === 'LE') {
    // readRegularFile returns a fresh buffer of exactly the file: view it, no second copy of a
    // large shard.
    if (bytes.byteOffset === 0 && bytes.buffer.byteLength === bytes.length) {
      return new Uint16Array(bytes.buffer, 0, count);
    }
    const copy = new Uint8Array(bytes.length);
    copy.set(bytes);
    return new Uint16Array(copy.buffer, 0, count);
  }
  const tokens = new Uint16Array(count);
  for (let i = 0; i < count; i++) tokens[i] = bytes[2 * i]! | (bytes[2 * i + 1]! << 8);
  return tokens;
}

/**
 * Checks every id is a whole number in [0, vocabSize): a DataError naming the first one that is
 * not and its index, and for a file its byte offset (2 × index).
 */
export function checkTokens(
  tokens: ArrayLike<number>,
  vocabSize: number,
  options: { file?: string } = {},
): void {
  if (tokens === null || typeof tokens !== 'object' || typeof tokens.length !== 'number') {
    throw new DataError(
      `checkTokens(tokens, vocabSize): tokens must be an array or typed array of token ids, got ${tokens === null ? 'null' : typeof tokens}`,
    );
  }
  if (!(Number.isSafeInteger(vocabSize) && vocabSize >= 1)) {
    throw new DataError(`checkTokens: vocabSize must be a whole number ≥ 1, got ${String(vocabSize)}`);
  }
  for (let i = 0; i < tokens.length; i++) {
    const id = tokens[i]!;
    if (!(Number.isInteger(id) && id >= 0 && id < vocabSize)) {
      const file = options.file;
      throw new DataError(
        `${file !== undefined ? `token file ${file}` : 'the tokens'}: token id ${id} at index ${i}${file !== undefined ? ` (byte offset ${2 * i})` : ''} is not in the vocabulary [0, ${vocabSize}): check the tokenizer matches the model config (vocab_size)`,
        file !== undefined ? { file, offset: 2 * i } : {},
      );
    }
  }
}
