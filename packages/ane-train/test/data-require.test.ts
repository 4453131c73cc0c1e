/**
 * The tokenizer libraries are ES modules (llama-tokenizer-js is ESM-only): ane-train loads them
 * lazily with import(), so the built CommonJS entry (require('ane-train')) still loads and can use
 * them. Runs the built dist/index.cjs in a child process, as a CJS user would.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';

const CJS = join(import.meta.dirname, '..', 'dist', 'index.cjs');
const dir = mkdtempSync(join(tmpdir(), 'ane-train-data-require-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

it('require(dist/index.cjs) loads the llama2 and tokenizer.json tokenizers', () => {
  const tokenizerJson = join(dir, 'tokenizer.json');
  writeFileSync(
    tokenizerJson,
    JSON.stringify({
      version: '1.0',
      added_tokens: [],
      normalizer: null,
      pre_tokenizer: { type: 'Whitespace' },
      post_processor: null,
      decoder: null,
      model: { type: 'BPE', unk_token: null, vocab: { a: 0, b: 1, ab: 2 }, merges: ['a b'] },
    }),
  );
  const script = `
    const train = require(${JSON.stringify(CJS)});
    (async () => {
      const llama = await train.loadTokenizer('llama2');
      const hf = await train.loadTokenizer(${JSON.stringify(tokenizerJson)});
      console.log(JSON.stringify([llama.encode('Once upon a time'), hf.encode('ab a b')]));
    })().catch((error) => { console.error(error); process.exit(1); });`;
  const stdout = execFileSync(process.execPath, ['-e', script], { encoding: 'utf8' });
  // '▁Once ▁upon ▁a ▁time' in Llama-2; 'ab' merged by the one merge rule, 'a' and 'b' alone
  expect(JSON.parse(stdout)).toEqual([
    [9038, 2501, 263, 931],
    [2, 0, 1],
  ]);
});
