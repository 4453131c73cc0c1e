/** `ane-train sample`: generate text from a checkpoint, streamed to stdout; tokens/s on stderr. */
import { type ArgsDef, defineCommand } from 'citty';
import { loadTokenizer } from '../data';
import {
  choiceFlag,
  countFlag,
  numberFlag,
  parseStrictArgs,
  stringFlag,
  UsageError,
  wholeNumberFlag,
} from './args';
import type { CliIo } from './io';
import { defaultTokenizerFor, loadModelSource } from './model-source';
import { BACKENDS } from './options-file';
import { generateSample } from './train';

const s = (valueHint: string, description: string) => ({ type: 'string', valueHint, description }) as const;

export const sampleArgs = {
  checkpoint: s(
    'path',
    'an ane-train checkpoint, a run directory, a Hugging Face model directory or a llama2.c .bin',
  ),
  prompt: s('text', 'the text to continue (default "Once upon a time")'),
  'max-tokens': s('N', 'tokens to generate at most (default 256)'),
  temperature: s('T', '0 = always the most likely token; 1 = the model as it is (default 0.8)'),
  'top-k': s('K', 'draw among the K most likely tokens only'),
  'top-p': s('P', 'draw among the most likely tokens holding probability P (nucleus)'),
  seed: s('N', 'seeds the draws (default 1337): the same seed gives the same text'),
  seq: s('S', "the context window (default min(256, the model's max positions))"),
  tokenizer: s(
    'byte|llama2|tokenizer.json',
    "default: the checkpoint's, else byte for vocab 256, llama2 for 32000",
  ),
  backend: s(BACKENDS.join('|'), "'auto', 'ane' or 'sim'"),
} satisfies ArgsDef;

export const sampleCommandDef = defineCommand({
  meta: { name: 'sample', description: 'generate text from a checkpoint, streaming it to stdout' },
  args: sampleArgs,
});

export async function runSample(rawArgs: readonly string[], io: CliIo): Promise<number> {
  const args = parseStrictArgs(rawArgs, sampleArgs);
  const maxTokens = wholeNumberFlag(args, 'max-tokens') ?? 256;
  const temperature = numberFlag(args, 'temperature', { min: 0 }) ?? 0.8;
  const topK = wholeNumberFlag(args, 'top-k');
  const topP = numberFlag(args, 'top-p', { min: 0, max: 1, exclusiveMin: true });
  const seed = countFlag(args, 'seed') ?? 1337;
  const seqFlag = wholeNumberFlag(args, 'seq');
  const backend = choiceFlag(args, 'backend', BACKENDS) ?? 'auto';
  const checkpoint = stringFlag(args, 'checkpoint');
  if (checkpoint === undefined)
    throw new UsageError('missing --checkpoint (a checkpoint file or a run directory)');
  const source = await loadModelSource(io.resolve(checkpoint));
  const tokenizerFlag = stringFlag(args, 'tokenizer');
  const spec =
    tokenizerFlag !== undefined
      ? tokenizerFlag === 'byte' || tokenizerFlag === 'llama2'
        ? tokenizerFlag
        : io.resolve(tokenizerFlag)
      : (source.tokenizer ?? defaultTokenizerFor(source.config.vocab_size));
  if (spec === undefined)
    throw new UsageError(
      `which tokenizer? the model's vocabulary has ${source.config.vocab_size} tokens: give --tokenizer tokenizer.json`,
    );
  const tokenizer = await loadTokenizer(spec);
  const seq = seqFlag ?? Math.min(256, source.config.max_position_embeddings);
  const result = await generateSample(
    {
      model: source.config,
      backend,
      seq,
      sampleTokens: maxTokens,
      prompt: stringFlag(args, 'prompt') ?? 'Once upon a time',
      seed,
      temperature,
      ...(topK !== undefined ? { topK } : {}),
      ...(topP !== undefined ? { topP } : {}),
    },
    source.weights,
    tokenizer,
    io,
  );
  io.stderr(`${result.tokensPerSecond.toFixed(1)} tokens/s (seed ${seed})\n`);
  return 0;
}
