import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DataError } from '../errors';
import { byteTokenizer, decodeStream, loadTokenizer } from './tokenizer';

const dir = mkdtempSync(join(tmpdir(), 'ane-train-tokenizer-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('byteTokenizer', () => {
  it('one id per UTF-8 byte; EOS 0 renders as nothing', () => {
    const byte = byteTokenizer();
    expect([byte.vocabSize, byte.bosId, byte.eosId]).toEqual([256, undefined, 0]);
    // 'é' is U+00E9: UTF-8 0xC3 0xA9
    expect(byte.encode('hé!')).toEqual([104, 0xc3, 0xa9, 33]);
    expect(byte.decode([104, 0xc3, 0xa9, 33, 0])).toBe('hé!');
    const text = 'Once upon a time 🦙\nend';
    expect(byte.decode(byte.encode(text))).toBe(text);
    expect(() => byte.decode([256])).toThrow(DataError);
    expect(() => byte.decode([1.5])).toThrow(/token id 1.5 at index 0 is not in the vocabulary \[0, 256\)/);
  });

  it('decodeStream holds back a character split over byte tokens', () => {
    const stream = decodeStream(byteTokenizer());
    // '🦙' is F0 9F A6 99
    expect([stream.push(97), stream.push(0xf0), stream.push(0x9f), stream.push(0xa6)]).toEqual([
      'a',
      '',
      '',
      '',
    ]);
    expect(stream.push(0x99)).toBe('🦙');
    expect(stream.flush()).toBe('');
  });
});

describe("loadTokenizer('llama2')", () => {
  it('has the Llama-2 SentencePiece ids (BOS 1, EOS 2, 32000 tokens)', async () => {
    const llama = await loadTokenizer('llama2');
    expect([llama.name, llama.vocabSize, llama.bosId, llama.eosId]).toEqual(['llama2', 32000, 1, 2]);
    // Known Llama-2 ids (sentencepiece with its dummy-prefix space): ▁Once ▁upon ▁a ▁time;
    // ▁Hello ▁world !  (llama-tokenizer-js README and llama2.c's stories prompts)
    expect(llama.encode('Once upon a time')).toEqual([9038, 2501, 263, 931]);
    expect(llama.encode('Hello world!')).toEqual([15043, 3186, 29991]);
    // byte fallback: '\n' is <0x0A> = 3 + 10; '🦙' is four byte tokens <0xF0><0x9F><0xA6><0x99>
    expect(llama.encode('\n')).toEqual([29871, 13]);
    expect(llama.encode('🦙')).toEqual([29871, 3 + 0xf0, 3 + 0x9f, 3 + 0xa6, 3 + 0x99]);
    expect(llama.encode('')).toEqual([]);
  });

  it('a long text is encoded in pieces cut at newlines, to exactly the tokens of a whole encode', async () => {
    const llama = await loadTokenizer('llama2');
    const { default: reference } = await import('llama-tokenizer-js');
    const lines: string[] = [];
    for (let i = 0; lines.join('\n').length < 7000; i++) {
      // trailing and double spaces, empty lines, byte fallback, one line longer than a piece
      lines.push(
        i % 7 === 3 ? '' : `Tom  saw ${i} frogs 🦙 at the pond. `.repeat(i === 5 ? 80 : 1 + (i % 4)),
      );
    }
    const text = lines.join('\n');
    expect(text.length).toBeGreaterThan(3 * 2048);
    const ids = llama.encode(text);
    expect(ids).toEqual(reference.encode(text, false, true));
    expect(llama.decode(ids)).toBe(text);
    // no newline at all: cut before single spaces; runs of spaces stay whole
    const oneLine = `${'Lily  and   Ben ran.   '.repeat(300)}🦙`;
    expect(oneLine.length).toBeGreaterThan(3 * 2048);
    expect(llama.encode(oneLine)).toEqual(reference.encode(oneLine, false, true));
    const spaces = 'ab      '.repeat(1000); // a cut inside a run of spaces would change its tokens
    expect(llama.encode(spaces)).toEqual(reference.encode(spaces, false, true));
  });

  it('decodes ▁ as spaces and byte-fallback tokens as bytes, dropping BOS/EOS and the dummy prefix', async () => {
    const llama = await loadTokenizer('llama2');
    expect(llama.decode([1, 15043, 3186, 29991, 2])).toBe('Hello world!');
    const text = 'Tom saw a frog.\nIt said: "ribbit" 🦙 镇';
    expect(llama.decode(llama.encode(text))).toBe(text);
    expect(() => llama.decode([32000])).toThrow(
      /token id 32000 at index 0 is not in the vocabulary \[0, 32000\)/,
    );
    const stream = decodeStream(llama);
    const pieces = llama.encode('Once upon 🦙').map((id) => stream.push(id));
    expect(pieces.join('') + stream.flush()).toBe('Once upon 🦙');
    expect(pieces[1]).toBe(' upon');
    // after a prompt: the generated text keeps its leading space
    const prompt = [1, ...llama.encode('Once upon a')];
    const afterPrompt = decodeStream(llama, { prompt });
    expect(
      llama
        .encode('Once upon a time')
        .slice(prompt.length - 1)
        .map((id) => afterPrompt.push(id)),
    ).toEqual([' time']);
    expect(decodeStream(llama).push(931)).toBe('time'); // the same piece alone loses it
  });
});

describe('loadTokenizer(tokenizer.json)', () => {
  // A hand-written BPE tokenizer: whitespace pre-tokenizer, letters a c e i m n o p t u and '.',
  // merges building 'once', 'upon' and 'time'; special tokens [UNK] <s> </s>.
  const vocab = {
    '[UNK]': 0,
    '<s>': 1,
    '</s>': 2,
    a: 3,
    c: 4,
    e: 5,
    i: 6,
    m: 7,
    n: 8,
    o: 9,
    p: 10,
    t: 11,
    u: 12,
  };
  const tokenizerJson = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: ['[UNK]', '<s>', '</s>'].map((content, id) => ({
      id,
      content,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    })),
    normalizer: { type: 'Lowercase' },
    pre_tokenizer: { type: 'Whitespace' },
    post_processor: null,
    decoder: null,
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: '[UNK]',
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      vocab: { ...vocab, on: 13, ce: 14, once: 15, ti: 16, tim: 17, time: 18, up: 19, upon: 20, '.': 21 },
      merges: ['o n', 'c e', 'on ce', 't i', 'ti m', 'tim e', 'u p', 'up on'],
    },
  };

  it('encodes and decodes through @huggingface/tokenizers; BOS/EOS from the special tokens', async () => {
    const path = join(dir, 'tokenizer.json');
    writeFileSync(path, JSON.stringify(tokenizerJson));
    const tokenizer = await loadTokenizer(path);
    expect([tokenizer.name, tokenizer.vocabSize, tokenizer.bosId, tokenizer.eosId]).toEqual([path, 22, 1, 2]);
    // by the merges, in rank order: o n -> on, c e -> ce, on ce -> once; u p -> up, up on -> upon; …
    expect(tokenizer.encode('Once upon a TIME.')).toEqual([15, 20, 3, 18, 21]);
    expect(tokenizer.encode('once zap')).toEqual([15, 0, 3, 10]); // 'z' is not in the vocabulary
    expect(tokenizer.encode('tone')).toEqual([11, 13, 5]); // t on e: no merge makes 'one'
    expect(tokenizer.decode([1, 15, 20, 3, 18, 2])).toBe('once upon a time');
    // no ids (or only BOS/EOS) are no text, as for byte and llama2 (the library threw an untyped Error)
    expect(tokenizer.decode([])).toBe('');
    expect(tokenizer.decode([1, 2])).toBe('');
    const stream = decodeStream(tokenizer);
    expect(stream.push(15) + stream.push(20) + stream.flush()).toBe(tokenizer.decode([15, 20]));
    expect(() => tokenizer.decode([22])).toThrow(DataError);
  });

  it('tokenizer_config.json beside it names the EOS token', async () => {
    const sub = join(dir, 'with-config');
    mkdirSync(sub);
    writeFileSync(join(sub, 'tokenizer.json'), JSON.stringify(tokenizerJson));
    writeFileSync(
      join(sub, 'tokenizer_config.json'),
      JSON.stringify({ eos_token: { content: '.' }, bos_token: null }),
    );
    const tokenizer = await loadTokenizer(join(sub, 'tokenizer.json'));
    expect([tokenizer.bosId, tokenizer.eosId]).toEqual([undefined, 21]);
  });

  it('a bad tokenizer.json is a DataError naming the file', async () => {
    const notJson = join(dir, 'not-json.json');
    writeFileSync(notJson, '{ "model": ');
    const noModel = join(dir, 'no-model.json');
    writeFileSync(noModel, JSON.stringify({ version: '1.0', added_tokens: [] }));
    const array = join(dir, 'array.json');
    writeFileSync(array, '[1, 2]');
    const fifo = join(dir, 'fifo.json');
    execFileSync('mkfifo', [fifo]);
    const cases: [string, RegExp][] = [
      [notJson, /is not JSON/],
      [noModel, /has no "model" object/],
      [array, /is not a JSON object/],
      [fifo, /is a FIFO/],
      [dir, /is a directory/],
      [join(dir, 'missing.json'), /does not exist/],
    ];
    for (const [file, message] of cases) {
      const error = await loadTokenizer(file).catch((e: unknown) => e);
      expect(error, file).toBeInstanceOf(DataError);
      expect((error as DataError).details.file).toBe(file);
      expect((error as DataError).message).toMatch(message);
      expect((error as DataError).message).toContain(file);
    }
    // a model type @huggingface/tokenizers does not implement (WordLevel) gives no ids: refused
    const wordLevel = join(dir, 'word-level.json');
    writeFileSync(
      wordLevel,
      JSON.stringify({ ...tokenizerJson, model: { type: 'WordLevel', vocab, unk_token: '[UNK]' } }),
    );
    const unsupported = await loadTokenizer(wordLevel)
      .then((t) => t.encode('a zebra'))
      .catch((e: unknown) => e);
    expect(unsupported).toBeInstanceOf(DataError);
    expect((unsupported as DataError).details.file).toBe(wordLevel);
    await expect(loadTokenizer('')).rejects.toThrow(/expected 'byte', 'llama2' or the path/);
    // a misspelt built-in name is read as a path: the error names the built-in ones too
    await expect(loadTokenizer('Llama2')).rejects.toThrow(/does not exist.*the built-in 'byte' or 'llama2'/);
  }, 5000);
});

describe('invalid UTF-16 strings (lone surrogates)', () => {
  it('every tokenizer refuses a lone surrogate with a DataError naming its index (it became U+FFFD silently)', async () => {
    const llama = await loadTokenizer('llama2');
    const path = join(dir, 'surrogate-tokenizer.json');
    writeFileSync(
      path,
      JSON.stringify({
        model: { type: 'WordLevel', vocab: { a: 0, b: 1, '[UNK]': 2 }, unk_token: '[UNK]' },
        normalizer: null,
        pre_tokenizer: { type: 'Whitespace' },
        post_processor: null,
        decoder: null,
        added_tokens: [],
      }),
    );
    const hf = await loadTokenizer(path);
    for (const tokenizer of [byteTokenizer(), llama, hf]) {
      for (const [text, index] of [
        ['a\uD800b', 1],
        ['ab \uDC00', 3],
        ['\uDE00\uD83D', 0], // a low half before a high half: both lone
        ['😀 \uD83D', 3], // a well-formed pair, then a high half at the end
      ] as const) {
        let caught: unknown;
        try {
          tokenizer.encode(text);
        } catch (error) {
          caught = error;
        }
        expect(caught, `${tokenizer.name} ${JSON.stringify(text)}`).toBeInstanceOf(DataError);
        expect((caught as Error).message).toContain(`at index ${index}`);
      }
      // well-formed text with surrogate pairs still encodes and round-trips
      expect(byteTokenizer().decode(byteTokenizer().encode('a😀b'))).toBe('a😀b');
    }
    expect(llama.decode(llama.encode('a😀b'))).toBe('a😀b');
  });

  it('decodeStream without a tokenizer is a DataError, not a TypeError', () => {
    expect(() => decodeStream(null as never)).toThrow(DataError);
  });
});
