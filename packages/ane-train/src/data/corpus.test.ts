import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DataError } from '../errors';
import { demoTokenCorpus, loadCorpus, MAX_TEXT_BYTES } from './corpus';
import { demoCorpus } from './demo-corpus';
import { byteTokenizer, loadTokenizer } from './tokenizer';

const dir = mkdtempSync(join(tmpdir(), 'ane-train-corpus-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const byte = byteTokenizer();

function file(name: string, bytes: Uint8Array | string): string {
  const path = join(dir, name);
  writeFileSync(path, bytes);
  return path;
}

async function dataError(promise: Promise<unknown>): Promise<DataError> {
  const error = await promise.catch((e: unknown) => e);
  expect(error).toBeInstanceOf(DataError);
  return error as DataError;
}

describe('loadCorpus: token files', () => {
  it('a .bin or .tokens file is little-endian uint16 ids', async () => {
    for (const name of ['shard.bin', 'shard.tokens']) {
      const path = file(name, Uint8Array.of(1, 0, 0x0a, 0x01, 255, 0));
      const corpus = await loadCorpus(path, { tokenizer: byte, vocabSize: 512 });
      expect([corpus.kind, corpus.file, corpus.tokenizer]).toEqual(['tokens', path, undefined]);
      expect([...corpus.tokens]).toEqual([1, 0x010a, 255]);
    }
  });

  it('an id at or above the vocabulary: offset of that id', async () => {
    const path = file('big-id.bin', Uint8Array.of(1, 0, 2, 0, 0x00, 0x01, 3, 0)); // ids 1, 2, 256, 3
    const error = await dataError(loadCorpus(path, { tokenizer: byte, vocabSize: 256 }));
    expect(error.details).toEqual({ file: path, offset: 4 });
    expect(error.message).toMatch(/token id 256 at index 2 \(byte offset 4\)/);
  });

  it('an odd byte count (truncated) and an empty file', async () => {
    const odd = file('odd.bin', Uint8Array.of(1, 0, 2));
    expect((await dataError(loadCorpus(odd, { tokenizer: byte, vocabSize: 256 }))).details).toEqual({
      file: odd,
      offset: 2,
    });
    const empty = file('empty.bin', new Uint8Array(0));
    expect((await dataError(loadCorpus(empty, { tokenizer: byte, vocabSize: 256 }))).details).toEqual({
      file: empty,
      offset: 0,
    });
  });
});

describe('loadCorpus: text files', () => {
  it('documents split at blank lines, each ended by EOS (byte tokenizer: 0)', async () => {
    const path = file('two.txt', 'ab\n\n \n\ncd\nef\n');
    const corpus = await loadCorpus(path, { tokenizer: byte, vocabSize: 256 });
    expect(corpus.kind).toBe('text');
    expect(corpus.tokens).toBeInstanceOf(Uint16Array);
    expect([...corpus.tokens]).toEqual([97, 98, 0, 99, 100, 10, 101, 102, 0]);
  });

  it('llama2: each document between BOS 1 and EOS 2', async () => {
    const llama = await loadTokenizer('llama2');
    const path = file('llama.txt', 'Once upon a time\r\n\r\nHello world!');
    const corpus = await loadCorpus(path, { tokenizer: llama, vocabSize: 32000 });
    expect([...corpus.tokens]).toEqual([1, 9038, 2501, 263, 931, 2, 1, 15043, 3186, 29991, 2]);
    // a model whose vocabulary is smaller than the tokenizer's
    const error = await dataError(loadCorpus(path, { tokenizer: llama, vocabSize: 256 }));
    expect(error.message).toMatch(/has 32000 tokens but the model's vocabulary has 256/);
    expect(error.details.file).toBe(path);
  });

  it('a byte-order mark is not text; a vocabulary above 65536 gives Int32Array ids', async () => {
    const bom = file('bom.txt', Uint8Array.of(0xef, 0xbb, 0xbf, 0x68, 0x69));
    expect([...(await loadCorpus(bom, { tokenizer: byte, vocabSize: 256 })).tokens]).toEqual([104, 105, 0]);
    // a made-up tokenizer: one id per character, 65536 + its code; EOS 70000
    const wide = {
      name: 'wide',
      vocabSize: 70001,
      bosId: undefined,
      eosId: 70000,
      encode: (text: string) => [...text].map((c) => 65536 + c.charCodeAt(0)),
      decode: () => '',
    };
    const corpus = await loadCorpus(file('wide.txt', 'ab'), { tokenizer: wide, vocabSize: 70001 });
    expect(corpus.tokens).toBeInstanceOf(Int32Array);
    expect([...corpus.tokens]).toEqual([65536 + 97, 65536 + 98, 70000]);
  });

  it('binary text: NUL or invalid UTF-8 at the offset of the first bad byte', async () => {
    const cases: [string, number[], number, RegExp][] = [
      ['nul.txt', [0x61, 0x62, 0x00, 0x63], 2, /a NUL byte at byte offset 2/],
      ['ff.txt', [0x61, 0xc3, 0xa9, 0xff, 0x61], 3, /invalid UTF-8 byte \(0xff\) at byte offset 3/],
      ['cut.txt', [0x61, 0x62, 0xe2, 0x82], 2, /0xe2\) at byte offset 2/], // '€' is E2 82 AC: truncated
      ['overlong.txt', [0x61, 0xe0, 0x80, 0xaf], 1, /at byte offset 1/], // overlong '/'
      ['surrogate.txt', [0x61, 0x62, 0x63, 0xed, 0xa0, 0x80], 3, /at byte offset 3/],
      ['lone.txt', [0x80], 0, /at byte offset 0/],
      ['bad-before-nul.txt', [0x61, 0xff, 0x00], 1, /invalid UTF-8 byte \(0xff\) at byte offset 1/],
    ];
    for (const [name, bytes, offset, message] of cases) {
      const path = file(name, Uint8Array.from(bytes));
      const error = await dataError(loadCorpus(path, { tokenizer: byte, vocabSize: 256 }));
      expect(error.details, name).toEqual({ file: path, offset });
      expect(error.message).toMatch(message);
      expect(error.message).toContain(path);
    }
  });

  it('an empty or whitespace-only text file, a directory, a FIFO, a missing file', async () => {
    const empty = file('empty.txt', '');
    expect((await dataError(loadCorpus(empty, { tokenizer: byte, vocabSize: 256 }))).details).toEqual({
      file: empty,
      offset: 0,
    });
    const blank = file('blank.txt', ' \n\n\t\n');
    expect((await dataError(loadCorpus(blank, { tokenizer: byte, vocabSize: 256 }))).message).toMatch(
      /only whitespace/,
    );
    const fifo = join(dir, 'pipe.txt');
    execFileSync('mkfifo', [fifo]);
    for (const [path, message] of [
      [dir, /is a directory/],
      [fifo, /is a FIFO/],
      [join(dir, 'missing.txt'), /does not exist/],
    ] as const) {
      const error = await dataError(loadCorpus(path, { tokenizer: byte, vocabSize: 256 }));
      expect(error.details.file).toBe(path);
      expect(error.message).toMatch(message);
    }
  }, 5000);

  it('a text file above MAX_TEXT_BYTES is refused before reading: pretokenize it', async () => {
    const path = join(dir, 'huge.txt');
    writeFileSync(path, '');
    truncateSync(path, MAX_TEXT_BYTES + 1); // sparse: no disk used
    const error = await dataError(loadCorpus(path, { tokenizer: byte, vocabSize: 256 }));
    expect(error.details).toEqual({ file: path, offset: MAX_TEXT_BYTES });
    expect(error.message).toMatch(/pretokenize it into a \.bin file/);
  });
});

describe('demoTokenCorpus', () => {
  it("the byte tokenizer's fast path gives the ids its encode gives", () => {
    // a tokenizer that only delegates takes the generic path (encode per document)
    const delegating = { ...byte, encode: (text: string) => byte.encode(text), decode: byte.decode };
    const fast = demoTokenCorpus(byte, { stories: 20 }).tokens;
    expect([...fast]).toEqual([...demoTokenCorpus(delegating, { stories: 20 }).tokens]);
    expect(fast.length).toBeGreaterThan(5000);
  });

  it('the fast path on non-ASCII text: UTF-8 bytes', async () => {
    const path = file('utf8.txt', 'é 🦙\n\nжук');
    const corpus = await loadCorpus(path, { tokenizer: byte, vocabSize: 256 });
    expect([...corpus.tokens]).toEqual([
      0xc3, 0xa9, 0x20, 0xf0, 0x9f, 0xa6, 0x99, 0, 0xd0, 0xb6, 0xd1, 0x83, 0xd0, 0xba, 0,
    ]);
  });

  it('is the demo text encoded document by document', () => {
    const corpus = demoTokenCorpus(byte, { seed: 3, stories: 2 });
    const [first, second] = demoCorpus({ seed: 3, stories: 2 }).split('\n\n');
    const expected = [...new TextEncoder().encode(first), 0, ...new TextEncoder().encode(second), 0];
    expect([corpus.kind, corpus.file]).toEqual(['demo', undefined]);
    expect([...corpus.tokens]).toEqual(expected);
  });
});

describe('a tokenizer of your own is checked, not trusted', () => {
  const base = { name: 'mine', vocabSize: 100, bosId: undefined, eosId: 99, decode: () => '' };

  it('ids it returns outside the vocabulary (70005 would wrap to 4469 in a Uint16Array), a string, NaN are DataErrors', async () => {
    const path = file('mine.txt', 'hello\n\nworld');
    for (const encode of [
      () => [1, 65536 + 5],
      () => 'abc',
      () => [Number.NaN],
      () => [-1],
      () => [1.5],
      () => null,
    ]) {
      const error = await dataError(
        loadCorpus(path, { tokenizer: { ...base, encode } as never, vocabSize: 65536 }),
      );
      expect(error.message).toMatch(/the tokenizer mine('s encode returned| encoded document 0)/);
    }
    // 65536 + 5 with a vocabulary of 100: was reported as id 4469, not the id the tokenizer gave
    const error = await dataError(
      loadCorpus(path, { tokenizer: { ...base, encode: () => [65536 + 5] }, vocabSize: 100 }),
    );
    expect(error.message).toContain('id 65541');
  });

  it('a vocabSize, bosId or eosId that is not a whole number in range is a DataError (bosId "a" was stored as 0)', async () => {
    const path = file('mine2.txt', 'hello');
    const encode = () => [1, 2];
    for (const bad of [
      { vocabSize: 'x' },
      { bosId: 'a' },
      { eosId: 100 },
      { bosId: -1 },
      { vocabSize: Number.NaN },
    ]) {
      await dataError(loadCorpus(path, { tokenizer: { ...base, encode, ...bad } as never, vocabSize: 100 }));
      expect(() => demoTokenCorpus({ ...base, encode, ...bad } as never)).toThrow(DataError);
    }
    expect(() => demoTokenCorpus(null as never)).toThrow(DataError);
    const ok = await loadCorpus(path, { tokenizer: { ...base, encode }, vocabSize: 100 });
    expect([...ok.tokens]).toEqual([1, 2, 99]);
  });
});
